//! For adapter authors: what a web-framework integration of sessionkit needs,
//! and nothing an application uses.
//!
//! An adapter (`sessionkit-actix`, `sessionkit-axum`) is a thin shell around
//! these pieces; every decision is made here, in functions over plain strings
//! and bytes, so two adapters cannot disagree:
//!
//! | step | call |
//! |---|---|
//! | per request | [`SessionManager::begin`](crate::SessionManager::begin) → [`PendingSession`]; store it where handlers find it |
//! | buffer a urlencoded body? | [`should_buffer_form`] |
//! | `disableSessionForward` | [`PendingSession::capture`], then [`StripPlan::new`] and its three rewrites |
//! | a handler asks for the session | [`PendingSession::load`] with a [`RequestView`] of the request |
//! | after the inner service | [`end_request`] with the [`Outcome`], then [`write_response`] |
//! | a [`SessionError`] | [`log_session_error`] once, then the error handler ([`default_error_response`] by default) |
//! | CSRF on (the manager has a [`Csrf`](crate::Csrf)) | before the inner service: buffer the form if [`csrf_needs_form`], then [`check_csrf`]; a [`CsrfRejection`] is answered by the rejection handler ([`default_csrf_response`] by default) |
//!
//! A minimal adapter over a toy request type:
//!
//! ```
//! use std::collections::BTreeMap;
//! use sessionkit::adapter::{end_request, write_response, Outcome, RequestView, ResponseHeaders};
//! use sessionkit::{MemoryStore, SessionManager};
//! # #[derive(sessionkit::SessionData, Default)] struct Counter { visits: u32 }
//!
//! struct Req(BTreeMap<String, String>);
//! impl RequestView for Req {
//!     fn header(&self, name: &str) -> Option<&str> {
//!         self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
//!     }
//! }
//! #[derive(Default)]
//! struct Res(Vec<(String, String)>);
//! impl ResponseHeaders for Res {
//!     fn append(&mut self, name: &str, value: &str) -> bool {
//!         self.0.push((name.to_owned(), value.to_owned()));
//!         true
//!     }
//!     fn insert(&mut self, name: &str, value: &str) -> bool {
//!         self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
//!         self.append(name, value)
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::<Counter>::new(MemoryStore::new());
//! let pending = manager.begin();
//! // The handler:
//! let session = pending.load(&Req(BTreeMap::new())).await?;
//! session.update_visits(|v| *v += 1);
//! // After the handler:
//! let update = end_request(&pending, Outcome::Response(200)).await?;
//! let mut res = Res::default();
//! write_response(update, &mut res);
//! assert!(res.0.iter().any(|(n, v)| n == "set-cookie" && v.starts_with("session_id=")));
//! assert!(res.0.contains(&("cache-control".to_owned(), "no-store".to_owned())));
//! # Ok::<(), sessionkit::SessionError>(()) }).unwrap();
//! ```

pub use crate::extractor::{
    find_cookie, find_urlencoded, ExtractFn, Extracted, Location, RequestView, SourceKind,
};
pub use crate::header_map::{is_valid_header_name, is_valid_header_value, normalize_header_name};
pub use crate::lifecycle::manager::{Incoming, PendingSession, ResponseUpdate};

pub use crate::csrf::{
    decide as decide_csrf, verify as verify_csrf, CsrfRequest, Step as CsrfStep,
};

use crate::csrf::CsrfRejection;
use crate::data::SessionData;
use crate::error::SessionError;
use crate::extractor::Extractor;

// ------------------------------------------------------------------ request

/// Whether the request body must be buffered so a `form:` lookup can read it:
/// the extractor reads a form field, the body is
/// `application/x-www-form-urlencoded`, and its declared `Content-Length`
/// (when there is one) is at most `limit`. The adapter buffers at most
/// `limit` bytes and gives the body back to the handler either way.
///
/// ```
/// use sessionkit::adapter::should_buffer_form;
/// use sessionkit::Extractor;
/// let form = Extractor::form("session_id");
/// let ct = Some("application/x-www-form-urlencoded; charset=utf-8");
/// assert!(should_buffer_form(&form, ct, Some("12"), 64));
/// assert!(!should_buffer_form(&form, ct, Some("100"), 64));
/// assert!(!should_buffer_form(&form, Some("application/json"), None, 64));
/// assert!(!should_buffer_form(&Extractor::cookie("session_id"), ct, None, 64));
/// ```
#[must_use]
pub fn should_buffer_form(
    extractor: &Extractor,
    content_type: Option<&str>,
    content_length: Option<&str>,
    limit: usize,
) -> bool {
    extractor.reads_form()
        && content_type.is_some_and(is_urlencoded)
        && content_length
            .and_then(|len| len.trim().parse::<usize>().ok())
            .is_none_or(|len| len <= limit)
}

