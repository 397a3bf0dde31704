//! The CSRF check as an adapter runs it: whether it needs the form, the check itself, its default answer and its log line.

use super::is_urlencoded;
use crate::csrf::{CsrfRejection, CsrfRequest, Step as CsrfStep};
use crate::data::SessionData;
use crate::error::SessionError;
use crate::extractor::RequestView;
use crate::lifecycle::manager::PendingSession;

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
