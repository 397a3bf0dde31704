//! Shared helpers, the store-generic acceptance suite and the
//! adapter-generic HTTP conformance suite for sessionkit.
//!
//! `acceptance_suite!(async { make_store() })` expands into one `#[tokio::test]`
//! per behaviour, each run against a store from the factory; the memory store,
//! Redis and Redis Cluster test files all call it.
//!
//! `conformance_suite!(Adapter, async { make_store() })` expands into one
//! `#[test]` per HTTP behaviour for one web-framework adapter;
//! `tests/conformance_actix.rs` and `tests/conformance_axum.rs` call it for
//! the memory store, Redis and the Redis Cluster.
#![forbid(unsafe_code)]
// This crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod acceptance;
pub mod browser;
pub mod conformance;
pub mod cookie_cases;
pub mod per_user;
pub mod postgres_server;
pub mod redis_server;
pub mod resp_proxy;
pub mod store_contract;
pub mod support;
