//! The session manager: configuration, store, id generator and clock in one
//! place; it loads sessions lazily for requests and by id for background work,
//! and turns a commit into what the response must carry.

use std::fmt::{self, Write as _};

mod pending;
mod per_user;

pub use pending::{Incoming, PendingSession, ResponseUpdate};
use std::marker::PhantomData;
use std::sync::Arc;

use cookie::Cookie;

use crate::clock::{duration_ms, Clock, SystemClock};
use crate::config::{Config, ConfigError, SameSite};
use crate::context::Context;
use crate::data::SessionData;
use crate::error::SessionError;
use crate::extractor::Extractor;
use crate::id::{IdGenerator, SessionId, UuidV4};
use crate::lifecycle::session::Session;
use crate::lifecycle::state::Reached;
use crate::plan::Rules;
use crate::store::{DynSessionStore, Loaded, SessionStore};

/// Creates, loads and commits sessions of type `T` against one store.
///
/// Framework integrations hold one manager and call
/// [`SessionManager::begin`] per request; background jobs use the store
/// pattern: [`SessionManager::load_by_id`], change, [`Session::save`].
///
/// ```
/// # use sessionkit::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::codec::*;
/// # use sessionkit::id::Base64Url128;
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
    signed_ids: Option<crate::signed_id::SignedIds>,
    cookie: Option<crate::cookie_store::CookieStore>,
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

    /// Signs the ids given to clients (cookie or header): a presented id
    /// whose MAC no key of the keyring made is refused before any store
    /// lookup, and the request gets a fresh session. An id signed under a
    /// fallback key (or, with [`SignedIds::accept_unsigned`], not signed)
    /// is accepted and answered with a token under the primary key. See
    /// [`SignedIds`](crate::SignedIds) and the keys guide.
    ///
    /// [`SignedIds::accept_unsigned`]: crate::SignedIds::accept_unsigned
    pub fn signed_ids(mut self, signed: crate::signed_id::SignedIds) -> Self {
        self.signed_ids = Some(signed);
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
        if self.cookie.is_some() {
            cookie_store_fits(&self.config, &extractor, self.signed_ids.is_some())?;
        }
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
        let policy = Rules {
            renew_ms: (!config.disable_auto_renew).then(|| duration_ms(config.auto_renew_after)),
            grace_ms: duration_ms(config.rotation_grace_period),
            touch_after_ms: config.touch_after.map(duration_ms),
            cookie_ms: duration_ms(config.cookie_expiration),
            cookie_session_only: config.cookie_session_only,
            idle_ms: duration_ms(config.idle_timeout),
            max_bytes: config.max_session_bytes,
            max_sessions_per_user: config
                .max_sessions_per_user
                .map(|cap| usize::try_from(cap).unwrap_or(usize::MAX)),
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
                stripes: crate::turns::Stripes::new(),
                store: crate::observe::instrument(self.store, &observer),
                observer,
                extractor,
                ids: self.ids,
                clock: self.clock,
                cookie_attributes: cookie_attributes(&config).into(),
                csrf: self.csrf,
                signed_ids: self.signed_ids,
                cookie: self.cookie,
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
            signed_ids: None,
            cookie: None,
            _data: PhantomData,
        }
    }

    /// A builder for sessions kept whole in the client's cookie, sealed by
    /// `cookies` (see [`CookieStore`](crate::CookieStore) for what such a
    /// store can and cannot do). The id source must be a cookie (the
    /// default `keyLookup` is); `build` refuses `maxSessionsPerUser` and
    /// signed ids, which need a server store.
    ///
    /// ```
    /// use sessionkit::keys::Keyring;
    /// use sessionkit::{Config, CookieStore, SessionManager};
    /// #[derive(sessionkit::SessionData, Default)]
    /// struct Cart { items: u32 }
    /// let keys = Keyring::from_base64_list("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")?;
    /// let manager = SessionManager::<Cart>::cookie_builder(CookieStore::private(keys))
    ///     .config(Config::builder().cookie_http_only(true).build()?)
    ///     .build()?;
    /// assert!(manager.config().cookie_http_only);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cookie_builder(cookies: crate::cookie_store::CookieStore) -> SessionManagerBuilder<T> {
        let mut builder = Self::builder(crate::cookie_store::ClientSide);
        builder.cookie = Some(cookies);
        builder
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
        PendingSession::new(self.clone())
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
        self.load_stored(id, Reached::Directly).await
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
    async fn load_stored(
        &self,
        mut id: SessionId,
        mut reached: Reached,
    ) -> Result<Option<Session<T>>, SessionError> {
        let now = self.ctx.clock.now_ms();
        for _ in 0..=crate::plan::MAX_HOPS {
            match self.ctx.store.load_boxed(&id, now).await? {
                Loaded::Session(record) if !record.meta.is_expired(now) => {
                    return Ok(Some(Session::from_record(
                        Arc::clone(&self.ctx),
                        id,
                        record,
                        reached,
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
                    reached = Reached::ThroughTombstone;
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
        id_cookie(
            name,
            &self.client_id(id),
            &self.ctx.cookie_attributes,
            max_age_secs,
        )
    }

    /// The `Set-Cookie` value carrying a cookie store's sealed session.
    pub(crate) fn sealed_cookie(
        &self,
        name: &str,
        value: &str,
        max_age_secs: Option<u64>,
    ) -> String {
        id_cookie(name, value, &self.ctx.cookie_attributes, max_age_secs)
    }

    /// The id as a client presents it: with [signed ids](SessionManagerBuilder::signed_ids)
    /// the signed token (`<id>.<tag>`), otherwise the id itself. Use it to
    /// put a session into a link (a query or path id source).
    ///
    /// ```
    /// # use sessionkit::{MemoryStore, SessionManager};
    /// # #[derive(sessionkit::SessionData, Default)] struct Cart { items: u32 }
    /// let manager = SessionManager::<Cart>::new(MemoryStore::new());
    /// let id = sessionkit::id::SessionId::parse("0123456789abcdef0123")?;
    /// assert_eq!(manager.client_id(&id), "0123456789abcdef0123");
    /// # Ok::<(), sessionkit::id::InvalidId>(())
    /// ```
    #[must_use]
    pub fn client_id<'a>(&self, id: &'a SessionId) -> std::borrow::Cow<'a, str> {
        match &self.ctx.signed_ids {
            Some(signed) => std::borrow::Cow::Owned(signed.token(id)),
            None => std::borrow::Cow::Borrowed(id.as_str()),
        }
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

/// Whether the cookie store can work with this configuration.
fn cookie_store_fits(
    config: &Config,
    extractor: &Extractor,
    signed_ids: bool,
) -> Result<(), ConfigError> {
    let problem = if extractor.cookie_name().is_none() {
        Some("needs a cookie in keyLookup (the session travels in it)")
    } else if config.max_sessions_per_user.is_some() {
        Some("keeps no sessions on the server, so it cannot count or evict a user's sessions: leave maxSessionsPerUser out")
    } else if signed_ids {
        Some("seals the whole session already: signed ids are for server stores")
    } else {
        None
    };
    problem.map_or(Ok(()), |problem| Err(ConfigError::CookieStore { problem }))
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

impl<T: SessionData + Clone> SessionManagerBuilder<T> {
    /// Delivers lifecycle events to `listener` on a thread of its own, with a
    /// queue of [`DEFAULT_QUEUE_CAPACITY`](crate::events::DEFAULT_QUEUE_CAPACITY) events (see the [module
    /// docs](crate::events)). A second call replaces the first listener.
    pub fn on_event(self, listener: impl crate::events::SessionListener<T>) -> Self {
        self.on_event_with_capacity(listener, crate::events::DEFAULT_QUEUE_CAPACITY)
    }

    /// [`on_event`](Self::on_event) with a queue of `capacity` events
    /// (at least 1): when the listener falls this far behind, new events
    /// are dropped and counted.
    pub fn on_event_with_capacity(
        mut self,
        listener: impl crate::events::SessionListener<T>,
        capacity: usize,
    ) -> Self {
        match crate::events::spawn(listener, capacity) {
            Ok(queue) => self.events = Some(Arc::new(queue)),
            Err(error) => tracing::error!(
                error = %crate::ErrorChain(&error),
                "could not start the session event thread; lifecycle events are not delivered"
            ),
        }
        self
    }
}

impl<T: SessionData> SessionManager<T> {
    /// How many lifecycle events were delivered, dropped on a full queue,
    /// or lost to a panicking listener; `None` without a listener.
    #[must_use]
    pub fn event_stats(&self) -> Option<crate::events::EventStats> {
        self.ctx.observer.event_stats()
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