/// Whether a `Content-Type` value is `application/x-www-form-urlencoded`
/// (parameters and case ignored).
#[must_use]
pub fn is_urlencoded(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|mime| {
        mime.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// What `disableSessionForward` removes from a request before any inner
/// service sees it: the extractor's session cookies (other cookies stay), its
/// session headers in every `_`/case spelling (and a custom extractor's key
/// when it is a header name), and the query parameter when the id came from
/// the query. Form and path ids cannot be removed and are left as they are.
///
/// ```
/// use sessionkit::adapter::StripPlan;
/// use sessionkit::Extractor;
/// let ex = Extractor::chain([Extractor::cookie("sid"), Extractor::header("X-Session-ID")]);
/// let plan = StripPlan::new(&ex, None);
/// assert!(plan.strips_header("x_session_id"));
/// assert_eq!(plan.cookie_header(b"a=1; sid=x; b=2").as_deref(), Some(&b"a=1; b=2"[..]));
/// assert_eq!(plan.cookie_header(b"sid=x"), None);
/// assert_eq!(plan.path_and_query("/a?sid=x"), None); // the id did not come from the query
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripPlan {
    cookies: Vec<String>,
    headers: Vec<String>,
    query: Option<String>,
}

impl StripPlan {
    /// The plan for `extractor`, given where this request's id was found
    /// ([`PendingSession::capture`]).
    #[must_use]
    pub fn new(extractor: &Extractor, incoming: Option<&Incoming>) -> Self {
        let mut headers: Vec<String> = extractor
            .header_names()
            .map(normalize_header_name)
            .collect();
        let mut query = None;
        if let Some(incoming) = incoming {
            match incoming.location {
                Location::Custom if is_valid_header_name(&incoming.key) => {
                    headers.push(normalize_header_name(&incoming.key));
                }
                Location::Query => query = Some(incoming.key.clone()),
                _ => {}
            }
        }
        Self {
            cookies: extractor.cookie_names().map(str::to_owned).collect(),
            headers,
            query,
        }
    }

    /// Whether the plan touches `Cookie` headers at all.
    #[must_use]
    pub fn strips_cookies(&self) -> bool {
        !self.cookies.is_empty()
    }

    /// Whether request header `name` must be removed (compared case- and
    /// `_`/`-`-insensitively). `Cookie` is rewritten, not removed: see
    /// [`StripPlan::cookie_header`].
    #[must_use]
    pub fn strips_header(&self, name: &str) -> bool {
        !self.headers.is_empty() && self.headers.contains(&normalize_header_name(name))
    }

    /// One `Cookie` header value without the session cookies; `None` when
    /// nothing is left (remove the header). Send one result per original
    /// header, in order.
    #[must_use]
    pub fn cookie_header(&self, value: &[u8]) -> Option<Vec<u8>> {
        let kept: Vec<&[u8]> = value
            .split(|b| *b == b';')
            .filter(|pair| {
                let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
                let name = name.trim_ascii();
                !name.is_empty() && !self.cookies.iter().any(|n| n.as_bytes() == name)
            })
            .map(<[u8]>::trim_ascii)
            .collect();
        (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
    }

    /// The request target (`/path?query`) without the session's query
    /// parameter; `None` when nothing changes.
    ///
    /// ```
    /// # use sessionkit::adapter::strip_query_param;
    /// assert_eq!(strip_query_param("/e?a=1&sid=x&b=2", "sid").as_deref(), Some("/e?a=1&b=2"));
    /// ```
    #[must_use]
    pub fn path_and_query(&self, path_and_query: &str) -> Option<String> {
        strip_query_param(path_and_query, self.query.as_deref()?)
    }
}

/// `path_and_query` without every query parameter named `key` (compared
/// after percent-decoding); `None` when there was none.
///
/// ```
/// use sessionkit::adapter::strip_query_param;
/// assert_eq!(strip_query_param("/p?sid=x", "sid").as_deref(), Some("/p"));
/// assert_eq!(strip_query_param("/p?s%69d=x&a=1", "sid").as_deref(), Some("/p?a=1"));
/// assert_eq!(strip_query_param("/p?a=1", "sid"), None);
/// ```
#[must_use]
pub fn strip_query_param(path_and_query: &str, key: &str) -> Option<String> {
    let (path, query) = path_and_query.split_once('?')?;
    let pairs: Vec<&str> = query.split('&').collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| {
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_none_or(|(name, _)| name != key)
        })
        .collect();
    if kept.len() == pairs.len() {
        return None;
    }
    Some(if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
}

/// The value of cookie `name` in one raw `Cookie` header value. Bytes that
/// are not UTF-8 (a script may set `theme=café`, sent as Latin-1 or UTF-8)
/// are read lossily, so another cookie's bytes never hide the session
/// cookie. Both adapters' views use it.
///
/// ```
/// use sessionkit::adapter::cookie_in_header;
/// assert_eq!(cookie_in_header(b"theme=caf\xe9; sid=abc", "sid").as_deref(), Some("abc"));
/// ```
#[must_use]
pub fn cookie_in_header<'a>(value: &'a [u8], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    match String::from_utf8_lossy(value) {
        Cow::Borrowed(text) => find_cookie(text, name).map(Cow::Borrowed),
        Cow::Owned(text) => find_cookie(&text, name).map(|v| Cow::Owned(v.to_owned())),
    }
}

// ------------------------------------------------------------------ csrf

/// Whether the CSRF check needs the urlencoded body buffered (up to `limit`
/// bytes) to read the token's form field: CSRF is on, the request is
/// checked (unsafe method, not exempt), it carries no token header, and the
/// body is a urlencoded form no larger than `limit`. The adapter gives the
/// body back to the handler either way.
///
/// ```
/// use std::collections::BTreeMap;
/// use sessionkit::adapter::{csrf_needs_form, RequestView};
/// use sessionkit::Csrf;
/// struct Req(BTreeMap<&'static str, &'static str>);
/// impl RequestView for Req {
///     fn header(&self, name: &str) -> Option<&str> { self.0.get(name).copied() }
/// }
/// let form = Req(BTreeMap::from([("content-type", "application/x-www-form-urlencoded")]));
/// let csrf = Csrf::default();
/// assert!(csrf_needs_form(Some(&csrf), "POST", "/cart", &form, 1024));
/// assert!(!csrf_needs_form(Some(&csrf), "GET", "/cart", &form, 1024));
/// assert!(!csrf_needs_form(None, "POST", "/cart", &form, 1024));
/// ```
#[must_use]
pub fn csrf_needs_form(
    csrf: Option<&crate::csrf::Csrf>,
    method: &str,
    path: &str,
    req: &dyn RequestView,
    limit: usize,
) -> bool {
    let Some(csrf) = csrf else {
        return false;
    };
    crate::csrf::is_unsafe_method(method)
        && !csrf.is_exempt(path)
        && req.header(csrf.header_name()).is_none()
        && req.header("content-type").is_some_and(is_urlencoded)
        && req
            .header("content-length")
            .and_then(|len| len.trim().parse::<usize>().ok())
            .is_none_or(|len| len <= limit)
}

/// The CSRF check of one request, before the inner service: `Ok(Ok(()))`
/// to go on, `Ok(Err(rejection))` to answer with the rejection handler,
/// `Err` for a session error (the error handler). Loads the session only
/// when a token must be compared with its secret; a request that is not
/// checked or is refused on its headers costs no store access.
///
/// The request is read before this returns, so the future borrows only
/// `pending` (and is `Send`). `req` must show the buffered form when
/// [`csrf_needs_form`] said so.
///
/// ```
/// use std::collections::BTreeMap;
/// use sessionkit::adapter::{check_csrf, RequestView};
/// use sessionkit::{Csrf, CsrfRejection, MemoryStore, SessionManager};
/// # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
/// struct Req(BTreeMap<&'static str, &'static str>);
/// impl RequestView for Req {
///     fn header(&self, name: &str) -> Option<&str> { self.0.get(name).copied() }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::<Data>::builder(MemoryStore::new()).csrf(Csrf::default()).build()?;
/// let pending = manager.begin();
/// let bare = Req(BTreeMap::new());
/// assert_eq!(check_csrf(&pending, &bare, "POST", "/cart").await?, Err(CsrfRejection::MissingToken));
/// assert_eq!(check_csrf(&pending, &bare, "GET", "/cart").await?, Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// # Errors
/// [`SessionError`] when the session cannot be loaded.
pub fn check_csrf<'p, T: SessionData>(
    pending: &'p PendingSession<T>,
    req: &dyn RequestView,
    method: &str,
    path: &str,
) -> impl std::future::Future<Output = Result<Result<(), CsrfRejection>, SessionError>> + Send + 'p
{
    let step = match pending.manager.csrf() {
        None => Ok(None),
        Some(csrf) => {
            let form = req.form(csrf.form_field_name());
            let request = CsrfRequest {
                method,
                path,
                host: req.header("host"),
                origin: req.header("origin"),
                sec_fetch_site: req.header("sec-fetch-site"),
                header_token: req.header(csrf.header_name()),
                form_token: form.as_deref(),
            };
            match crate::csrf::decide(csrf, &request) {
                CsrfStep::Pass => Ok(None),
                CsrfStep::Reject(rejection) => Err(rejection),
                CsrfStep::Verify(token) => Ok(Some(token.to_owned())),
            }
        }
    };
    let next = step.map(|token| token.map(|token| (token, pending.load(req))));
    async move {
        let (token, load) = match next {
            Ok(Some(verify)) => verify,
            Ok(None) => return Ok(Ok(())),
            Err(rejection) => return Ok(Err(rejection)),
        };
        let session = load.await?;
        let secret = session.csrf_secret();
        Ok(crate::csrf::verify(&token, secret.as_deref()))
    }
}

/// The default answer to a [`CsrfRejection`]: `403` and the rejection's
/// message as `text/plain`. Adapters add `Cache-Control: no-store`.
///
/// ```
/// use sessionkit::adapter::default_csrf_response;
/// use sessionkit::CsrfRejection;
/// let (status, body) = default_csrf_response(&CsrfRejection::BadToken);
/// assert_eq!(status, 403);
/// assert!(body.contains("reload the page"));
/// ```
#[must_use]
pub fn default_csrf_response(rejection: &CsrfRejection) -> (u16, String) {
    (403, rejection.to_string())
}

/// Logs a CSRF rejection once at `warn` level (method, path and reason;
/// never a token).
pub fn log_csrf_rejection(rejection: &CsrfRejection, method: &str, path: &str) {
    tracing::warn!(reason = ?rejection, method, path, "CSRF check refused a request");
}

// ------------------------------------------------------------------ response

/// How the inner service ended, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered with this HTTP status code.
    Response(u16),
    /// The handler returned an error, which the framework answered with this
    /// status code (actix-web keeps the error on the response).
    HandlerError(u16),
    /// It returned an error instead of a response.
    Error,
}

