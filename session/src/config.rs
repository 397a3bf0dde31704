//! Session configuration: one struct that deserializes from the gateway
//! plugin's YAML (camelCase keys) and is checked before any request is served.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::extractor::Extractor;

/// How a session behaves: cookie attributes, id lookup, timeouts, limits.
///
/// Keys and defaults follow the gateway plugin's `LoadSessionMiddleware` and
/// Fiber's session middleware. Deserialize it from YAML, TOML or JSON (unknown
/// keys are refused), or build it with [`Config::builder`]; either way
/// [`Config::validate`] runs before a manager uses it.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `storage` | none (memory) | name of the storage backend, resolved by the app |
/// | `keyLookup` | `cookie:session_id` | where the id is read, e.g. `cookie:sid,header:X-Sid` |
/// | `cookieHTTPOnly` | `false` | `HttpOnly` attribute |
/// | `cookieSecure` | `false` | `Secure` attribute |
/// | `cookieSameSite` | `Lax` | `Strict`, `Lax` or `None` |
/// | `cookieSessionOnly` | `false` | no `Max-Age`: the cookie ends with the browser session |
/// | `cookieExpiration` | `2h` | the cookie's `Max-Age` |
/// | `cookiePath` | `/` | `Path` attribute |
/// | `cookieDomain` | none | `Domain` attribute |
/// | `idleTimeout` | `30m` | inactivity before the session expires |
/// | `absoluteTimeout` | unlimited | lifetime from creation, whatever the activity |
/// | `disableAutoRenew` | `false` | turn off id rotation |
/// | `autoRenewAfter` | `30m` | rotate the id once it is this old |
/// | `disableSessionForward` | `false` | strip the id from the request before handlers and downstream services see it |
/// | `maxSessionBytes` | `1048576` | largest encoded session; writes that would exceed it are refused |
/// | `rotationGracePeriod` | `5s` | how long an auto-renewed id still resolves to its session (requests already in flight with it are served and told the new id) |
/// | `touchAfter` | a tenth of the session's idle timeout | refresh the stored idle deadline at most this often; `0s` = on every request |
/// | `saveOnError` | `false` | also persist the changes of requests answered with a 5xx status or whose handler failed |
/// | `maxSessionsPerUser` | unlimited | when a session takes a principal (`#[session(principal)]`, e.g. at login) that already has this many live sessions, the least recently used ones are revoked |
///
/// ```
/// use sessionkit::Config;
/// let yaml = "keyLookup: \"cookie:session_id\"\ncookieHTTPOnly: true\ncookieExpiration: 2h\nautoRenewAfter: 30m\n";
/// let config: Config = serde_norway::from_str(yaml).unwrap();
/// config.validate().unwrap();
/// assert!(config.cookie_http_only);
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// The name of the storage backend; `None` means the in-memory store.
    pub storage: Option<String>,
    /// Where the session id is looked up.
    pub key_lookup: KeyLookup,
    /// The cookie's `HttpOnly` attribute.
    #[serde(rename = "cookieHTTPOnly", alias = "cookieHttpOnly")]
    pub cookie_http_only: bool,
    /// The cookie's `Secure` attribute.
    pub cookie_secure: bool,
    /// The cookie's `SameSite` attribute.
    pub cookie_same_site: SameSite,
    /// Whether the cookie lasts only as long as the browser session (no `Max-Age`).
    pub cookie_session_only: bool,
    /// The cookie's `Max-Age`.
    #[serde(with = "humantime_serde")]
    pub cookie_expiration: Duration,
    /// The cookie's `Path`.
    pub cookie_path: String,
    /// The cookie's `Domain`, if any.
    pub cookie_domain: Option<String>,
    /// Inactivity after which the session expires (sliding).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Lifetime from creation after which the session expires; `None` is unlimited.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Option<Duration>,
    /// Turns off id rotation.
    pub disable_auto_renew: bool,
    /// Age of an id after which it is rotated (data kept).
    #[serde(with = "humantime_serde")]
    pub auto_renew_after: Duration,
    /// Strips the session id from the request before handlers and downstream services see it.
    pub disable_session_forward: bool,
    /// The largest encoded session (field names + MessagePack values), in bytes.
    pub max_session_bytes: usize,
    /// How long an auto-renewed id still resolves to the session.
    #[serde(with = "humantime_serde")]
    pub rotation_grace_period: Duration,
    /// Refresh the stored idle deadline at most this often; `None` = a tenth
    /// of the session's idle timeout; zero = on every request.
    #[serde(with = "humantime_serde")]
    pub touch_after: Option<Duration>,
    /// Persist the changes of failed requests (5xx, or a failing handler) too.
    pub save_on_error: bool,
    /// The most live sessions one principal may have; `None` is unlimited.
    /// When a session takes a principal that already has this many, the
    /// least recently used others are revoked.
    pub max_sessions_per_user: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            storage: None,
            key_lookup: KeyLookup::default(),
            cookie_http_only: false,
            cookie_secure: false,
            cookie_same_site: SameSite::Lax,
            cookie_session_only: false,
            cookie_expiration: Duration::from_secs(2 * 60 * 60),
            cookie_path: "/".to_owned(),
            cookie_domain: None,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: None,
            disable_auto_renew: false,
            auto_renew_after: Duration::from_secs(30 * 60),
            disable_session_forward: false,
            max_session_bytes: 1024 * 1024,
            rotation_grace_period: Duration::from_secs(5),
            touch_after: None,
            save_on_error: false,
            max_sessions_per_user: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("storage", &self.storage)
            .field("keyLookup", &self.key_lookup.to_string())
            .field("cookieHTTPOnly", &self.cookie_http_only)
            .field("cookieSecure", &self.cookie_secure)
            .field("cookieSameSite", &self.cookie_same_site)
            .field("cookieSessionOnly", &self.cookie_session_only)
            .field("cookieExpiration", &self.cookie_expiration)
            .field("cookiePath", &self.cookie_path)
            .field("cookieDomain", &self.cookie_domain)
            .field("idleTimeout", &self.idle_timeout)
            .field("absoluteTimeout", &self.absolute_timeout)
            .field("disableAutoRenew", &self.disable_auto_renew)
            .field("autoRenewAfter", &self.auto_renew_after)
            .field("disableSessionForward", &self.disable_session_forward)
            .field("maxSessionBytes", &self.max_session_bytes)
            .field("rotationGracePeriod", &self.rotation_grace_period)
            .field("touchAfter", &self.touch_after)
            .field("saveOnError", &self.save_on_error)
            .field("maxSessionsPerUser", &self.max_sessions_per_user)
            .finish()
    }
}

