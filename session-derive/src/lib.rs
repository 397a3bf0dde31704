//! `#[derive(SessionData)]` for sessionkit (being built).
use proc_macro::TokenStream;

/// Derives `sessionkit::SessionData`.
#[proc_macro_derive(SessionData, attributes(header, session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}
