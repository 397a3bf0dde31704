//! The session manager: configuration, store, id generator and clock in one
//! place; it loads sessions lazily for requests and by id for background work,
//! and turns a commit into what the response must carry.

use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use cookie::Cookie;

use crate::clock::{duration_ms, Clock, SystemClock};
use crate::config::{Config, ConfigError, SameSite};
use crate::context::Context;
use crate::data::SessionData;
use crate::error::SessionError;
use crate::extractor::{Extractor, Location, RequestView, SourceKind};
use crate::id::{IdGenerator, SessionId, UuidV4};
use crate::plan::{IdWrite, Policy};
use crate::session::Session;
use crate::store::{DynSessionStore, Loaded, SessionStore};

/// Creates, loads and commits sessions of type `T` against one store.
///
/// Framework integrations hold one manager and call
/// [`SessionManager::begin`] per request; background jobs use the store
/// pattern: [`SessionManager::load_by_id`], change, [`Session::save`].
///
/// ```
/// # use sessionkit::*;
/// # #[derive(Default)] struct Data;
/// # impl SessionData for Data {
/// #   const FIELDS: &'static [FieldInfo] = &[];
/// #   fn encode_field(&self, i: usize, _: &mut Vec<u8>) -> Result<(), EncodeError> { Err(EncodeError::no_field(i)) }
/// #   fn decode_field(&mut self, i: usize, _: &[u8]) -> Result<(), DecodeError> { Err(DecodeError::no_field(i)) }
/// #   fn reset_field(&mut self, _: usize) {}
/// # }
/// let config = Config::builder().cookie_http_only(true).build()?;
/// let manager = SessionManager::<Data>::builder(MemoryStore::new())
///     .config(config)
///     .id_generator(Base64Url128)
///     .build()?;
/// assert!(manager.config().cookie_http_only);
/// # Ok::<(), ConfigError>(())
/// ```
pub struct SessionManager<T> {
    pub(crate) ctx: Arc<Context>,
    _data: PhantomData<fn() -> T>,
}