impl Config {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionkit::{Config, SameSite};
    /// let config = Config::builder()
    ///     .key_lookup("cookie:__Host-sid")
    ///     .cookie_secure(true)
    ///     .cookie_same_site(SameSite::Strict)
    ///     .idle_timeout(Duration::from_secs(15 * 60))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.key_lookup.to_string(), "cookie:__Host-sid");
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Self::default(),
            key_lookup: None,
        }
    }

    /// Checks the combination of settings.
    ///
    /// # Errors
    /// The first [`ConfigError`] found; its message names the key to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("idleTimeout", Some(self.idle_timeout)),
            ("cookieExpiration", Some(self.cookie_expiration)),
            ("autoRenewAfter", Some(self.auto_renew_after)),
            ("absoluteTimeout", self.absolute_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration { key });
            }
        }
        if self.max_session_bytes == 0 {
            return Err(ConfigError::ZeroMaxSessionBytes);
        }
        if self.max_sessions_per_user == Some(0) {
            return Err(ConfigError::ZeroMaxSessionsPerUser);
        }
        if let Some(absolute) = self.absolute_timeout {
            if absolute < self.idle_timeout {
                return Err(ConfigError::AbsoluteShorterThanIdle {
                    absolute,
                    idle: self.idle_timeout,
                });
            }
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if self.cookie_path.is_empty() || !self.cookie_path.starts_with('/') {
            return Err(ConfigError::CookiePath(self.cookie_path.clone()));
        }
        if self
            .cookie_path
            .bytes()
            .chain(self.cookie_domain.iter().flat_map(|d| d.bytes()))
            .any(|b| b == b';' || b.is_ascii_control() || !b.is_ascii())
        {
            return Err(ConfigError::CookieAttribute);
        }
        for (source, name) in &self.key_lookup.entries {
            if *source != LookupSource::Cookie {
                continue;
            }
            if name.starts_with("__Host-") {
                if !self.cookie_secure {
                    return Err(ConfigError::HostPrefix {
                        name: name.clone(),
                        problem: "needs cookieSecure: true",
                    });
                }
                if self.cookie_domain.is_some() {
                    return Err(ConfigError::HostPrefix {
                        name: name.clone(),
                        problem: "must not have a cookieDomain",
                    });
                }
                if self.cookie_path != "/" {
                    return Err(ConfigError::HostPrefix {
                        name: name.clone(),
                        problem: "needs cookiePath \"/\"",
                    });
                }
            }
            if name.starts_with("__Secure-") && !self.cookie_secure {
                return Err(ConfigError::SecurePrefix { name: name.clone() });
            }
        }
        Ok(())
    }

    /// The id extractor that `keyLookup` describes.
    #[must_use]
    pub fn extractor(&self) -> Extractor {
        self.key_lookup.to_extractor()
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] validates it.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
    key_lookup: Option<String>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.config.$name = value.into();
            self
        }
    )*};
}

