//! Shared test support: a session struct, counting and failing store
//! wrappers, and small HTTP helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::dev::ServiceResponse;
use sessionkit::store::{Loaded, Write, Written};
use sessionkit::{MemoryStore, SessionData, SessionId, SessionStore, StoreError};

/// The test session.
#[derive(SessionData, Default, Debug, Clone, PartialEq)]
pub struct User {
    pub visits: u32,
    #[header("X-User-Id")]
    pub user_id: Option<u64>,
    #[header("X-User-Name")]
    pub name: Option<String>,
    pub authenticated: bool,
}

/// Counts every store call; wraps a memory store.
#[derive(Clone, Default)]
pub struct CountingStore {
    inner: MemoryStore,
    calls: Arc<AtomicUsize>,
}

impl CountingStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl SessionStore for CountingStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.hit();
        self.inner.load(id, now).await
    }
    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.hit();
        self.inner.write(write).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.hit();
        self.inner.delete(id).await
    }
}

/// A memory store that fails every call while `fail` is on.
#[derive(Clone, Default)]
pub struct FailingStore {
    inner: MemoryStore,
    fail: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Down;
impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused (secret-backend.internal:6379)")
    }
}
impl std::error::Error for Down {}

impl FailingStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(Down))
        } else {
            Ok(())
        }
    }
}

impl SessionStore for FailingStore {
    async fn load(&self, id: &SessionId, now: u64) -> Result<Loaded, StoreError> {
        self.check()?;
        self.inner.load(id, now).await
    }
    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        self.check()?;
        self.inner.write(write).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(id).await
    }
}

/// Every `Set-Cookie` of a response, parsed.
pub fn set_cookies<B>(res: &ServiceResponse<B>) -> Vec<Cookie<'static>> {
    res.headers()
        .get_all("set-cookie")
        .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
        .collect()
}

/// The single `Set-Cookie` named `name`, if any.
pub fn set_cookie<B>(res: &ServiceResponse<B>, name: &str) -> Option<Cookie<'static>> {
    let mut found: Vec<_> = set_cookies(res)
        .into_iter()
        .filter(|c| c.name() == name)
        .collect();
    assert!(found.len() <= 1, "several Set-Cookie for {name}");
    found.pop()
}

/// The value of response header `name`.
pub fn header<B>(res: &ServiceResponse<B>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A well-formed id that no server issued.
pub const FORGED: &str = "0123456789abcdef0123456789abcdef";