impl Outcome {
    /// Whether the request failed: a `5xx` answer, a handler error, or no
    /// answer at all. Nothing of a failed request is persisted unless
    /// `saveOnError` is set.
    #[must_use]
    pub fn failed(self) -> bool {
        match self {
            Self::Response(status) => (500..600).contains(&status),
            Self::HandlerError(_) | Self::Error => true,
        }
    }
}

/// Ends one request's session after the inner service: commits it (if it was
/// loaded) and returns what the response must carry. The only place adapters
/// commit a request's session.
///
/// A request that [`Outcome::failed`] persists nothing and sets no id
/// (unless `saveOnError`); one whose inner service returned no response at
/// all commits nothing in any case.
///
/// # Errors
/// [`SessionError`] from the commit; nothing was saved then.
pub async fn end_request<T: SessionData>(
    pending: &PendingSession<T>,
    outcome: Outcome,
) -> Result<ResponseUpdate, SessionError> {
    if outcome == Outcome::Error {
        return Ok(ResponseUpdate::default());
    }
    pending.finish(outcome.failed()).await
}

/// A response's headers, as [`write_response`] edits them.
pub trait ResponseHeaders {
    /// Adds a header after any of the same name. `false` when the framework
    /// refuses the name or value (nothing was added).
    fn append(&mut self, name: &str, value: &str) -> bool;
    /// Replaces every header of this name. `false` when refused.
    fn insert(&mut self, name: &str, value: &str) -> bool;
}

