//! Shared helpers and the store-generic acceptance suite for sessionkit.
//!
//! `acceptance_suite!(async { make_store() })` expands into one `#[tokio::test]`
//! per behaviour, each run against a store from the factory; the memory store,
//! Redis and Redis Cluster test files all call it.
#![forbid(unsafe_code)]
// This crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod acceptance;
pub mod redis_server;
pub mod store_contract;
pub mod support;