impl ConfigBuilder {
    setters! {
        /// Sets `cookieHTTPOnly`.
        cookie_http_only: bool,
        /// Sets `cookieSecure`.
        cookie_secure: bool,
        /// Sets `cookieSameSite`.
        cookie_same_site: SameSite,
        /// Sets `cookieSessionOnly`.
        cookie_session_only: bool,
        /// Sets `cookieExpiration`.
        cookie_expiration: Duration,
        /// Sets `cookiePath`.
        cookie_path: String,
        /// Sets `idleTimeout`.
        idle_timeout: Duration,
        /// Sets `disableAutoRenew`.
        disable_auto_renew: bool,
        /// Sets `autoRenewAfter`.
        auto_renew_after: Duration,
        /// Sets `disableSessionForward`.
        disable_session_forward: bool,
        /// Sets `maxSessionBytes`.
        max_session_bytes: usize,
        /// Sets `rotationGracePeriod`.
        rotation_grace_period: Duration,
        /// Sets `saveOnError`.
        save_on_error: bool,
    }

    /// Sets `touchAfter` (zero: refresh the idle deadline on every request).
    pub fn touch_after(mut self, every: Duration) -> Self {
        self.config.touch_after = Some(every);
        self
    }

    /// Sets `storage`.
    pub fn storage(mut self, name: impl Into<String>) -> Self {
        self.config.storage = Some(name.into());
        self
    }

    /// Sets `cookieDomain`.
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie_domain = Some(domain.into());
        self
    }

    /// Sets `maxSessionsPerUser`.
    pub fn max_sessions_per_user(mut self, max: u32) -> Self {
        self.config.max_sessions_per_user = Some(max);
        self
    }

    /// Sets `absoluteTimeout`.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config.absolute_timeout = Some(timeout);
        self
    }

    /// Sets `keyLookup` from its string form (parsed by [`ConfigBuilder::build`]).
    pub fn key_lookup(mut self, lookup: impl Into<String>) -> Self {
        self.key_lookup = Some(lookup.into());
        self
    }

    /// Parses and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending key.
    pub fn build(mut self) -> Result<Config, ConfigError> {
        if let Some(lookup) = self.key_lookup.take() {
            self.config.key_lookup = lookup.parse()?;
        }
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The cookie's `SameSite` attribute. Parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default).
    #[default]
    Lax,
    /// `SameSite=None`; requires `cookieSecure`.
    None,
}

impl FromStr for SameSite {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err(ConfigError::SameSite(s.to_owned())),
        }
    }
}

impl<'de> Deserialize<'de> for SameSite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where `keyLookup` looks: `source:name` pairs, tried in order.
///
/// ```
/// use sessionkit::KeyLookup;
/// let lookup: KeyLookup = "cookie:sid,header:X-Sid".parse().unwrap();
/// assert_eq!(lookup.to_string(), "cookie:sid,header:X-Sid");
/// assert!("body:sid".parse::<KeyLookup>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLookup {
    entries: Vec<(LookupSource, String)>,
}

/// A `keyLookup` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupSource {
    /// `cookie:NAME`
    Cookie,
    /// `header:NAME`
    Header,
    /// `query:NAME`
    Query,
    /// `form:NAME`
    Form,
    /// `param:NAME`
    Param,
}

impl LookupSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cookie => "cookie",
            Self::Header => "header",
            Self::Query => "query",
            Self::Form => "form",
            Self::Param => "param",
        }
    }
}

impl KeyLookup {
    /// The extractor chain this lookup describes.
    #[must_use]
    pub fn to_extractor(&self) -> Extractor {
        let parts = self.entries.iter().map(|(source, name)| match source {
            LookupSource::Cookie => Extractor::cookie(name),
            LookupSource::Header => Extractor::header(name),
            LookupSource::Query => Extractor::query(name),
            LookupSource::Form => Extractor::form(name),
            LookupSource::Param => Extractor::param(name),
        });
        Extractor::chain(parts)
    }

    /// The `(source, name)` pairs in order.
    #[must_use]
    pub fn entries(&self) -> &[(LookupSource, String)] {
        &self.entries
    }
}

impl Default for KeyLookup {
    fn default() -> Self {
        Self {
            entries: vec![(LookupSource::Cookie, "session_id".to_owned())],
        }
    }
}