/// Writes a commit's [`ResponseUpdate`] into a response: the `Set-Cookie`
/// (appended), the id header (replacing), and, whenever the response sets
/// or clears a session id, `Cache-Control: no-store` **replacing** any value
/// the handler set (a shared cache must never store a session id). An empty
/// update changes nothing.
pub fn write_response(update: ResponseUpdate, headers: &mut impl ResponseHeaders) {
    if update.is_empty() {
        return;
    }
    if let Some(cookie) = update.set_cookie {
        if !headers.append("set-cookie", &cookie) {
            tracing::error!("the session cookie is not a valid header value; not sent");
        }
    }
    if let Some((name, value)) = update.header {
        if !headers.insert(&name, &value) {
            tracing::error!(header = %name, "the session id header is not valid; not sent");
        }
    }
    headers.insert("cache-control", "no-store");
}

// ------------------------------------------------------------------ errors

/// Logs a session error once, with its whole cause chain, at `error` level,
/// before an adapter answers it.
pub fn log_session_error(error: &SessionError, method: &str, path: &str) {
    tracing::error!(
        error = %crate::ErrorChain(error),
        method,
        path,
        "session error; answering with the session error handler"
    );
}

/// The default answer to a session error, opaque to clients: the status code
/// and a `text/plain` body. Adapters add `Cache-Control: no-store`.
///
/// | error | status | body |
/// |---|---|---|
/// | [`SessionError::Store`] (backend down, timeout, corrupt record) | `503` | `session storage unavailable` |
/// | [`SessionError::Conflict`] (concurrent requests kept changing the same fields; nothing saved) | `409` | `session changed concurrently; retry` |
/// | any other (id generation, encoding, `maxSessionBytes`) | `500` | `session error` |
///
/// ```
/// use sessionkit::adapter::default_error_response;
/// use sessionkit::SessionError;
/// use sessionkit::store::StoreError;
/// let down = SessionError::Store(StoreError::unavailable("refused"));
/// assert_eq!(default_error_response(&down), (503, "session storage unavailable"));
/// ```
#[must_use]
pub fn default_error_response(error: &SessionError) -> (u16, &'static str) {
    match error {
        SessionError::Store(_) => (503, "session storage unavailable"),
        SessionError::Conflict { .. } => (409, "session changed concurrently; retry"),
        _ => (500, "session error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    #[test]
    fn cookie_stripping_keeps_other_cookies_in_order() {
        let plan = StripPlan::new(&Extractor::cookie("session_id"), None);
        assert_eq!(
            plan.cookie_header(b"theme=dark; session_id=abc; lang=en"),
            Some(b"theme=dark; lang=en".to_vec())
        );
        assert_eq!(plan.cookie_header(b" session_id=abc ;"), None);
        // A cookie whose name only starts with the session cookie's stays.
        assert_eq!(
            plan.cookie_header(b"session_id2=x"),
            Some(b"session_id2=x".to_vec())
        );
        assert!(plan.strips_cookies());
        assert!(!plan.strips_header("cookie"));
    }

    #[test]
    fn query_is_stripped_only_when_the_id_came_from_it() {
        let ex = Extractor::chain([Extractor::cookie("sid"), Extractor::query("sid")]);
        let from_query = Incoming {
            id: SessionId::parse("0123456789abcdef0123").ok(),
            source: SourceKind::Other,
            location: Location::Query,
            key: "sid".to_owned(),
        };
        let plan = StripPlan::new(&ex, Some(&from_query));
        assert_eq!(
            plan.path_and_query("/e?a=1&sid=x").as_deref(),
            Some("/e?a=1")
        );
        assert_eq!(plan.path_and_query("/e"), None);
        let plan = StripPlan::new(&ex, None);
        assert_eq!(plan.path_and_query("/e?sid=x"), None);
    }

    #[test]
    fn custom_header_keys_are_stripped() {
        let ex = Extractor::custom("X-Token", SourceKind::Other, |_| None);
        let incoming = Incoming {
            id: None,
            source: SourceKind::Other,
            location: Location::Custom,
            key: "X-Token".to_owned(),
        };
        assert!(StripPlan::new(&ex, Some(&incoming)).strips_header("x_token"));
        assert!(!StripPlan::new(&ex, None).strips_header("x-token"));
    }

    #[test]
    fn outcome_failure() {
        assert!(!Outcome::Response(200).failed());
        assert!(!Outcome::Response(499).failed());
        assert!(Outcome::Response(503).failed());
        assert!(Outcome::Error.failed());
    }

    #[derive(Default)]
    struct Headers(Vec<(String, String)>);
    impl ResponseHeaders for Headers {
        fn append(&mut self, name: &str, value: &str) -> bool {
            self.0.push((name.to_owned(), value.to_owned()));
            true
        }
        fn insert(&mut self, name: &str, value: &str) -> bool {
            self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self.append(name, value)
        }
    }

    #[test]
    fn response_rule_replaces_cache_control_only_with_an_id() {
        let mut headers = Headers(vec![("Cache-Control".into(), "max-age=60".into())]);
        write_response(ResponseUpdate::default(), &mut headers);
        assert_eq!(headers.0, [("Cache-Control".into(), "max-age=60".into())]);
        write_response(
            ResponseUpdate {
                set_cookie: None,
                header: Some(("X-Session-ID".into(), String::new())),
            },
            &mut headers,
        );
        assert_eq!(
            headers.0,
            [
                ("X-Session-ID".to_owned(), String::new()),
                ("cache-control".to_owned(), "no-store".to_owned())
            ]
        );
    }
}
