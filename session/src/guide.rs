//! Guides, one topic each. Documentation only: these modules hold no items.
//!
//! | guide | read it for |
//! |---|---|
//! | [`derive`](mod@derive) | what `#[derive(SessionData)]` generates: typed accessors, field attributes, header checks |
//! | [`config`] | every configuration key, its default, and how YAML/TOML map onto [`Config`](crate::Config) |
//! | [`cookies`] | where the id goes out, how long the cookie lives, idle and absolute timeouts |
//! | [`concurrency`] | what holds when requests of one session run at once: no lost updates, no resurrection, converging renewal |
//! | [`sessions_per_user`] | listing and revoking a user's sessions, `maxSessionsPerUser` |
//! | [`headers`] | session fields as request headers for downstream services |
//! | [`csrf`] | forms: CSRF tokens tied to the session (adapters check them), typed one-time flash messages |
//! | [`store_pattern`] | loading and saving sessions outside a request |
//! | [`stores`] | memory, Redis, Redis Cluster: what each guarantees and how to configure it; writing a store |
//! | [`keys`] | the keyring, key format and rotation; encryption at rest with `EncryptedStore`: what it protects and what it does not |
//! | [`cookie_store`] | sessions kept whole in a private or signed cookie: what it does per request, and what it cannot do |
//! | [`errors`] | what a client sees when something fails, and what is logged |
//! | [`operability`] | metrics, lifecycle events, tracing, the circuit breaker, serving while the store is down |

#[doc = include_str!("guide/derive.md")]
pub mod derive {}

#[doc = include_str!("guide/config.md")]
pub mod config {}

#[doc = include_str!("guide/cookies.md")]
pub mod cookies {}

#[doc = include_str!("guide/concurrency.md")]
pub mod concurrency {}

#[doc = include_str!("guide/sessions_per_user.md")]
pub mod sessions_per_user {}

#[doc = include_str!("guide/headers.md")]
pub mod headers {}

#[doc = include_str!("guide/store_pattern.md")]
pub mod store_pattern {}

#[doc = include_str!("guide/stores.md")]
pub mod stores {}

#[doc = include_str!("guide/cookie_store.md")]
pub mod cookie_store {}

#[doc = include_str!("guide/keys.md")]
pub mod keys {}

#[doc = include_str!("guide/errors.md")]
pub mod errors {}

#[doc = include_str!("guide/operability.md")]
pub mod operability {}

#[doc = include_str!("guide/csrf.md")]
pub mod csrf {}