impl fmt::Display for KeyLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (source, name)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{name}", source.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for KeyLookup {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for entry in s.split(',').map(str::trim) {
            let (source, name) = entry
                .split_once(':')
                .ok_or_else(|| ConfigError::KeyLookup {
                    entry: entry.to_owned(),
                    problem: "expected SOURCE:NAME, e.g. cookie:session_id",
                })?;
            let source = match source.trim() {
                "cookie" => LookupSource::Cookie,
                "header" => LookupSource::Header,
                "query" => LookupSource::Query,
                "form" => LookupSource::Form,
                "param" => LookupSource::Param,
                _ => {
                    return Err(ConfigError::KeyLookup {
                        entry: entry.to_owned(),
                        problem: "unknown source; use cookie, header, query, form or param",
                    })
                }
            };
            let name = name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                return Err(ConfigError::KeyLookup {
                    entry: entry.to_owned(),
                    problem: "the name must be a non-empty token without spaces or separators",
                });
            }
            entries.push((source, name.to_owned()));
        }
        Ok(Self { entries })
    }
}

impl<'de> Deserialize<'de> for KeyLookup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A configuration that cannot work, with the key to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration key was zero.
    #[error("{key} must be longer than zero")]
    ZeroDuration {
        /// The offending key.
        key: &'static str,
    },
    /// `maxSessionBytes: 0`.
    #[error("maxSessionBytes must be larger than zero")]
    ZeroMaxSessionBytes,
    /// `maxSessionsPerUser: 0`.
    #[error("maxSessionsPerUser must be at least 1 (leave it out for no limit)")]
    ZeroMaxSessionsPerUser,
    /// `absoluteTimeout` < `idleTimeout`.
    #[error("absoluteTimeout ({}) is shorter than idleTimeout ({}); raise absoluteTimeout or lower idleTimeout", humantime::format_duration(*.absolute), humantime::format_duration(*.idle))]
    AbsoluteShorterThanIdle {
        /// The configured absolute timeout.
        absolute: Duration,
        /// The configured idle timeout.
        idle: Duration,
    },
    /// `cookieSameSite: None` without `cookieSecure: true`.
    #[error(
        "cookieSameSite: None requires cookieSecure: true (browsers reject such cookies otherwise)"
    )]
    SameSiteNoneWithoutSecure,
    /// A `__Host-` cookie with incompatible attributes.
    #[error("keyLookup cookie {name:?} uses the __Host- prefix, which {problem}")]
    HostPrefix {
        /// The cookie name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A `__Secure-` cookie without `cookieSecure`.
    #[error("keyLookup cookie {name:?} uses the __Secure- prefix, which needs cookieSecure: true")]
    SecurePrefix {
        /// The cookie name.
        name: String,
    },
    /// A bad `cookiePath`.
    #[error("cookiePath {0:?} must start with \"/\"")]
    CookiePath(String),
    /// `cookiePath` or `cookieDomain` holds `;`, control or non-ASCII characters.
    #[error("cookiePath and cookieDomain must be ASCII without ';' or control characters")]
    CookieAttribute,
    /// An unparsable `cookieSameSite`.
    #[error("cookieSameSite {0:?} is not one of Strict, Lax, None")]
    SameSite(String),
    /// A setting the cookie store cannot honour.
    #[error("the cookie store {problem}")]
    CookieStore {
        /// What is wrong.
        problem: &'static str,
    },
    /// An unparsable `keyLookup` entry.
    #[error("keyLookup entry {entry:?}: {problem}")]
    KeyLookup {
        /// The entry as written.
        entry: String,
        /// What is wrong.
        problem: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_references() {
        let c = Config::default();
        assert_eq!(c.key_lookup.to_string(), "cookie:session_id");
        assert!(!c.cookie_http_only && !c.cookie_secure && !c.cookie_session_only);
        assert_eq!(c.cookie_same_site, SameSite::Lax);
        assert_eq!(c.cookie_expiration, Duration::from_secs(7200));
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.auto_renew_after, Duration::from_secs(1800));
        assert_eq!(c.absolute_timeout, None);
        c.validate().unwrap();
    }

    #[test]
    fn key_lookup_parses_and_refuses() {
        let l: KeyLookup = "cookie:sid, header:X-Sid,query:s,form:f,param:p"
            .parse()
            .unwrap();
        assert_eq!(l.entries().len(), 5);
        assert!(matches!(
            "cookie".parse::<KeyLookup>(),
            Err(ConfigError::KeyLookup { .. })
        ));
        assert!("cookie:".parse::<KeyLookup>().is_err());
        assert!("cookie:a b".parse::<KeyLookup>().is_err());
    }
}
