//! Parsing of `#[session(...)]` and `#[header(...)]`. Each malformed,
//! unknown or duplicate attribute is reported at its own span; parsing goes
//! on so that every problem shows in one compile.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Meta, Token};

use crate::ctxt::Ctxt;

const HEADER_SYNTAX: &str =
    r#"expected `#[header("Header-Name")]` or `#[header("Header-Name", prefix = "...")]`"#;

/// Attributes on the struct.
pub(crate) struct ContainerAttrs {
    /// `#[session(crate = "...")]`.
    pub(crate) krate: Option<syn::Path>,
}

/// Attributes on one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `#[session(rename = "...")]`.
    pub(crate) rename: Option<LitStr>,
    /// `#[session(skip)]`, at the `skip` keyword.
    pub(crate) skip: Option<Span>,
    /// `#[session(principal)]`, the `principal` keyword (for its span).
    pub(crate) principal: Option<syn::Path>,
    /// `#[session(flash)]`, the `flash` keyword (for its span).
    pub(crate) flash: Option<syn::Path>,
    /// Every `#[header(...)]`, in order.
    pub(crate) headers: Vec<HeaderAttr>,
}

/// One `#[header("Name", prefix = "...")]`.
pub(crate) struct HeaderAttr {
    pub(crate) name: LitStr,
    pub(crate) prefix: Option<LitStr>,
}

impl ContainerAttrs {
    /// The `crate = "..."` path alone, ignoring errors (they are reported by
    /// `from_ast`); used for the stub impl when the struct itself is invalid.
    pub(crate) fn crate_path(attrs: &[Attribute]) -> Option<syn::Path> {
        let mut scratch = Ctxt::new();
        let parsed = Self::from_ast(&mut scratch, attrs);
        let _ = scratch.check();
        parsed.krate
    }

    pub(crate) fn from_ast(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate: Option<syn::Path> = None;
        for attr in attrs {
            if attr.path().is_ident("header") {
                cx.error_spanned_by(
                    attr,
                    "`#[header]` goes on a field: it maps that field onto a request header",
                );
            } else if attr.path().is_ident("session") {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("crate") {
                        let lit = string_value(&meta, "crate = \"path::to::sessionkit\"")?;
                        if krate.is_some() {
                            cx.error_spanned_by(&meta.path, "duplicate `crate` attribute");
                        } else {
                            match lit.parse::<syn::Path>() {
                                Ok(path) => krate = Some(path),
                                Err(_) => cx.error_spanned_by(
                                    &lit,
                                    format_args!(
                                        "`crate` expects a path such as `\"my_sessionkit\"`, found {:?}",
                                        lit.value()
                                    ),
                                ),
                            }
                        }
                    } else if meta.path.is_ident("rename")
                        || meta.path.is_ident("skip")
                        || meta.path.is_ident("principal")
                        || meta.path.is_ident("flash")
                    {
                        let key = path_name(&meta.path);
                        cx.syn_error(meta.error(format_args!(
                            "`{key}` is a field attribute: put `#[session({key})]` on a field"
                        )));
                        skip_value(&meta)?;
                    } else {
                        let key = path_name(&meta.path);
                        cx.syn_error(meta.error(format_args!(
                            "unknown session attribute `{key}` on a struct; expected `crate = \"...\"`"
                        )));
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(error) = result {
                    cx.syn_error(error);
                }
            }
        }
        Self { krate }
    }
}

impl FieldAttrs {
    pub(crate) fn from_ast(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = Self::default();
        for attr in attrs {
            if attr.path().is_ident("header") {
                if let Some(header) = parse_header(cx, attr) {
                    if out.skip.is_some() {
                        cx.error_spanned_by(
                            attr,
                            "`#[header]` on a skipped field: a `#[session(skip)]` field is not stored, so there is nothing to map",
                        );
                    } else {
                        out.headers.push(header);
                    }
                }
            } else if attr.path().is_ident("session") {
                let result = attr.parse_nested_meta(|meta| out.parse_session_key(cx, &meta));
                if let Err(error) = result {
                    cx.syn_error(error);
                }
            }
        }
        out
    }

