#![doc = include_str!("../README.md")]
//!
//! See [`SessionData`](macro@SessionData) for the attributes and checks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `sessionkit::SessionData` and a typed accessor trait.
///
/// The struct needs named fields, owned data, no generic parameters, and a
/// `Default` implementation (a loaded session starts from `Default::default()`
/// and every stored field is decoded into it). Each stored field's type must
/// be `Clone + Default + Serialize + DeserializeOwned`.
///
/// # What it generates
///
/// - `impl sessionkit::SessionData for User`: the field list, per-field
///   MessagePack encoding, and the header mapping.
/// - A trait `UserSessionExt` (the struct's name + `SessionExt`, with the
///   struct's visibility) implemented for `Session<User>`, with six accessors
///   per stored field `x: V`:
///
///   | method | does |
///   | --- | --- |
///   | `x(&self) -> V` | a clone of the value |
///   | `with_x(&self, f: impl FnOnce(&V) -> R) -> R` | reads without cloning |
///   | `set_x(&self, value: V)` | sets it; only this field is marked changed |
///   | `update_x(&self, f: impl Fn(&mut V) -> R + Send + Sync + 'static) -> R` | changes it in place; `Fn` because it is replayed on fresher data after a conflict |
///   | `take_x(&self) -> V` | removes it and returns the old value |
///   | `remove_x(&self)` | removes it (it reads as its default again) |
///
///   A `#[session(flash)]` field `x: Option<V>` also gets `flash_x(&self,
///   value: V)`, and its `take_x` is
///   `async fn take_x(&self) -> Result<Option<V>, SessionError>`
///   (`Session::take_once`): the message is removed from the store at once,
///   by a write conditional on what was read, so exactly one request gets it.
///
///   Skipped fields get no accessors: they are not stored, so the session has
///   nothing to track for them. Reach them with `Session::read` / `Session::modify`.
///
/// # Attributes
///
/// | attribute | on | meaning |
/// | --- | --- | --- |
/// | `#[session(rename = "name")]` | field | store the field as `name` (keeps stored data when the Rust field is renamed) |
/// | `#[session(skip)]` | field | keep the field out of the store; it is always its default after a load |
/// | `#[session(principal)]` | field (at most one) | whose session it is, e.g. `user_id: Option<u64>`: sessions are indexed by it so a user's sessions can be listed and revoked (`SessionManager::list_sessions`); `None` is anonymous and not indexed; the type implements `sessionkit::ToPrincipalKey` |
/// | `#[session(flash)]` | `Option<T>` field | a one-time message ("Item added"): set with `flash_x(value)`, shown once with `take_x().await`; not with `skip`, `principal` or `#[header]` |
/// | `#[header("Name")]` | field | map the field onto request header `Name` for downstream services; repeat for several headers |
/// | `#[header("Name", prefix = "Bearer ")]` | field | the same, with text put before the value |
/// | `#[session(crate = "path")]` | struct | where to find `sessionkit` when the dependency is renamed |
///
/// Checked at compile time: header names are HTTP tokens and unique
/// (ignoring case and punctuation, as the runtime strips them: `X-User-Id`
/// and `x.user_id` are one header); a `#[header]` field's type implements
/// `sessionkit::codec::ToHeaderValue`; stored names are unique, non-empty and do not
/// start with `$` or `@` (reserved for metadata and the runtime's own
/// fields, such as the CSRF secret `@csrf`); at most one field is the principal, it is stored, and its
/// type implements `sessionkit::ToPrincipalKey`; accessor names do not clash
/// with each other or with `Session`'s own methods (so a field cannot be
/// called `id`, `save` or `manager`: rename the Rust field and keep the
/// stored name with `rename`). The names `Session` reserves are one list in
/// the runtime, next to `Session`; the generated code checks every accessor
/// against it at compile time, and the error points at the field.
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sessionkit::{HeaderMapping, MemoryStore, SessionData, SessionManager};
///
/// #[derive(SessionData, Default, Serialize, Deserialize)]
/// struct User {
///     #[header("X-User-Id")]
///     user_id: Option<u64>,
///     #[header("Authorization", prefix = "Bearer ")]
///     token: Option<String>,
///     cart: Vec<String>,
///     #[session(rename = "v")]
///     visits: u32,
///     #[session(skip)]
///     scratch: u8,
/// }
///
/// let manager = SessionManager::<User>::new(MemoryStore::new());
/// let session = manager.create()?;
/// session.set_user_id(Some(7));
/// session.update_visits(|v| *v += 1);
/// session.update_cart(|cart| cart.push("apple".into()));
/// assert_eq!(session.visits(), 1);
/// assert_eq!(session.with_cart(|cart| cart.len()), 1);
/// assert_eq!(session.take_user_id(), Some(7));
/// assert_eq!(session.user_id(), None);
///
/// assert_eq!(User::FIELDS[3].name, "v");
/// let mut headers = Vec::new();
/// let user = User { user_id: Some(7), ..User::default() };
/// HeaderMapping::<User>::from_derive().render(&user, |name, value| {
///     headers.push(format!("{name}: {value}"));
/// });
/// assert_eq!(headers, ["X-User-Id: 7"]);
/// # Ok::<(), sessionkit::SessionError>(())
/// ```
#[proc_macro_derive(SessionData, attributes(header, session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
