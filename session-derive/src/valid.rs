//! Checks that need the whole struct: header names, stored names, accessor
//! names. Each problem is reported at the token that causes it (for
//! duplicates, the second occurrence).

use std::collections::HashMap;

use quote::format_ident;
use syn::ext::IdentExt;
use syn::Ident;

use crate::ast::{Container, Field};
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &mut Ctxt, cont: &mut Container<'_>) {
    check_headers(cx, cont);
    check_stored_names(cx, cont);
    check_accessors(cx, cont);
    check_principal(cx, cont);
    check_flash(cx, cont);
}

/// `#[session(flash)]`: on a stored `Option<T>` field without `#[header]`
/// or `principal` (a one-time message is neither forwarded nor an owner).
/// Problems of the attribute combination are reported at `flash`, a wrong
/// type at the type.
fn check_flash(cx: &mut Ctxt, cont: &mut Container<'_>) {
    let struct_ident = cont.ident;
    for field in &mut cont.fields {
        let Some(path) = &field.attrs.flash else {
            continue;
        };
        if field.attrs.skip.is_some() {
            cx.error_spanned_by(
                path,
                "`flash` on a skipped field: a flash message is stored so the next request can show it; remove `skip`",
            );
            continue;
        }
        if field.attrs.principal.is_some() {
            cx.error_spanned_by(
                path,
                "`flash` on the principal field: a flash message is removed once shown, a principal must stay; use two fields",
            );
            continue;
        }
        if !field.attrs.headers.is_empty() {
            cx.error_spanned_by(
                path,
                "`flash` on a field with `#[header]`: a flash message is for the page that shows it, not for upstream services; remove one of the two",
            );
            continue;
        }
        match option_inner(&field.original.ty) {
            Some(inner) => {
                field.flash = Some(crate::ast::replace_self(
                    quote::ToTokens::to_token_stream(inner),
                    struct_ident,
                ));
            }
            None => cx.error_spanned_by(
                &field.original.ty,
                "`#[session(flash)]` needs an `Option<T>` field: `None` is \"no message\", and `take_x().await` returns the message once",
            ),
        }
    }
}

/// `T` when `ty` is written `Option<T>` (also `std::option::Option<T>`).
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [syn::GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// At most one principal field (reported at the second `principal`).
fn check_principal(cx: &mut Ctxt, cont: &Container<'_>) {
    let mut first: Option<&str> = None;
    for field in &cont.fields {
        let Some(path) = &field.attrs.principal else {
            continue;
        };
        match first {
            Some(first) => cx.error_spanned_by(
                path,
                format_args!(
                    "field `{}` is marked `principal`, but field `{first}` already is: a session belongs to one principal; keep `#[session(principal)]` on one field",
                    field.rust_name
                ),
            ),
            None => first = Some(&field.rust_name),
        }
    }
}

fn check_headers(cx: &mut Ctxt, cont: &Container<'_>) {
    // normalized name -> Rust field that maps it first
    let mut seen: HashMap<String, &str> = HashMap::new();
    for field in &cont.fields {
        for header in &field.attrs.headers {
            let name = header.name.value();
            if let Some(problem) = header_name_problem(&name) {
                cx.error_spanned_by(
                    &header.name,
                    format_args!("{name:?} is not a valid HTTP header name: {problem}"),
                );
                continue;
            }
            let normalized = normalize(&name);
            if let Some(first) = seen.get(&normalized) {
                cx.error_spanned_by(
                    &header.name,
                    format_args!(
                        "header {name:?} is already mapped by field `{first}` (header names are compared ignoring case and punctuation: `-`, `_`, `.` and the like)"
                    ),
                );
            } else {
                seen.insert(normalized, &field.rust_name);
            }
            if let Some(prefix) = &header.prefix {
                if let Some(problem) = prefix_problem(&prefix.value()) {
                    cx.error_spanned_by(
                        prefix,
                        format_args!("invalid header value prefix: {problem}"),
                    );
                }
            }
        }
    }
}

/// Why `name` is not an RFC 9110 token, if it is not.
fn header_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    let bad = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))?;
    Some(match bad {
        ' ' => "it contains a space".to_owned(),
        ':' => "it contains a colon (write the name only, without `:` and the value)".to_owned(),
        c if !c.is_ascii() => format!("it contains the non-ASCII character {c:?}"),
        c if c.is_ascii_control() => format!("it contains the control character {c:?}"),
        c => format!("it contains {c:?}; header names are letters, digits and !#$%&'*+-.^_`|~"),
    })
}

/// Why `prefix` cannot start a header value, if it cannot.
fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.starts_with([' ', '\t']) {
        return Some("it starts with whitespace".to_owned());
    }
    let bad = prefix
        .chars()
        .find(|&c| !(c == '\t' || (' '..='~').contains(&c)))?;
    Some(if bad.is_ascii() {
        format!("it contains the control character {bad:?}")
    } else {
        format!("it contains the non-ASCII character {bad:?}")
    })
}

