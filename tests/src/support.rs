//! Test doubles: a request view, a store that records calls or fails on
//! demand, and hand-written `SessionData` types.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sessionkit::adapter::{find_urlencoded, RequestView};
use sessionkit::codec::{decode_value, encode_value, DecodeError, EncodeError, Field, FieldInfo};
use sessionkit::store::{self, DynSessionStore, SessionStore, StoreError, StoreLayer, Write};
use sessionkit::{SessionData, ToPrincipalKey};
use tokio::sync::{Notify, Semaphore};

/// A request made of headers, a query string, a form body and path params.
#[derive(Debug, Default, Clone)]
pub struct TestRequest {
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The raw query string.
    pub query: String,
    /// A urlencoded body.
    pub form: String,
    /// Path parameters.
    pub params: Vec<(String, String)>,
}

impl TestRequest {
    /// An empty request.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `Cookie: name=value`.
    #[must_use]
    pub fn cookie(self, name: &str, value: &str) -> Self {
        self.header("cookie", &format!("{name}={value}"))
    }

    /// Sets the query string.
    #[must_use]
    pub fn query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }

    /// Sets the form body.
    #[must_use]
    pub fn form(mut self, form: &str) -> Self {
        self.form = form.to_owned();
        self
    }

    /// Adds a path parameter.
    #[must_use]
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl RequestView for TestRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn query_string(&self) -> &str {
        &self.query
    }
    fn form(&self, name: &str) -> Option<Cow<'_, str>> {
        find_urlencoded(self.form.as_bytes(), name)
    }
    fn path_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

/// One call a [`RecordingStore`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
// A test double's record: matched by value in tests, size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Call {
    /// `load(id)`
    Load(String),
    /// `write(write)`
    Write(Box<Write>),
    /// `delete(id)`
    Delete(String),
    /// `principal_sessions(principal)`
    ListPrincipal(String),
    /// `revoke_principal_sessions(principal, take)`
    RevokePrincipal(String),
}

impl Call {
    /// The write, if this call is one.
    #[must_use]
    pub fn as_write(&self) -> Option<&Write> {
        match self {
            Self::Write(write) => Some(write),
            _ => None,
        }
    }
}

/// Holds every write (before it reaches the store) or every load (after it
/// read the store) until released: makes
/// interleavings of concurrent requests deterministic without sleeping.
#[derive(Debug)]
pub struct Gate {
    waiting: AtomicUsize,
    arrived: Notify,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            arrived: Notify::new(),
            open: Semaphore::new(0),
        }
    }
}

impl Gate {
    async fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
        if let Ok(permit) = self.open.acquire().await {
            permit.forget();
        }
    }

    /// Waits until `n` calls are held at the gate.
    pub async fn arrived(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Lets `n` held (or future) calls through.
    pub fn release(&self, n: usize) {
        self.open.add_permits(n);
    }

    /// Lets every call through from now on.
    pub fn open(&self) {
        self.open.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Wraps a store, records every call, fails every call while `failing` is
/// set, sleeps before every call while a delay is set (a slow or hung
/// backend), and holds writes or loads at a [`Gate`] when one is set.
#[derive(Clone)]
pub struct RecordingStore {
    inner: Arc<dyn DynSessionStore>,
    calls: Arc<Mutex<Vec<Call>>>,
    failing: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    write_gate: Arc<Mutex<Option<Arc<Gate>>>>,
    load_gate: Arc<Mutex<Option<Arc<Gate>>>>,
}

impl std::fmt::Debug for RecordingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingStore").finish_non_exhaustive()
    }
}

impl RecordingStore {
    /// Wraps `inner`.
    pub fn new(inner: impl SessionStore) -> Self {
        Self {
            inner: Arc::new(inner),
            calls: Arc::default(),
            failing: Arc::default(),
            delay_ms: Arc::default(),
            write_gate: Arc::default(),
            load_gate: Arc::default(),
        }
    }

