//! `SESSION_KEYS`: the keyring the examples read from the environment, and
//! what it turns on for a server store (memory, Redis, PostgreSQL): signed
//! session ids and field values encrypted at rest.
//!
//! `SESSION_KEYS` is a comma-separated list of base64 keys of at least 32
//! bytes, the primary first (`SESSION_KEYS=$(openssl rand -base64 32)`; to
//! rotate, put the new key first and keep the old one after it).
//! `SESSION_KEYS_MIGRATION=1` opens a migration window for a deployment
//! that ran without keys: ids issued before (unsigned) are accepted and
//! answered with signed ones, and values stored in clear are read and
//! sealed on their next write. Without it, turning keys on ends every
//! session once.

use std::sync::Arc;

use sessionkit::keys::{KeyError, Keyring};
use sessionkit::store::DynSessionStore;
use sessionkit::{EncryptedStore, SessionManagerBuilder, SignedIds};

/// What `SESSION_KEYS` (and `SESSION_KEYS_MIGRATION`) ask for.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    keys: Keyring,
    migration: bool,
}

/// Why `SESSION_KEYS` was refused: the message names the variable and the
/// position of the bad key, never a key.
#[derive(Debug, thiserror::Error)]
#[error("SESSION_KEYS")]
pub struct KeysEnvError(#[from] KeyError);

impl SessionKeys {
    /// The keys `list` holds (`SESSION_KEYS`'s value), in a migration window
    /// (`SESSION_KEYS_MIGRATION`) or not.
    ///
    /// ```
    /// use sessionkit_examples::keys::SessionKeys;
    /// let keys = SessionKeys::parse("c2Vzc2lvbmtpdC1kb2MtZXhhbXBsZS1rZXktb2YtMzItYnl0ZXM=", false)?;
    /// # let _ = keys;
    /// assert!(SessionKeys::parse("not base64!", false).is_err());
    /// # Ok::<(), sessionkit_examples::keys::KeysEnvError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeysEnvError`] when the list is empty or a key is malformed or short.
    pub fn parse(list: &str, migration: bool) -> Result<Self, KeysEnvError> {
        Ok(Self {
            keys: Keyring::from_base64_list(list)?,
            migration,
        })
    }

    /// `SESSION_KEYS` and `SESSION_KEYS_MIGRATION` from the environment;
    /// `None` when `SESSION_KEYS` is unset.
    ///
    /// # Errors
    /// [`KeysEnvError`] when it is set but malformed.
    pub fn from_env() -> Result<Option<Self>, KeysEnvError> {
        let Ok(list) = std::env::var("SESSION_KEYS") else {
            return Ok(None);
        };
        let migration = std::env::var("SESSION_KEYS_MIGRATION")
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        Self::parse(&list, migration).map(Some)
    }

    /// The keyring (what the cookie store seals with).
    #[must_use]
    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// `store` with its field values sealed at rest.
    #[must_use]
    pub fn encrypt(&self, store: Arc<dyn DynSessionStore>) -> Arc<dyn DynSessionStore> {
        Arc::new(EncryptedStore::new(store, self.keys.clone()).accept_plaintext(self.migration))
    }

    /// `builder` with signed ids.
    pub fn sign<T: sessionkit::SessionData>(
        &self,
        builder: SessionManagerBuilder<T>,
    ) -> SessionManagerBuilder<T> {
        builder.signed_ids(SignedIds::new(self.keys.clone()).accept_unsigned(self.migration))
    }
}

/// `builder` signed and its store encrypted when `keys` is set: what every
/// example does with `SESSION_KEYS`.
pub fn secure<T: sessionkit::SessionData>(
    keys: Option<&SessionKeys>,
    store: Arc<dyn DynSessionStore>,
) -> SessionManagerBuilder<T> {
    match keys {
        Some(keys) => keys.sign(sessionkit::SessionManager::builder(keys.encrypt(store))),
        None => sessionkit::SessionManager::builder(store),
    }
}