    fn parse_session_key(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("rename") {
            let lit = string_value(meta, "rename = \"stored_name\"")?;
            if self.rename.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `rename` attribute");
            } else if self.skip.is_some() {
                cx.error_spanned_by(
                    &meta.path,
                    "`rename` on a skipped field: a `#[session(skip)]` field is not stored",
                );
            } else {
                self.rename = Some(lit);
            }
        } else if meta.path.is_ident("skip") {
            if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                return Err(meta.error("`skip` takes no value: write `#[session(skip)]`"));
            }
            if self.skip.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `skip` attribute");
            } else if !self.headers.is_empty() {
                cx.error_spanned_by(
                    &meta.path,
                    "`skip` on a field with `#[header]`: a skipped field is not stored, so it cannot be mapped onto a header",
                );
            } else if self.rename.is_some() {
                cx.error_spanned_by(
                    &meta.path,
                    "`skip` on a renamed field: a skipped field is not stored, so `rename` has no effect",
                );
            } else if self.principal.is_some() {
                cx.error_spanned_by(
                    &meta.path,
                    "`skip` on the principal field: the principal is stored with the session so the session can be listed and revoked per user; remove `skip`",
                );
            } else {
                self.skip = Some(meta.path.span());
            }
        } else if meta.path.is_ident("principal") {
            if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                return Err(meta.error("`principal` takes no value: write `#[session(principal)]`"));
            }
            if self.principal.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `principal` attribute");
            } else if self.skip.is_some() {
                cx.error_spanned_by(
                    &meta.path,
                    "`principal` on a skipped field: a `#[session(skip)]` field is not stored, so sessions could not be listed or revoked by it",
                );
            } else {
                self.principal = Some(meta.path.clone());
            }
        } else if meta.path.is_ident("flash") {
            if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                return Err(meta.error("`flash` takes no value: write `#[session(flash)]`"));
            }
            if self.flash.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `flash` attribute");
            } else {
                self.flash = Some(meta.path.clone());
            }
        } else if meta.path.is_ident("crate") {
            cx.syn_error(meta.error(
                "`crate` is a struct attribute: put `#[session(crate = \"...\")]` on the struct",
            ));
            skip_value(meta)?;
        } else {
            let key = path_name(&meta.path);
            cx.syn_error(meta.error(format_args!(
                "unknown session attribute `{key}`; expected `rename = \"...\"`, `skip`, `principal` or `flash`"
            )));
            skip_value(meta)?;
        }
        Ok(())
    }
}

/// Parses `#[header("Name")]` / `#[header("Name", prefix = "...")]`.
fn parse_header(cx: &mut Ctxt, attr: &Attribute) -> Option<HeaderAttr> {
    let Meta::List(list) = &attr.meta else {
        cx.error_spanned_by(attr, HEADER_SYNTAX);
        return None;
    };
    if list.tokens.is_empty() {
        cx.error_spanned_by(attr, HEADER_SYNTAX);
        return None;
    }
    let result = list.parse_args_with(|input: ParseStream<'_>| {
        if !input.peek(LitStr) {
            return Err(input.error(format_args!(
                "expected the header name as a string literal; {HEADER_SYNTAX}"
            )));
        }
        let name: LitStr = input.parse()?;
        let mut prefix: Option<LitStr> = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if input.peek(LitStr) {
                return Err(input.error(
                    "one header name per attribute: repeat `#[header(\"...\")]` to map a field onto several headers",
                ));
            }
            let key = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            if key == "prefix" {
                if !input.peek(LitStr) {
                    return Err(input.error("expected a string literal: `prefix = \"Bearer \"`"));
                }
                let lit: LitStr = input.parse()?;
                if prefix.is_some() {
                    cx.error_spanned_by(&key, "duplicate `prefix` in `#[header]`");
                } else {
                    prefix = Some(lit);
                }
            } else {
                let _: syn::Expr = input.parse()?;
                cx.error_spanned_by(
                    &key,
                    format_args!("unknown header attribute `{key}`; expected `prefix = \"...\"`"),
                );
            }
        }
        Ok(HeaderAttr { name, prefix })
    });
    match result {
        Ok(header) => Some(header),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

/// The string after `key =`, with an error that shows the expected form.
fn string_value(meta: &ParseNestedMeta<'_>, form: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format_args!("expected a value: `{form}`")));
    }
    let value = meta.value()?;
    if !value.peek(LitStr) {
        return Err(value.error(format_args!("expected a string literal: `{form}`")));
    }
    value.parse()
}

/// Consumes `= value` or `(...)` after an unknown key so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

fn path_name(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect::<Vec<_>>()
        .join("::")
}
