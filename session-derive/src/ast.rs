//! The derive input as the rest of the macro sees it: a struct with named
//! fields and parsed attributes. The original syn nodes are kept so late
//! checks can still point at the offending tokens.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Ident, Visibility};

use crate::attr::{ContainerAttrs, FieldAttrs};
use crate::ctxt::Ctxt;

const SHAPE: &str = "SessionData needs a struct with named fields and owned data";

pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: ContainerAttrs,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) original: &'a syn::Field,
    /// The field's name as written (possibly a raw identifier).
    pub(crate) ident: &'a Ident,
    /// The field's type with `Self` replaced by the struct's name, so it can
    /// be used outside the struct's own impls.
    pub(crate) ty: TokenStream,
    pub(crate) attrs: FieldAttrs,
    /// The Rust name without `r#`.
    pub(crate) rust_name: String,
    /// The name the field is stored under.
    pub(crate) stored_name: String,
    /// Position in `FIELDS`; `None` for skipped fields.
    pub(crate) index: Option<usize>,
    /// Whether the accessors can be generated (no name clash); set by validation.
    pub(crate) accessors: bool,
    /// For a valid `#[session(flash)]` field, `T` of its `Option<T>` type
    /// (with `Self` replaced); set by validation.
    pub(crate) flash: Option<TokenStream>,
}

/// Whether the input's shape allows a stub `SessionData` impl when there are
/// errors: a type without generic parameters of any kind.
pub(crate) fn can_stub(input: &DeriveInput) -> bool {
    input.generics.params.is_empty() && input.generics.where_clause.is_none()
}

impl<'a> Container<'a> {
    /// The container, or `None` when its shape rules the derive out (the
    /// reasons are in `cx`).
    pub(crate) fn from_ast(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(named),
                Fields::Unnamed(fields) => {
                    cx.error_spanned_by(
                        fields,
                        format_args!("{SHAPE}; this is a tuple struct: name its fields"),
                    );
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        {
                            let (kw, ident) = (&data.struct_token, &input.ident);
                            quote!(#kw #ident)
                        },
                        format_args!("{SHAPE}; this is a unit struct: give it fields in braces"),
                    );
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    {
                        let (kw, ident) = (&data.enum_token, &input.ident);
                        quote!(#kw #ident)
                    },
                    format_args!(
                        "{SHAPE}; enums are not supported: use a struct (a field may hold an enum)"
                    ),
                );
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    {
                        let (kw, ident) = (&data.union_token, &input.ident);
                        quote!(#kw #ident)
                    },
                    format_args!("{SHAPE}; unions are not supported"),
                );
                None
            }
        };
        let generics = &input.generics;
        let lifetimes: Vec<_> = generics.lifetimes().collect();
        if !lifetimes.is_empty() {
            for lifetime in lifetimes {
                cx.error_spanned_by(
                    lifetime,
                    format_args!(
                        "{SHAPE}; session data is stored and loaded later, so it cannot borrow: remove the lifetime `{}`",
                        lifetime.lifetime
                    ),
                );
            }
        }
        if generics.type_params().next().is_some() || generics.const_params().next().is_some() {
            let params: Vec<_> = generics
                .params
                .iter()
                .filter(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
                .collect();
            cx.error_spanned_by(
                quote!(#(#params),*),
                "SessionData cannot be derived for generic structs; use a concrete struct",
            );
        }
        if generics.params.is_empty() {
            if let Some(where_clause) = &generics.where_clause {
                cx.error_spanned_by(
                    where_clause,
                    "SessionData cannot be derived for a struct with a `where` clause; remove it",
                );
            }
        }

        let attrs = ContainerAttrs::from_ast(cx, &input.attrs);
        let named = named?;
        if !generics.params.is_empty() || generics.where_clause.is_some() {
            return None;
        }

        let mut index = 0;
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                let ident = field.ident.as_ref()?;
                let attrs = FieldAttrs::from_ast(cx, &field.attrs);
                let rust_name = ident.unraw().to_string();
                let stored_name = attrs
                    .rename
                    .as_ref()
                    .map_or_else(|| rust_name.clone(), syn::LitStr::value);
                let position = if attrs.skip.is_some() {
                    None
                } else {
                    index += 1;
                    Some(index - 1)
                };
                Some(Field {
                    original: field,
                    ident,
                    ty: replace_self(field.ty.to_token_stream(), &input.ident),
                    attrs,
                    rust_name,
                    stored_name,
                    index: position,
                    accessors: true,
                    flash: None,
                })
            })
            .collect();
        Some(Container {
            ident: &input.ident,
            vis: &input.vis,
            attrs,
            fields,
        })
    }
}

/// `tokens` with every `Self` replaced by `ident` (keeping the span).
pub(crate) fn replace_self(tokens: TokenStream, ident: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(found) if found == "Self" => {
                let mut replaced = ident.clone();
                replaced.set_span(found.span());
                TokenTree::Ident(replaced)
            }
            TokenTree::Group(group) => {
                let mut replaced =
                    Group::new(group.delimiter(), replace_self(group.stream(), ident));
                replaced.set_span(group.span());
                TokenTree::Group(replaced)
            }
            other => other,
        })
        .collect()
}
