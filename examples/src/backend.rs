//! `SESSION_STORE`: where the examples keep sessions. Unset, on a server
//! store (`REDIS_URL`, `DATABASE_URL`, else in memory; with `SESSION_KEYS`
//! the ids are signed and the values sealed at rest, see [`crate::keys`]).
//! `SESSION_STORE=cookie`: whole in the client's cookie, encrypted with
//! `SESSION_KEYS` ([`sessionkit::CookieStore::private`]), which it needs;
//! nothing is kept on the server then, so listing and revoking a user's
//! sessions is unsupported and `maxSessionsPerUser` is dropped from the
//! configuration.

use std::sync::Arc;

use sessionkit::store::DynSessionStore;
use sessionkit::{Config, CookieStore, SessionData, SessionManager, SessionManagerBuilder};

use crate::keys::SessionKeys;

/// Where sessions are kept.
#[derive(Clone)]
pub enum Backend {
    /// On a server store.
    Server(Arc<dyn DynSessionStore>),
    /// In the client's cookie (`SESSION_STORE=cookie`).
    Cookie,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server(_) => "Server",
            Self::Cookie => "Cookie",
        })
    }
}

/// Why `SESSION_STORE` cannot be honoured; each message names the
/// variables to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendEnvError {
    /// Another value than `cookie`.
    #[error("SESSION_STORE must be \"cookie\" (sessions in an encrypted cookie) or unset (a server store: REDIS_URL, DATABASE_URL, else memory), got {0:?}")]
    Unknown(String),
    /// `SESSION_STORE=cookie` without `SESSION_KEYS`.
    #[error("SESSION_STORE=cookie encrypts sessions with SESSION_KEYS, which is not set: set SESSION_KEYS to a base64 key of at least 32 bytes (openssl rand -base64 32)")]
    CookieWithoutKeys,
    /// `SESSION_STORE=cookie` with `REDIS_URL` or `DATABASE_URL`.
    #[error("SESSION_STORE=cookie keeps sessions in the client's cookie, not on a server: unset REDIS_URL and DATABASE_URL, or unset SESSION_STORE")]
    CookieWithServer,
}

/// Whether `SESSION_STORE`'s value asks for the cookie store, given
/// whether `SESSION_KEYS` and a server URL are set.
///
/// ```
/// use sessionkit_examples::backend::{wants_cookie, BackendEnvError};
/// assert_eq!(wants_cookie(None, false, false), Ok(false));
/// assert_eq!(wants_cookie(Some("cookie"), true, false), Ok(true));
/// assert_eq!(wants_cookie(Some("cookie"), false, false), Err(BackendEnvError::CookieWithoutKeys));
/// ```
///
/// # Errors
/// [`BackendEnvError`] for a value it does not know, or a cookie store
/// without keys or with a server URL.
pub fn wants_cookie(
    value: Option<&str>,
    keys: bool,
    server_url: bool,
) -> Result<bool, BackendEnvError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("cookie") => match (keys, server_url) {
            (false, _) => Err(BackendEnvError::CookieWithoutKeys),
            (true, true) => Err(BackendEnvError::CookieWithServer),
            (true, false) => Ok(true),
        },
        Some(other) => Err(BackendEnvError::Unknown(other.to_owned())),
    }
}

/// The backend `SESSION_STORE`, `REDIS_URL` and `DATABASE_URL` ask for.
///
/// # Errors
/// [`crate::gateway::GatewayError`] when a variable is refused or the
/// server store cannot be set up.
pub async fn backend_from_env(
    keys: Option<&SessionKeys>,
) -> Result<Backend, crate::gateway::GatewayError> {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let cookie = wants_cookie(
        std::env::var("SESSION_STORE").ok().as_deref(),
        keys.is_some(),
        set("REDIS_URL") || set("DATABASE_URL"),
    )?;
    if cookie {
        return Ok(Backend::Cookie);
    }
    Ok(Backend::Server(crate::gateway::store_from_env().await?))
}

/// The manager builder for `backend` with `config`: on a server store what
/// [`crate::keys::secure`] makes; in the cookie, a private cookie store
/// under `keys`, with `maxSessionsPerUser` dropped.
///
/// # Errors
/// [`BackendEnvError::CookieWithoutKeys`] for the cookie without keys.
pub fn builder<T: SessionData>(
    keys: Option<&SessionKeys>,
    backend: &Backend,
    config: Config,
) -> Result<SessionManagerBuilder<T>, BackendEnvError> {
    match backend {
        Backend::Server(store) => Ok(crate::keys::secure(keys, Arc::clone(store)).config(config)),
        Backend::Cookie => {
            let keys = keys.ok_or(BackendEnvError::CookieWithoutKeys)?;
            let mut config = config;
            config.max_sessions_per_user = None;
            Ok(
                SessionManager::cookie_builder(CookieStore::private(keys.keyring().clone()))
                    .config(config),
            )
        }
    }
}