/// The runtime's `sessionkit::adapter::normalize_header_name`: letters and digits,
/// lower case; punctuation dropped. Keep the two identical.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn check_stored_names(cx: &mut Ctxt, cont: &Container<'_>) {
    let mut seen: HashMap<&str, &Field<'_>> = HashMap::new();
    for field in cont.fields.iter().filter(|f| f.index.is_some()) {
        let name = field.stored_name.as_str();
        if let Some(rename) = &field.attrs.rename {
            if name.is_empty() {
                cx.error_spanned_by(rename, "`rename` to an empty name");
                continue;
            }
            if name.starts_with('$') {
                cx.error_spanned_by(
                    rename,
                    "stored names starting with `$` are reserved for session metadata",
                );
                continue;
            }
            if name.starts_with('@') {
                cx.error_spanned_by(
                    rename,
                    "stored names starting with `@` are reserved for the runtime's own fields (`@csrf` holds the CSRF secret)",
                );
                continue;
            }
        }
        if let Some(first) = seen.get(name) {
            let message = format!(
                "field `{}` would be stored as {name:?}, which is already the stored name of field `{}`",
                field.rust_name, first.rust_name
            );
            match &field.attrs.rename {
                Some(rename) => cx.error_spanned_by(rename, message),
                None => cx.error_spanned_by(field.ident, message),
            }
        } else {
            seen.insert(name, field);
        }
    }
}

/// The setter of a `#[session(flash)]` field, `flash_x`.
pub(crate) fn flash_setter(ident: &Ident) -> Ident {
    format_ident!("flash_{}", ident.unraw())
}

/// Every accessor a field gets: [`accessor_names`], and `flash_x` for a
/// flash field.
pub(crate) fn all_accessor_names(field: &Field<'_>) -> Vec<Ident> {
    let mut names = accessor_names(field.ident).to_vec();
    if field.attrs.flash.is_some() {
        names.push(flash_setter(field.ident));
    }
    names
}

/// The accessor method names for a field, getter first.
pub(crate) fn accessor_names(ident: &Ident) -> [Ident; 6] {
    let name = ident.unraw();
    [
        ident.clone(),
        format_ident!("with_{}", name),
        format_ident!("set_{}", name),
        format_ident!("update_{}", name),
        format_ident!("take_{}", name),
        format_ident!("remove_{}", name),
    ]
}

/// Accessors of two fields must not share a name. Clashes with `Session`'s
/// own methods are checked by the generated code against the runtime's
/// list (`sessionkit::__private::RESERVED_NAMES`, kept next to `Session`),
/// so there is one list, not a copy here.
fn check_accessors(cx: &mut Ctxt, cont: &mut Container<'_>) {
    // accessor name -> field that generates it
    let mut seen: HashMap<String, String> = HashMap::new();
    for field in cont.fields.iter_mut().filter(|f| f.index.is_some()) {
        let names: Vec<String> = all_accessor_names(field)
            .iter()
            .map(|n| n.unraw().to_string())
            .collect();
        if let Some((method, other)) = names
            .iter()
            .find_map(|n| seen.get(n).map(|other| (n, other)))
        {
            cx.error_spanned_by(
                field.ident,
                format_args!(
                    "field `{}` would get the accessor `{method}()`, which field `{other}` already gets; rename one of the Rust fields",
                    field.rust_name
                ),
            );
            field.accessors = false;
            continue;
        }
        for name in names {
            seen.insert(name, field.rust_name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert_eq!(header_name_problem("X-User-Id"), None);
        assert_eq!(header_name_problem("x_user~id!"), None);
        assert!(header_name_problem("").is_some());
        assert!(header_name_problem("X User").is_some_and(|p| p.contains("space")));
        assert!(header_name_problem("X:User").is_some_and(|p| p.contains("colon")));
        assert!(header_name_problem("Über").is_some_and(|p| p.contains("non-ASCII")));
        assert!(header_name_problem("a\nb").is_some_and(|p| p.contains("control")));
        assert!(header_name_problem("a(b").is_some());
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_problem("Bearer "), None);
        assert_eq!(prefix_problem(""), None);
        assert!(prefix_problem(" x").is_some());
        assert!(prefix_problem("a\r\n").is_some());
        assert!(prefix_problem("é").is_some());
    }

    #[test]
    fn normalized_names() {
        for spelling in [
            "X_User-ID",
            "x.user.id",
            "X-USER.ID",
            "XUserId",
            "x~user~id",
        ] {
            assert_eq!(normalize(spelling), "xuserid", "{spelling}");
        }
        assert_ne!(normalize("X-User-Id"), normalize("X-User-Id2"));
    }
}