    /// Every later call first sleeps this long (zero: no sleep).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Holds every later write at a new gate, returned.
    pub fn gate_writes(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.write_gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&gate));
        gate
    }

    /// Holds every later load at a new gate, returned.
    pub fn gate_loads(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.load_gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&gate));
        gate
    }

    /// No gate from now on (held calls stay held until their gate releases them).
    pub fn ungate(&self) {
        self.write_gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.load_gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    async fn pause(&self) {
        let ms = self.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// The calls so far, and forget them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes every call fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    async fn pass(&self, gate: &Mutex<Option<Arc<Gate>>>) {
        let gate = gate.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(gate) = gate {
            gate.pass().await;
        }
    }

    fn record(&self, call: Call) -> Result<(), StoreError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "injected failure",
            )))
        } else {
            Ok(())
        }
    }
}

impl StoreLayer for RecordingStore {
    type Inner = dyn DynSessionStore;

    fn inner(&self) -> &Self::Inner {
        &*self.inner
    }

    async fn around<'a, T: Send + 'a>(
        &'a self,
        call: store::Call<'a>,
        operation: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> Result<T, StoreError> {
        let (seen, gate) = match call {
            store::Call::Load(id) => (Call::Load(id.to_string()), None),
            store::Call::Write(write) => {
                (Call::Write(Box::new(write.clone())), Some(&self.write_gate))
            }
            store::Call::Delete(id) => (Call::Delete(id.to_string()), None),
            store::Call::PrincipalSessions(principal) => {
                (Call::ListPrincipal(principal.to_string()), None)
            }
            store::Call::RevokePrincipalSessions(principal) => {
                (Call::RevokePrincipal(principal.to_string()), None)
            }
            _ => unreachable!("a store call this double does not know"),
        };
        let load = matches!(call, store::Call::Load(_));
        self.record(seen)?;
        self.pause().await;
        if let Some(gate) = gate {
            self.pass(gate).await;
        }
        let answer = operation.await;
        if load {
            // Held after the read: every request held here has seen the same state.
            self.pass(&self.load_gate).await;
        }
        answer
    }
}

/// A hand-written `SessionData`: the trait does not need the derive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Stored as `name`.
    pub name: String,
    /// Stored as `visits`.
    pub visits: u32,
    /// Stored as `tags`.
    pub tags: Vec<String>,
    /// Stored as `user_id`.
    pub user_id: Option<u64>,
}

/// `Profile::name`.
pub const NAME: Field<Profile, String> = Field::new(0, |p| &p.name, |p| &mut p.name);
/// `Profile::visits`.
pub const VISITS: Field<Profile, u32> = Field::new(1, |p| &p.visits, |p| &mut p.visits);
/// `Profile::tags`.
pub const TAGS: Field<Profile, Vec<String>> = Field::new(2, |p| &p.tags, |p| &mut p.tags);
/// `Profile::user_id`.
pub const USER_ID: Field<Profile, Option<u64>> = Field::new(3, |p| &p.user_id, |p| &mut p.user_id);

impl SessionData for Profile {
    const FIELDS: &'static [FieldInfo] = &[
        FieldInfo::new("name", "name"),
        FieldInfo::new("visits", "visits"),
        FieldInfo::new("tags", "tags"),
        FieldInfo::new("user_id", "user_id"),
    ];

    fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match index {
            0 => encode_value(&self.name, out),
            1 => encode_value(&self.visits, out),
            2 => encode_value(&self.tags, out),
            3 => encode_value(&self.user_id, out),
            _ => Err(EncodeError::no_field(index)),
        }
    }

    fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.name = decode_value(bytes)?,
            1 => self.visits = decode_value(bytes)?,
            2 => self.tags = decode_value(bytes)?,
            3 => self.user_id = decode_value(bytes)?,
            _ => return Err(DecodeError::no_field(index)),
        }
        Ok(())
    }

    fn reset_field(&mut self, index: usize) {
        match index {
            0 => self.name = String::new(),
            1 => self.visits = 0,
            2 => self.tags = Vec::new(),
            3 => self.user_id = None,
            _ => {}
        }
    }
}

