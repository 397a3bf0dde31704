//! One request's session as an adapter drives it: where the id arrived
//! ([`Incoming`]), the session loaded on first use ([`PendingSession`]),
//! and what the response must carry ([`ResponseUpdate`]). The store
//! failure policy (`degraded.rs`) is applied here, at load and at commit.

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::SessionManager;
use crate::cookie_store::jar::Jar;
use crate::cookie_store::CookieStore;
use crate::data::SessionData;
use crate::degraded::FailurePolicy;
use crate::error::{ErrorChain, SessionError};
use crate::extractor::{Location, RequestView, SourceKind};
use crate::id::SessionId;
use crate::keys::KeyUse;
use crate::lifecycle::session::Session;
use crate::lifecycle::state::Reached;
use crate::plan::IdWrite;
use crate::record::Record;
use crate::signed_id::Verdict;

/// How the id arrived in the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The id, if it passed validation. A malformed id is never used: the
    /// request gets a fresh session instead.
    pub id: Option<SessionId>,
    /// Whether the client must be given its id again although it stays the
    /// same: it was signed under a fallback key, or unsigned while
    /// [`SignedIds::accept_unsigned`](crate::SignedIds::accept_unsigned) is on.
    pub stale_token: bool,
    /// The write-back kind of its source.
    pub source: SourceKind,
    /// Where in the request it was.
    pub location: Location,
    /// The cookie/header/parameter name it came from.
    pub key: String,
}

/// One request's session, loaded on first use.
///
/// ```
/// # use sessionkit::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # #[derive(Default)] struct Data;
/// # impl SessionData for Data {
/// #   const FIELDS: &'static [FieldInfo] = &[];
/// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), EncodeError> { Err(EncodeError::no_field(i)) }
/// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), DecodeError> { Err(DecodeError::no_field(i)) }
/// #   fn reset_field(&mut self, _: usize) {}
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::<Data>::new(MemoryStore::new());
/// let pending = manager.begin();
/// // A handler that never touches the session: no store access, nothing to send.
/// assert!(pending.finish(false).await?.is_empty());
/// # Ok::<(), SessionError>(()) }).unwrap();
/// ```
pub struct PendingSession<T: SessionData> {
    pub(crate) manager: SessionManager<T>,
    incoming: OnceLock<Option<Incoming>>,
    /// With the cookie store, the session the request's cookie opened to.
    carried: OnceLock<Record>,
    pub(crate) session: tokio::sync::OnceCell<Session<T>>,
    /// What a store failure gives (`degraded.rs`).
    pub(crate) policy: FailurePolicy,
}

impl<T: SessionData> fmt::Debug for PendingSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSession")
            .field("incoming", &self.incoming.get())
            .field("loaded", &self.session.initialized())
            .finish()
    }
}

impl<T: SessionData> PendingSession<T> {
    /// Nothing read or loaded yet (`SessionManager::begin`).
    pub(crate) fn new(manager: SessionManager<T>) -> Self {
        Self {
            manager,
            incoming: OnceLock::new(),
            carried: OnceLock::new(),
            session: tokio::sync::OnceCell::new(),
            policy: FailurePolicy::Fail,
        }
    }

    /// Reads (once) where the request carries its id. Cheap: no store access.
    /// Later calls return the first answer.
    pub fn capture(&self, req: &dyn RequestView) -> Option<&Incoming> {
        self.incoming
            .get_or_init(|| {
                let ctx = &self.manager.ctx;
                let found = ctx.extractor.extract(req)?;
                let (id, stale_token) = match (&ctx.cookie, &ctx.signed_ids) {
                    (Some(cookies), _) => {
                        // A session only travels in what responses write back.
                        let opened = (found.source != SourceKind::Other)
                            .then(|| cookies.open(found.key, &found.value))
                            .flatten();
                        match opened {
                            Some(opened) => {
                                let _ = self.carried.set(opened.record);
                                (Some(opened.id), opened.key != KeyUse::Primary)
                            }
                            None => {
                                ctx.observer.unsigned(&crate::signed_id::Refusal::Signature);
                                tracing::debug!(key = found.key, "ignoring a session cookie that no key opens");
                                (None, false)
                            }
                        }
                    }
                    (None, None) => match SessionId::parse(&found.value) {
                        Ok(id) => (Some(id), false),
                        Err(error) => {
                            ctx.observer.malformed(&error);
                            tracing::debug!(%error, key = found.key, "ignoring a malformed session id");
                            (None, false)
                        }
                    },
                    (None, Some(signed)) => match signed.open(&found.value) {
                        Verdict::Current(id) => (Some(id), false),
                        Verdict::Stale(id) => (Some(id), true),
                        Verdict::Refused(refusal) => {
                            ctx.observer.unsigned(&refusal);
                            tracing::debug!(key = found.key, "ignoring a session id without a valid signature");
                            (None, false)
                        }
                    },
                };
                Some(Incoming {
                    id,
                    stale_token,
                    source: found.source,
                    location: found.location,
                    key: found.key.to_owned(),
                })
            })
            .as_ref()
    }

