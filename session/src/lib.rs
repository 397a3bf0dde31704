#![doc = include_str!("../README.md")]
//!
//! The guides are in [`guide`], one topic each.
//!
//! ## Configuration
//!
//! See [`Config`] for every key and its default.
//!
//! ## Sessions per user
//!
//! `#[session(principal)]` on the field that says whose session it is (e.g.
//! `user_id: Option<u64>`) indexes sessions by it: list a user's sessions
//! ([`SessionManager::list_sessions`], each named by an opaque
//! [`SessionHandle`], never its id), revoke one, all but the current one, or
//! all of them, and cap them with `maxSessionsPerUser`. After
//! [`SessionManager::revoke_all_sessions`] returns, no session the user had
//! when it was called is served again, whatever requests were in flight.
//! [`MemoryStore`], the Redis store and the PostgreSQL store keep the index;
//! see [`store::PrincipalIndex`] for what a store must do.
//!
//! ## Operability
//!
//! - **Metrics** through the `metrics` facade, free until a recorder is
//!   installed: sessions created, rotated, destroyed, expired, revoked,
//!   rejected ids, store latency and errors, session sizes, commits; the
//!   table of names and labels is in [`metrics`].
//! - **Lifecycle events** for a listener registered with
//!   [`SessionManagerBuilder::on_event`]; see [`events`].
//! - **Store failures**: [`CircuitBreaker`](breaker::CircuitBreaker) fails fast while a store keeps
//!   failing; [`FailurePolicy::Anonymous`] lets a request run with an
//!   anonymous, never-saved session instead of failing.
//! - **Tracing**: when a session is loaded inside a span that declares a
//!   `session` field (`tracing::info_span!("request", session =
//!   tracing::field::Empty)`), the field gets the id's [`events::Fingerprint`],
//!   never the id. Errors are logged once, with their causes, each cause once
//!   ([`ErrorChain`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod backend_failure;
pub mod breaker;
pub mod clock;
pub mod codec;
mod config;
mod context;
mod cookie_store;
mod csrf;
mod data;
mod degraded;
mod encrypted;
mod error;
pub mod events;
mod extractor;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod forward;
pub mod guide;
mod header_map;
pub mod id;
pub mod keys;
mod lifecycle;
mod memory;
pub mod metrics;
mod observe;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
mod principal;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod revocation;
mod signed_id;
pub mod store;
pub mod timeout;
mod turns;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// What an application author writes. Store authors: `store`; adapter
// authors: `adapter`; hand-written `SessionData` impls: `codec`; ids and
// id generators: `id`; store wrappers: `breaker`, `timeout`; keys: `keys`; test clocks:
// `clock`. Every public name has exactly one path.
pub use crate::config::{Config, ConfigBuilder, ConfigError, KeyLookup, LookupSource, SameSite};
pub use crate::cookie_store::CookieStore;
pub use crate::csrf::{Csrf, CsrfRejection};
pub use crate::data::SessionData;
pub use crate::degraded::FailurePolicy;
pub use crate::encrypted::EncryptedStore;
pub use crate::error::{ErrorChain, SessionError};
pub use crate::extractor::Extractor;
pub use crate::header_map::{HeaderMapConfig, HeaderMapError, HeaderMapping};
pub use crate::lifecycle::manager::{SessionManager, SessionManagerBuilder};
pub use crate::lifecycle::session::Session;
pub use crate::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use crate::postgres::{
    PostgresConfigError, PostgresStore, PostgresStoreBuilder, PostgresSweep,
};
pub use crate::principal::{InvalidHandle, SessionHandle, SessionInfo, ToPrincipalKey};
#[cfg(feature = "redis")]
pub use crate::redis::{
    NotReplicated, ReadCacheStats, RedisConfigError, RedisStore, RedisStoreBuilder,
};
pub use crate::signed_id::SignedIds;

/// `#[derive(SessionData)]`: see the `sessionkit-derive` crate.
#[cfg(feature = "derive")]
pub use sessionkit_derive::SessionData;