impl<T> Clone for SessionManager<T> {
    fn clone(&self) -> Self {
        Self {
            ctx: Arc::clone(&self.ctx),
            _data: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SessionManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.ctx.config)
            .field("extractor", &self.ctx.extractor)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionManager`].
#[must_use]
pub struct SessionManagerBuilder<T> {
    store: Arc<dyn DynSessionStore>,
    config: Config,
    extractor: Option<Extractor>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    /// The lifecycle event listener's queue (`events.rs`).
    pub(crate) events: Option<Arc<dyn crate::events::Sink>>,
    csrf: Option<crate::csrf::Csrf>,
    _data: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SessionManagerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManagerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionManagerBuilder<T> {
    /// Uses `config` (validated by [`SessionManagerBuilder::build`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Uses `extractor` instead of the one `keyLookup` describes (custom extractors).
    pub fn extractor(mut self, extractor: Extractor) -> Self {
        self.extractor = Some(extractor);
        self
    }

    /// Uses `ids` to make session ids (default [`UuidV4`]).
    pub fn id_generator(mut self, ids: impl IdGenerator) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// Turns on CSRF protection: the adapters' session middleware checks
    /// every unsafe request against its session's token (see [`Csrf`](crate::Csrf)).
    pub fn csrf(mut self, csrf: crate::csrf::Csrf) -> Self {
        self.csrf = Some(csrf);
        self
    }

    /// Uses `clock` for timestamps (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the configuration and builds the manager.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key to change.
    pub fn build(mut self) -> Result<SessionManager<T>, ConfigError> {
        self.config.validate()?;
        let extractor = self
            .extractor
            .take()
            .unwrap_or_else(|| self.config.extractor());
        if let Some(name) = extractor.cookie_names().find(|n| n.starts_with("__Host-")) {
            // Custom extractors get the same prefix checks as keyLookup.
            if !self.config.cookie_secure
                || self.config.cookie_domain.is_some()
                || self.config.cookie_path != "/"
            {
                return Err(ConfigError::HostPrefix {
                    name: name.to_owned(),
                    problem: "needs cookieSecure: true, no cookieDomain and cookiePath \"/\"",
                });
            }
        }
        if !self.config.cookie_secure || !self.config.cookie_http_only {
            tracing::warn!(
                cookie_secure = self.config.cookie_secure,
                cookie_http_only = self.config.cookie_http_only,
                "the session cookie is not Secure or not HttpOnly: set cookieSecure: true (HTTPS) and cookieHTTPOnly: true in production"
            );
        }
        Ok(self.assemble(extractor))
    }

    /// The manager, from a configuration already known to be valid.
    fn assemble(self, extractor: Extractor) -> SessionManager<T> {
        let config = self.config;
        let policy = Policy {
            renew_ms: (!config.disable_auto_renew).then(|| duration_ms(config.auto_renew_after)),
            grace_ms: duration_ms(config.rotation_grace_period),
            touch_after_ms: config.touch_after.map(duration_ms),
            cookie_ms: duration_ms(config.cookie_expiration),
            cookie_session_only: config.cookie_session_only,
            idle_ms: duration_ms(config.idle_timeout),
            max_bytes: config.max_session_bytes,
        };
        let observer = Arc::new(crate::observe::Observer::new(
            self.events,
            Arc::clone(&self.clock),
        ));
        SessionManager {
            ctx: Arc::new(Context {
                idle_ms: duration_ms(config.idle_timeout),
                absolute_ms: config.absolute_timeout.map(duration_ms),
                policy,
                stripes: crate::context::Stripes::new(),
                store: crate::observe::instrument(self.store, &observer),
                observer,
                extractor,
                ids: self.ids,
                clock: self.clock,
                cookie_attributes: cookie_attributes(&config).into(),
                csrf: self.csrf,
                config,
            }),
            _data: PhantomData,
        }
    }
}

impl<T: SessionData> SessionManager<T> {
    pub(crate) fn from_context(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            _data: PhantomData,
        }
    }

    /// A manager with the default configuration (which is valid, so this
    /// cannot fail; `manager_default_config_is_valid` tests it).
    pub fn new(store: impl SessionStore) -> Self {
        let builder = Self::builder(store);
        let extractor = builder.config.extractor();
        builder.assemble(extractor)
    }

    /// A builder with the default configuration.
    pub fn builder(store: impl SessionStore) -> SessionManagerBuilder<T> {
        SessionManagerBuilder {
            store: Arc::new(store),
            config: Config::default(),
            extractor: None,
            ids: Arc::new(UuidV4),
            clock: Arc::new(SystemClock),
            events: None,
            csrf: None,
            _data: PhantomData,
        }
    }

    /// The validated configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The CSRF protection, if it is on ([`SessionManagerBuilder::csrf`]).
    #[must_use]
    pub fn csrf(&self) -> Option<&crate::csrf::Csrf> {
        self.ctx.csrf.as_ref()
    }

    /// The id extractor in use.
    #[must_use]
    pub fn extractor(&self) -> &Extractor {
        &self.ctx.extractor
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn DynSessionStore> {
        &self.ctx.store
    }

    /// The start of one request's session: nothing is read or loaded until
    /// [`PendingSession::load`].
    #[must_use]
    pub fn begin(&self) -> PendingSession<T> {
        PendingSession {
            manager: self.clone(),
            incoming: OnceLock::new(),
            session: tokio::sync::OnceCell::new(),
            policy: crate::FailurePolicy::Fail,
        }
    }

    /// A new, empty session with a fresh id (store pattern). It is stored by
    /// [`Session::save`] once it holds data.
    ///
    /// # Errors
    /// [`SessionError::Generate`] when the OS random source fails.
    pub fn create(&self) -> Result<Session<T>, SessionError> {
        let id = self.ctx.ids.generate()?;
        Ok(Session::new_fresh(
            Arc::clone(&self.ctx),
            id,
            self.ctx.clock.now_ms(),
            false,
        ))
    }

    /// Loads the session stored under `id` (store pattern, e.g. background
    /// jobs). `Ok(None)` when there is none or it has expired (an expired one
    /// is deleted).
    ///
    /// # Errors
    /// [`SessionError::InvalidId`] for a malformed id (no store access);
    /// [`SessionError::Store`] when the store fails.
    pub async fn load_by_id(&self, id: &str) -> Result<Option<Session<T>>, SessionError> {
        let id = SessionId::parse(id)?;
        self.load_stored(id).await
    }

    /// Deletes the session stored under `id`.
    ///
    /// # Errors
    /// [`SessionError::InvalidId`] for a malformed id; [`SessionError::Store`].
    pub async fn delete_by_id(&self, id: &str) -> Result<(), SessionError> {
        let id = SessionId::parse(id)?;
        self.ctx.store.delete_boxed(&id).await?;
        self.ctx.observer.revoked(&id);
        Ok(())
    }

    /// Loads the session under `id`, following the tombstones of ids rotated
    /// less than a grace period ago (at most a few hops).
    async fn load_stored(&self, mut id: SessionId) -> Result<Option<Session<T>>, SessionError> {
        let now = self.ctx.clock.now_ms();
        let mut redirected = false;
        for _ in 0..=crate::plan::MAX_HOPS {
            match self.ctx.store.load_boxed(&id, now).await? {
                Loaded::Session(record) if !record.meta.is_expired(now) => {
                    return Ok(Some(Session::from_record(
                        Arc::clone(&self.ctx),
                        id,
                        record,
                        redirected,
                    )));
                }
                Loaded::Session(record) => {
                    self.ctx.observer.expired::<T>(&id, &record);
                    // Expired by its own timestamps, whatever the store's TTL did.
                    if let Err(error) = self.ctx.store.delete_boxed(&id).await {
                        tracing::warn!(error = %crate::error::chain(&error), "could not delete an expired session");
                    }
                    return Ok(None);
                }
                Loaded::Absent => return Ok(None),
                Loaded::Moved(to) => {
                    id = to;
                    redirected = true;
                }
            }
        }
        Ok(None)
    }

    /// The `Set-Cookie` value carrying `id`, with `Max-Age` = `max_age_secs`
    /// (`None`: a browser-session cookie).
    #[must_use]
    pub fn cookie_for(&self, name: &str, id: &SessionId, max_age_secs: Option<u64>) -> String {
        // On every changing request: appended by hand to the attributes the
        // `cookie` crate rendered once (the same bytes, without its
        // formatting machinery per response).
        id_cookie(name, id.as_str(), &self.ctx.cookie_attributes, max_age_secs)
    }

    /// The `Set-Cookie` value that removes the session cookie: same name,
    /// Path, Domain and Secure, empty value, expired.
    #[must_use]
    pub fn removal_cookie(&self, name: &str) -> String {
        let mut cookie = self.base_cookie(name, "");
        cookie.make_removal();
        cookie.to_string()
    }

    fn base_cookie(&self, name: &str, value: &str) -> Cookie<'static> {
        base_cookie(&self.ctx.config, name, value)
    }
}

/// `name=value` and `config`'s attributes, as a `cookie` crate cookie.
fn base_cookie(config: &Config, name: &str, value: &str) -> Cookie<'static> {
    let mut cookie = Cookie::new(name.to_owned(), value.to_owned());
    cookie.set_http_only(config.cookie_http_only);
    cookie.set_secure(config.cookie_secure);
    cookie.set_same_site(match config.cookie_same_site {
        SameSite::Strict => cookie::SameSite::Strict,
        SameSite::Lax => cookie::SameSite::Lax,
        SameSite::None => cookie::SameSite::None,
    });
    cookie.set_path(config.cookie_path.clone());
    if let Some(domain) = &config.cookie_domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

/// What `Set-Cookie` carries after `name=value` for `config`: the `cookie`
/// crate's rendering of a cookie with an empty name and value, minus its `=`.
fn cookie_attributes(config: &Config) -> String {
    let rendered = base_cookie(config, "", "").to_string();
    rendered.strip_prefix('=').unwrap_or(&rendered).to_owned()
}

/// The `Set-Cookie` value `name=value{attributes}[; Max-Age=secs]`.
fn id_cookie(name: &str, value: &str, attributes: &str, max_age_secs: Option<u64>) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + attributes.len() + 24);
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push_str(attributes);
    if let Some(secs) = max_age_secs {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        // Writing to a `String` cannot fail.
        let _ = write!(out, "; Max-Age={secs}");
    }
    out
}

/// How the id arrived in the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The id, if it passed validation. A malformed id is never used: the
    /// request gets a fresh session instead.
    pub id: Option<SessionId>,
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
    pub(crate) session: tokio::sync::OnceCell<Session<T>>,
    /// What a store failure gives (`degraded.rs`).
    pub(crate) policy: crate::FailurePolicy,
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
    /// Reads (once) where the request carries its id. Cheap: no store access.
    /// Later calls return the first answer.
    pub fn capture(&self, req: &dyn RequestView) -> Option<&Incoming> {
        self.incoming
            .get_or_init(|| {
                let found = self.manager.ctx.extractor.extract(req)?;
                let id = match SessionId::parse(&found.value) {
                    Ok(id) => Some(id),
                    Err(error) => {
                        self.manager.ctx.observer.malformed(&error);
                        tracing::debug!(%error, key = found.key, "ignoring a malformed session id");
                        None
                    }
                };
                Some(Incoming {
                    id,
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
                if let Some(id) = incoming.and_then(|i| i.id.clone()) {
                    if let Some(session) = self.manager.load_stored(id).await? {
                        crate::observe::record_span(&session);
                        return Ok(session);
                    }
                    self.manager.ctx.observer.unknown();
                }
                // The client presented an id that resolves to nothing: it is
                // cleared at commit unless a new session is stored.
                let stale = incoming.is_some_and(|i| i.source != SourceKind::Other);
                let ctx = &self.manager.ctx;
                let id = ctx.ids.generate()?;
                Ok(Session::new_fresh(
                    Arc::clone(ctx),
                    id,
                    ctx.clock.now_ms(),
                    stale,
                ))
            })
            .await
            .cloned();
        crate::degraded::on_load(self, loaded)
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
        let write = crate::degraded::on_commit(self, session.commit(failed).await)?;
        Ok(self.response_update(write))
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
                    header: header.map(|name| (name.to_owned(), id.as_str().to_owned())),
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
/// and add `Cache-Control: no-store` when either is present and the handler
/// set no `Cache-Control` of its own.
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

impl<T: SessionData> Session<T> {
    /// The manager this session belongs to (Fiber's `sess.Store()`): load or
    /// delete other sessions by id from a handler or a background task.
    #[must_use]
    pub fn manager(&self) -> SessionManager<T> {
        SessionManager::from_context(self.context())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_cookies_are_the_cookie_crates_rendering() {
        let configs = [
            Config::default(),
            Config::builder()
                .cookie_http_only(true)
                .cookie_secure(true)
                .cookie_same_site(SameSite::Strict)
                .cookie_path("/app")
                .cookie_domain("example.com")
                .build()
                .unwrap(),
            Config::builder()
                .cookie_same_site(SameSite::None)
                .cookie_secure(true)
                .build()
                .unwrap(),
        ];
        for config in &configs {
            let attributes = cookie_attributes(config);
            for max_age in [None, Some(0), Some(7200), Some(u64::MAX)] {
                let mut expected = base_cookie(config, "sid", "abc-123");
                if let Some(secs) = max_age {
                    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
                    expected.set_max_age(cookie::time::Duration::seconds(secs));
                }
                assert_eq!(
                    id_cookie("sid", "abc-123", &attributes, max_age),
                    expected.to_string()
                );
            }
        }
    }

    #[test]
    fn manager_default_config_is_valid() {
        // `SessionManager::new` skips validation because of this.
        Config::default().validate().unwrap();
    }
}