    /// What [`PendingSession::capture`] found, if it ran.
    #[must_use]
    pub fn incoming(&self) -> Option<&Incoming> {
        self.incoming.get().and_then(Option::as_ref)
    }

    /// The session, loading it on the first call. An id that is absent,
    /// malformed, unknown to the store or expired yields a fresh session with
    /// a server-generated id; a client-chosen id is never adopted.
    ///
    /// The id is read from `req` unless [`PendingSession::capture`] already
    /// ran (the first view wins). `req` is not held by the returned future.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails; [`SessionError::Generate`]
    /// when no id can be made.
    pub fn load(
        &self,
        req: &dyn RequestView,
    ) -> impl std::future::Future<Output = Result<Session<T>, SessionError>> + Send + '_ {
        self.capture(req);
        self.load_captured()
    }

    async fn load_captured(&self) -> Result<Session<T>, SessionError> {
        let loaded = self
            .session
            .get_or_try_init(|| async {
                let incoming = self.incoming();
                if let Some(incoming_id) = incoming.and_then(|i| i.id.clone().map(|id| (id, i))) {
                    let (id, incoming) = incoming_id;
                    let reached = if incoming.stale_token {
                        Reached::WithStaleToken
                    } else {
                        Reached::Directly
                    };
                    if let Some(record) = self.carried.get() {
                        let ctx = &self.manager.ctx;
                        if !record.meta.is_expired(ctx.clock.now_ms()) {
                            return Ok(Session::from_cookie(
                                Arc::clone(ctx),
                                id,
                                record.clone(),
                                reached,
                            ));
                        }
                        ctx.observer.expired::<T>(&id, record);
                    } else if let Some(session) = self.manager.load_stored(id, reached).await? {
                        crate::observe::record_span(&session.id());
                        return Ok(session);
                    }
                    self.manager.ctx.observer.unknown();
                }
                // The client presented an id that resolves to nothing: it is
                // cleared at commit unless a new session is stored.
                let stale = incoming.is_some_and(|i| i.source != SourceKind::Other);
                let ctx = &self.manager.ctx;
                let id = ctx.ids.generate()?;
                let now = ctx.clock.now_ms();
                Ok(match ctx.cookie {
                    Some(_) => Session::new_in_jar(Arc::clone(ctx), id, now, stale),
                    None => Session::new_fresh(Arc::clone(ctx), id, now, stale),
                })
            })
            .await
            .cloned();
        on_load(self, loaded)
    }

    /// The session if it has been loaded.
    #[must_use]
    pub fn loaded(&self) -> Option<&Session<T>> {
        self.session.get()
    }

    /// Commits the session (if it was loaded) and returns what the response
    /// must carry. Untouched sessions cost nothing.
    ///
    /// `failed`: the request failed (a 5xx response, or the handler or an
    /// inner service returned an error). Then, unless `saveOnError` is set,
    /// nothing of the request is persisted and no id is sent.
    ///
    /// # Errors
    /// [`SessionError`] from the commit; nothing was saved then.
    pub async fn finish(&self, failed: bool) -> Result<ResponseUpdate, SessionError> {
        let Some(session) = self.session.get() else {
            return Ok(ResponseUpdate::default());
        };
        let write = on_commit(self, session.commit(failed).await)?;
        match session.jar() {
            Some(jar) => self.cookie_update(write, jar),
            None => Ok(self.response_update(write)),
        }
    }

    /// What the response carries with the cookie store: the session as the
    /// commit left it, sealed, whenever a server store would send the id.
    fn cookie_update(&self, write: IdWrite, jar: &Jar) -> Result<ResponseUpdate, SessionError> {
        let ctx = &self.manager.ctx;
        let extractor = &ctx.extractor;
        // Sealed where the jar holds it: no copy of the session.
        let sealed = match (&write, &ctx.cookie) {
            (IdWrite::Set(..), Some(cookies)) => jar.with_contents(|id, record| {
                extractor
                    .cookie_name()
                    .map(|name| (name, cookies.seal(name, id, record)))
            }),
            _ => None,
        };
        let (IdWrite::Set(_, max_age), Some(sealed)) = (&write, sealed) else {
            return Ok(match write {
                IdWrite::Nothing => ResponseUpdate::default(),
                IdWrite::Set(..) | IdWrite::Clear => self.response_update(IdWrite::Clear),
            });
        };
        let Some((name, value)) = sealed else {
            return Ok(ResponseUpdate::default());
        };
        let value = value.map_err(crate::store::StoreError::backend)?;
        let set_cookie = self.manager.sealed_cookie(name, &value, *max_age);
        if set_cookie.len() > CookieStore::MAX_COOKIE_BYTES {
            return Err(SessionError::CookieTooLarge {
                size: set_cookie.len(),
                limit: CookieStore::MAX_COOKIE_BYTES,
            });
        }
        Ok(ResponseUpdate {
            set_cookie: Some(set_cookie),
            header: extractor.header_name().map(|n| (n.to_owned(), value)),
        })
    }

    fn response_update(&self, write: IdWrite) -> ResponseUpdate {
        let extractor = &self.manager.ctx.extractor;
        let cookie = extractor.cookie_name();
        let header = extractor.header_name();
        match write {
            IdWrite::Nothing => ResponseUpdate::default(),
            IdWrite::Set(id, max_age) => {
                // An id that arrived through a read-only source (query, form,
                // path) is never promoted into a cookie or header; a new id is
                // server-made and is sent through the writable sources.
                if let Some(incoming) = self.incoming() {
                    if incoming.source == SourceKind::Other && incoming.id.as_ref() == Some(&id) {
                        return ResponseUpdate::default();
                    }
                }
                ResponseUpdate {
                    set_cookie: cookie.map(|name| self.manager.cookie_for(name, &id, max_age)),
                    header: header
                        .map(|name| (name.to_owned(), self.manager.client_id(&id).into_owned())),
                }
            }
            IdWrite::Clear => ResponseUpdate {
                set_cookie: cookie.map(|name| self.manager.removal_cookie(name)),
                header: header.map(|name| (name.to_owned(), String::new())),
            },
        }
    }
}

