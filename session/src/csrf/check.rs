//! The request check, as pure functions: which requests are checked, what
//! the Fetch Metadata and `Origin` headers say, where the token is, and
//! whether it matches the session's secret. Adapters only gather the inputs
//! ([`CsrfRequest`]) and act on the [`Step`].

use super::{token, Csrf};

/// Why a request was refused by the CSRF check (answered `403 Forbidden`).
///
/// Each message says what the client or the application should change.
///
/// ```
/// use sessionkit::CsrfRejection;
/// assert!(CsrfRejection::MissingToken.to_string().contains("csrf_token"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfRejection {
    /// The browser said the request comes from another site
    /// (`Sec-Fetch-Site: cross-site`).
    #[error("cross-site request refused: this form or script is on another site; submit it from this site's own pages")]
    CrossSite,
    /// The `Origin` header names another origin than this server's `Host`
    /// (or `null`), and it is not a trusted origin.
    #[error("request from another origin refused: submit it from this site's own pages, or add the origin with Csrf::trust_origin")]
    ForeignOrigin,
    /// No token in the `csrf_token` form field nor in the `X-CSRF-Token` header.
    #[error("CSRF token missing: add the session's token (Session::csrf_token) as a hidden `csrf_token` form field or an `X-CSRF-Token` header")]
    MissingToken,
    /// The token is not one this server issued for this session: the page
    /// is older than the last sign-in or sign-out, from another session, or
    /// altered.
    #[error("CSRF token does not match this session (it is from before a sign-in or sign-out, or from another session): reload the page and submit again")]
    BadToken,
}

/// What an adapter knows about a request, for the CSRF check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsrfRequest<'a> {
    /// The method, e.g. `"POST"`.
    pub method: &'a str,
    /// The request path, without the query.
    pub path: &'a str,
    /// `Host` (or the HTTP/2 authority).
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a str>,
    /// The token header (`X-CSRF-Token` by default).
    pub header_token: Option<&'a str>,
    /// The token form field (`csrf_token` by default) of a urlencoded body,
    /// if the body was buffered.
    pub form_token: Option<&'a str>,
}

/// What to do with a request, decided from its headers (and form field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Not checked (a safe method, an exempt path): pass it on.
    Pass,
    /// Refused without looking at the session.
    Reject(CsrfRejection),
    /// Compare this token with the session's secret ([`verify`]).
    Verify(&'a str),
}

/// Whether `method` changes state and is checked: everything but `GET`,
/// `HEAD`, `OPTIONS` and `TRACE`.
#[must_use]
pub fn is_unsafe_method(method: &str) -> bool {
    !matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE"
    )
}

/// The first decision: method, exempt paths, Fetch Metadata / `Origin`
/// (when enabled, checked first), then where the token is (header first).
#[must_use]
pub fn decide<'a>(csrf: &Csrf, req: &CsrfRequest<'a>) -> Step<'a> {
    if !is_unsafe_method(req.method) || csrf.is_exempt(req.path) {
        return Step::Pass;
    }
    if csrf.fetch_metadata {
        if let Some(rejection) = origin_problem(csrf, req) {
            return Step::Reject(rejection);
        }
    }
    match req.header_token.or(req.form_token) {
        Some(token) if !token.is_empty() => Step::Verify(token),
        _ => Step::Reject(CsrfRejection::MissingToken),
    }
}

/// The second decision: the token against the session's secret (`None`
/// when the session has none: no token was ever issued for it).
///
/// # Errors
/// [`CsrfRejection::BadToken`] unless `token` was masked from `secret`.
pub fn verify(token: &str, secret: Option<&[u8]>) -> Result<(), CsrfRejection> {
    match secret {
        Some(secret) if token::verifies(token, secret) => Ok(()),
        _ => Err(CsrfRejection::BadToken),
    }
}