/// The next version of [`Profile`]: `tags` removed, `visits` changed type
/// (u32 → String), `theme` added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProfileV2 {
    /// Same as before.
    pub name: String,
    /// Was a `u32`.
    pub visits: String,
    /// New.
    pub theme: String,
    /// Same as before.
    pub user_id: Option<u64>,
}

/// `ProfileV2::visits`.
pub const V2_VISITS: Field<ProfileV2, String> = Field::new(1, |p| &p.visits, |p| &mut p.visits);

impl SessionData for ProfileV2 {
    const FIELDS: &'static [FieldInfo] = &[
        FieldInfo::new("name", "name"),
        FieldInfo::new("visits", "visits"),
        FieldInfo::new("theme", "theme"),
        FieldInfo::new("user_id", "user_id"),
    ];

    fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match index {
            0 => encode_value(&self.name, out),
            1 => encode_value(&self.visits, out),
            2 => encode_value(&self.theme, out),
            3 => encode_value(&self.user_id, out),
            _ => Err(EncodeError::no_field(index)),
        }
    }

    fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.name = decode_value(bytes)?,
            1 => self.visits = decode_value(bytes)?,
            2 => self.theme = decode_value(bytes)?,
            3 => self.user_id = decode_value(bytes)?,
            _ => return Err(DecodeError::no_field(index)),
        }
        Ok(())
    }

    fn reset_field(&mut self, index: usize) {
        match index {
            0 => self.name = String::new(),
            1 => self.visits = String::new(),
            2 => self.theme = String::new(),
            3 => self.user_id = None,
            _ => {}
        }
    }
}

/// A session that belongs to a user: `user_id` is its principal (what
/// `#[session(principal)]` generates, written by hand).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Account {
    /// The principal; `None` = anonymous.
    pub user_id: Option<u64>,
    /// A label for the device.
    pub device: String,
    /// A counter.
    pub visits: u32,
}

/// `Account::user_id`.
pub const USER: Field<Account, Option<u64>> = Field::new(0, |a| &a.user_id, |a| &mut a.user_id);
/// `Account::device`.
pub const DEVICE: Field<Account, String> = Field::new(1, |a| &a.device, |a| &mut a.device);
/// `Account::visits`.
pub const HITS: Field<Account, u32> = Field::new(2, |a| &a.visits, |a| &mut a.visits);

impl SessionData for Account {
    const FIELDS: &'static [FieldInfo] = &[
        FieldInfo::new("user_id", "user_id"),
        FieldInfo::new("device", "device"),
        FieldInfo::new("visits", "visits"),
    ];
    const PRINCIPAL: Option<usize> = Some(0);

    fn encode_field(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match index {
            0 => encode_value(&self.user_id, out),
            1 => encode_value(&self.device, out),
            2 => encode_value(&self.visits, out),
            _ => Err(EncodeError::no_field(index)),
        }
    }

    fn decode_field(&mut self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.user_id = decode_value(bytes)?,
            1 => self.device = decode_value(bytes)?,
            2 => self.visits = decode_value(bytes)?,
            _ => return Err(DecodeError::no_field(index)),
        }
        Ok(())
    }

    fn reset_field(&mut self, index: usize) {
        match index {
            0 => self.user_id = None,
            1 => self.device = String::new(),
            2 => self.visits = 0,
            _ => {}
        }
    }

    fn principal_key(&self) -> Option<Cow<'_, str>> {
        self.user_id.to_principal_key()
    }
}

/// Log output captured in memory, for tests that check what was logged:
/// pass `move || capture.clone()` as a `tracing_subscriber` writer, then
/// read it back with [`LogCapture::text`].
#[derive(Debug, Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// A plain-text `tracing` subscriber up to `level` that writes here
    /// (for `tracing::subscriber::with_default`).
    #[must_use]
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Everything written so far, as text.
    ///
    /// # Panics
    /// When the output is not UTF-8 (`tracing`'s formatter writes UTF-8).
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).expect("log output is UTF-8")
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