/// What a response must carry after a commit.
///
/// Integrations append `set_cookie` as a `Set-Cookie` header, set `header`,
/// and set `Cache-Control: no-store` when either is present, replacing any
/// `Cache-Control` the handler set (a response that carries a session id
/// must never be cached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseUpdate {
    /// A `Set-Cookie` value (the id, or a removal cookie).
    pub set_cookie: Option<String>,
    /// A response header `(name, value)` carrying the id (empty to clear it).
    pub header: Option<(String, String)>,
}

impl ResponseUpdate {
    /// Whether the response needs no change.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set_cookie.is_none() && self.header.is_none()
    }
}

impl<T: SessionData> PendingSession<T> {
    /// Applies `policy` to this request's store failures (default
    /// [`FailurePolicy::Fail`]). The call adapters make once per request,
    /// right after [`SessionManager::begin`](crate::SessionManager::begin).
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy for this request's store failures.
    #[must_use]
    pub fn failure_policy(&self) -> FailurePolicy {
        self.policy
    }
}

/// A load's result under the request's policy: under `Anonymous` a store
/// failure becomes a degraded session, kept for the rest of the request.
fn on_load<T: SessionData>(
    pending: &PendingSession<T>,
    result: Result<Session<T>, SessionError>,
) -> Result<Session<T>, SessionError> {
    let error = match result {
        Err(error) if pending.policy.absorbs(&error) => error,
        other => return other,
    };
    tracing::warn!(
        error = %ErrorChain(&error),
        "the session store failed; this request runs with an anonymous session that is not saved"
    );
    let ctx = &pending.manager.ctx;
    ctx.observer.degraded();
    let id = ctx.ids.generate()?;
    let session = Session::new_degraded(Arc::clone(ctx), id, ctx.clock.now_ms());
    // A concurrent load of the same request may have set the cell first.
    let _ = pending.session.set(session.clone());
    Ok(pending.session.get().cloned().unwrap_or(session))
}

/// A commit's result under the request's policy: under `Anonymous` a store
/// failure is logged and the response goes out without any id change.
fn on_commit<T: SessionData>(
    pending: &PendingSession<T>,
    result: Result<IdWrite, SessionError>,
) -> Result<IdWrite, SessionError> {
    match result {
        Err(error) if pending.policy.absorbs(&error) => {
            tracing::warn!(
                error = %ErrorChain(&error),
                "the session store failed; this request's session changes were not saved"
            );
            Ok(IdWrite::Nothing)
        }
        other => other,
    }
}