/// Fetch Metadata first (browsers since 2020 send it); without it, the
/// `Origin` header against `Host`. A request with neither (an old browser,
/// a non-browser client) is left to the token.
fn origin_problem(csrf: &Csrf, req: &CsrfRequest<'_>) -> Option<CsrfRejection> {
    let origin = req.origin.map(str::trim);
    let trusted = origin.is_some_and(|o| csrf.trusts(o));
    match req.sec_fetch_site.map(str::trim) {
        Some(site) if site.eq_ignore_ascii_case("cross-site") && !trusted => {
            return Some(CsrfRejection::CrossSite)
        }
        Some(_) => return None,
        None => {}
    }
    let origin = origin?;
    if trusted {
        return None;
    }
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'));
    match (authority, req.host.map(str::trim)) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        // No Host to compare with: the token decides.
        (Some(_), None) => None,
        // `null` (sandboxed frames, some redirects) or another host.
        _ => Some(CsrfRejection::ForeignOrigin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>() -> CsrfRequest<'a> {
        CsrfRequest {
            method: "POST",
            path: "/cart",
            host: Some("shop.example:8080"),
            ..CsrfRequest::default()
        }
    }

    #[test]
    fn safe_methods_are_never_checked() {
        let csrf = Csrf::default();
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "get"] {
            let req = CsrfRequest {
                method,
                sec_fetch_site: Some("cross-site"),
                ..post()
            };
            assert_eq!(decide(&csrf, &req), Step::Pass, "{method}");
        }
        for method in ["POST", "PUT", "PATCH", "DELETE", "delete"] {
            assert!(is_unsafe_method(method));
        }
    }

    #[test]
    fn the_token_is_required_and_the_header_wins() {
        let csrf = Csrf::default();
        assert_eq!(
            decide(&csrf, &post()),
            Step::Reject(CsrfRejection::MissingToken)
        );
        let empty = CsrfRequest {
            form_token: Some(""),
            ..post()
        };
        assert_eq!(
            decide(&csrf, &empty),
            Step::Reject(CsrfRejection::MissingToken)
        );
        let both = CsrfRequest {
            header_token: Some("h"),
            form_token: Some("f"),
            ..post()
        };
        assert_eq!(decide(&csrf, &both), Step::Verify("h"));
        let form = CsrfRequest {
            form_token: Some("f"),
            ..post()
        };
        assert_eq!(decide(&csrf, &form), Step::Verify("f"));
    }

    #[test]
    fn exempt_paths_and_prefixes_pass() {
        let csrf = Csrf::default().exempt("/webhook").exempt_prefix("/api/");
        for path in ["/webhook", "/api/orders", "/api/"] {
            let req = CsrfRequest { path, ..post() };
            assert_eq!(decide(&csrf, &req), Step::Pass, "{path}");
        }
        for path in ["/webhook/x", "/webhooks", "/api"] {
            let req = CsrfRequest { path, ..post() };
            assert_ne!(decide(&csrf, &req), Step::Pass, "{path}");
        }
    }

    #[test]
    fn fetch_metadata_is_checked_first() {
        let csrf = Csrf::default();
        let cross = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            form_token: Some("t"),
            ..post()
        };
        assert_eq!(
            decide(&csrf, &cross),
            Step::Reject(CsrfRejection::CrossSite)
        );
        for site in ["same-origin", "same-site", "none"] {
            let req = CsrfRequest {
                sec_fetch_site: Some(site),
                // Fetch Metadata wins over a mismatching Origin.
                origin: Some("https://elsewhere.example"),
                form_token: Some("t"),
                ..post()
            };
            assert_eq!(decide(&csrf, &req), Step::Verify("t"), "{site}");
        }
        let off = Csrf::default().fetch_metadata(false);
        assert_eq!(decide(&off, &cross), Step::Verify("t"));
    }

    #[test]
    fn origin_is_compared_with_host_without_fetch_metadata() {
        let csrf = Csrf::default();
        let with = |origin| CsrfRequest {
            origin: Some(origin),
            form_token: Some("t"),
            ..post()
        };
        assert_eq!(
            decide(&csrf, &with("http://shop.example:8080")),
            Step::Verify("t")
        );
        assert_eq!(
            decide(&csrf, &with("HTTP://Shop.Example:8080")),
            Step::Verify("t")
        );
        for foreign in ["http://evil.example", "null", "http://shop.example", ""] {
            assert_eq!(
                decide(&csrf, &with(foreign)),
                Step::Reject(CsrfRejection::ForeignOrigin),
                "{foreign}"
            );
        }
        let trusting = Csrf::default().trust_origin("https://app.example");
        assert_eq!(
            decide(&trusting, &with("https://app.example")),
            Step::Verify("t")
        );
        let cross_trusted = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            ..with("https://app.example")
        };
        assert_eq!(decide(&trusting, &cross_trusted), Step::Verify("t"));
        // Neither header: the token decides.
        let bare = CsrfRequest {
            form_token: Some("t"),
            ..post()
        };
        assert_eq!(decide(&csrf, &bare), Step::Verify("t"));
    }

    #[test]
    fn verification_needs_the_sessions_secret() {
        let secret = [3u8; token::SECRET_LEN];
        let good = token::mask(&secret, &[5; token::SECRET_LEN]);
        assert_eq!(verify(&good, Some(&secret)), Ok(()));
        assert_eq!(verify(&good, None), Err(CsrfRejection::BadToken));
        assert_eq!(
            verify(&good, Some(&[4u8; token::SECRET_LEN])),
            Err(CsrfRejection::BadToken)
        );
        assert_eq!(
            verify("garbage", Some(&secret)),
            Err(CsrfRejection::BadToken)
        );
    }
}
