//! One request's session as an adapter holds it, and the request flow
//! around the inner service: the CSRF check before it, loading for its
//! handlers, the commit after it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{
    check_csrf, end_request, log_csrf_rejection, log_session_error, Framework, Options, Outcome,
    Rejection, ResponseUpdate, StripPlan,
};
use crate::data::SessionData;
use crate::error::SessionError;
use crate::extractor::RequestView;
use crate::lifecycle::manager::PendingSession;
use crate::lifecycle::session::Session;

/// One request's session with its middleware's options: what an adapter
/// puts into the request (from [`Options::begin`]) for its handlers,
/// extractors and inner middleware to find.
pub struct Slot<T: SessionData, F: Framework> {
    pending: PendingSession<T>,
    options: Arc<Options<T, F>>,
}

impl<T: SessionData, F: Framework> fmt::Debug for Slot<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// What the CSRF check before the inner service decided ([`Slot::check`]).
#[derive(Debug)]
pub enum Checked<R> {
    /// Go on: call the inner service (after [`Slot::strip_plan`]).
    Proceed,
    /// Refused by the CSRF check, already logged and answered by the CSRF
    /// rejection handler: send this response after [`Slot::end`] with its
    /// status (a stale id still gets its removal cookie).
    Refused(R),
    /// The session could not be loaded for the check, already logged and
    /// answered by the error handler: send this response as it is.
    Failed(R),
}

/// How a request ends after its commit ([`Slot::end`]).
#[derive(Debug)]
pub enum Ending<R> {
    /// Keep the response; [`write_response`](super::write_response) this into it.
    Write(ResponseUpdate),
    /// The commit failed, already logged: send the error handler's response
    /// instead (the client must not believe a change was kept).
    Replace(R),
}

impl<T: SessionData, F: Framework> Slot<T, F> {
    pub(super) fn new(pending: PendingSession<T>, options: Arc<Options<T, F>>) -> Self {
        Self { pending, options }
    }

    /// The request's session, loaded or not.
    #[must_use]
    pub fn pending(&self) -> &PendingSession<T> {
        &self.pending
    }

    /// The middleware's options.
    #[must_use]
    pub fn options(&self) -> &Options<T, F> {
        &self.options
    }

    /// Logs `error` once with its whole cause chain, then asks the error
    /// handler for the response.
    pub fn answer_error(&self, error: &SessionError, req: &F::Request) -> F::Response {
        let (method, path) = F::method_and_path(req);
        log_session_error(error, method, path);
        (self.options.errors)(error, req)
    }

    /// The CSRF check of this request, before the inner service
    /// ([`check_csrf`]): a refusal is logged and answered by the CSRF
    /// rejection handler, a session error by the error handler. `req` makes
    /// what those handlers are shown; it is called only for them.
    ///
    /// `view` is read before this returns (the future does not hold it);
    /// it must show the buffered form when [`Options::needs_form`] said so.
    pub fn check<'a>(
        &'a self,
        view: &dyn RequestView,
        method: &str,
        path: &str,
        req: impl FnOnce() -> F::Request + 'a,
    ) -> impl Future<Output = Checked<F::Response>> + 'a {
        let checking = check_csrf(&self.pending, view, method, path);
        async move {
            match checking.await {
                Ok(Ok(())) => Checked::Proceed,
                Ok(Err(rejection)) => {
                    let req = req();
                    let (method, path) = F::method_and_path(&req);
                    log_csrf_rejection(&rejection, method, path);
                    Checked::Refused((self.options.csrf_rejections)(&rejection, &req))
                }
                Err(error) => Checked::Failed(self.answer_error(&error, &req())),
            }
        }
    }

    /// With `disableSessionForward`, what to remove from the request before
    /// the inner service sees it (this reads the id now); `None` otherwise.
    #[must_use]
    pub fn strip_plan(&self, view: &dyn RequestView) -> Option<StripPlan> {
        let manager = self.options.manager();
        manager.config().disable_session_forward.then(|| {
            let incoming = self.pending.capture(view);
            StripPlan::new(manager.extractor(), incoming)
        })
    }

    /// The session, loading it on the first call ([`PendingSession::load`]).
    /// A failure is logged and answered by the error handler; the
    /// [`Rejection`] carries the error, the response is the handler's.
    /// `req` makes what the handler is shown; it is called only then.
    ///
    /// `view` is read before this returns (the future does not hold it).
    pub fn load<'a>(
        &'a self,
        view: &dyn RequestView,
        req: impl FnOnce() -> F::Request + 'a,
    ) -> impl Future<Output = Result<Session<T>, (Rejection<F>, F::Response)>> + 'a {
        let loading = self.pending.load(view);
        async move {
            loading.await.map_err(|error| {
                let response = self.answer_error(&error, &req());
                (Rejection::failed(error), response)
            })
        }
    }

    /// Ends the request after the inner service answered (or after
    /// [`Checked::Refused`]): commits the session ([`end_request`] with the
    /// [`Outcome`]) and says what the response gets. A failed commit is
    /// logged and answered by the error handler.
    pub async fn end(&self, outcome: Outcome, req: &F::Request) -> Ending<F::Response> {
        match end_request(&self.pending, outcome).await {
            Ok(update) => Ending::Write(update),
            Err(error) => Ending::Replace(self.answer_error(&error, req)),
        }
    }

    /// The inner service returned an error instead of a response: nothing
    /// is committed (there is no answer to carry an id), and when the
    /// session was loaded that is logged at `warn`, with the error. The
    /// adapter hands the error on to its framework.
    pub fn inner_failed(&self, error: &dyn fmt::Display) {
        if self.pending.loaded().is_some() {
            tracing::warn!(
                %error,
                "an inner service failed without a response; the session was not saved"
            );
        }
    }
}
