//! The session the micro-benchmarks and `bench-memory` measure: the gateway
//! example's shape, with a typical logged-in value.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sessionkit::adapter::RequestView;
use sessionkit::id::SessionId;
use sessionkit::store::{Meta, Write, WriteKind};
use sessionkit::SessionData;

/// Idle timeout given to every stored session (30 minutes), long enough that
/// nothing expires while a benchmark runs.
pub const IDLE_TIMEOUT_MS: u64 = 30 * 60 * 1000;

/// A gateway session: `user_id` and `authorization` are forwarded downstream
/// as headers; the rest stays in the session.
#[derive(SessionData, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    /// The logged-in user.
    #[header("X-User-Id")]
    pub user_id: Option<u64>,
    /// The credential downstream services expect.
    #[header("Authorization")]
    pub authorization: Option<String>,
    /// Whether the user logged in.
    pub authenticated: bool,
    /// Item ids in the cart.
    pub cart: Vec<String>,
    /// Page visits.
    pub visits: u32,
}

impl Gateway {
    /// A typical logged-in session: user 1, a bearer token, two cart items,
    /// three visits.
    #[must_use]
    pub fn typical() -> Self {
        Self {
            user_id: Some(1),
            authorization: Some("Bearer demo-token-1".to_owned()),
            authenticated: true,
            cart: vec!["sku-1001".to_owned(), "sku-2002".to_owned()],
            visits: 3,
        }
    }
}

/// Every stored field of `data` as `(stored name, MessagePack value)`, the
/// way a full save writes it.
///
/// # Panics
/// When a field does not encode (never, for these field types).
#[must_use]
pub fn encoded_fields<T: SessionData>(data: &T) -> Vec<(&'static str, Bytes)> {
    T::FIELDS
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let mut out = Vec::new();
            data.encode_field(index, &mut out)
                .expect("the fixture's fields are plain serde types");
            (info.name, Bytes::from(out))
        })
        .collect()
}

/// The encoded session size: field names plus MessagePack values, which is
/// what `maxSessionBytes` limits.
#[must_use]
pub fn encoded_size<T: SessionData>(data: &T) -> usize {
    encoded_fields(data)
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

/// The write a first save of `data` at `now` sends to the store: every field.
/// Its id is a placeholder: set `id` before each use.
///
/// # Panics
/// Never: the placeholder id is valid.
#[must_use]
pub fn full_save<T: SessionData>(data: &T, now: u64) -> Write {
    Write {
        id: SessionId::parse("placeholder-session-id").expect("a valid id"),
        kind: WriteKind::Create,
        now,
        meta: Meta::new(now, IDLE_TIMEOUT_MS, None),
        meta_changed: true,
        ttl_ms: IDLE_TIMEOUT_MS,
        set: encoded_fields(data),
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    }
}

/// The write a request that changed only `visits` sends: one field, merged
/// into the stored session (no expectation: a blind set). Its id is a
/// placeholder: set `id` before each use.
///
/// # Panics
/// When `visits` does not encode (never: it is a `u32`).
#[must_use]
pub fn visits_update(visits: u32, now: u64) -> Write {
    let mut value = Vec::new();
    sessionkit::codec::encode_value(&visits, &mut value).expect("a u32 always encodes");
    Write {
        id: SessionId::parse("placeholder-session-id").expect("a valid id"),
        kind: WriteKind::Update,
        now,
        meta: Meta::new(now, IDLE_TIMEOUT_MS, None),
        meta_changed: false,
        ttl_ms: IDLE_TIMEOUT_MS,
        set: vec![("visits", Bytes::from(value))],
        remove: Vec::new(),
        expect: Vec::new(),
        principal: None,
    }
}

/// Milliseconds since the Unix epoch, the clock sessionkit's stores use.
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A small deterministic pseudo-random sequence (xorshift64*) for picking
/// stored ids without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct Picker(u64);

impl Picker {
    /// A sequence from a non-zero seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next index below `len` (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // `len` fits u64 on every supported target; the remainder fits usize.
        usize::try_from(r % len as u64).unwrap_or(0)
    }

    /// A random element of `ids`.
    pub fn pick<'a>(&mut self, ids: &'a [SessionId]) -> &'a SessionId {
        &ids[self.index(ids.len())]
    }
}

/// A request that carries only a `Cookie` header (`CookieRequest(
/// "session_id=...".into())`): what the request-cycle benchmarks hand to
/// `PendingSession::load`.
pub struct CookieRequest(pub String);

impl std::fmt::Debug for CookieRequest {
    // The header holds a session id: not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieRequest(..)")
    }
}

impl RequestView for CookieRequest {
    fn header(&self, name: &str) -> Option<&str> {
        name.eq_ignore_ascii_case("cookie")
            .then_some(self.0.as_str())
    }

    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        sessionkit::adapter::find_cookie(&self.0, name).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_session_round_trips_field_by_field() {
        let typical = Gateway::typical();
        let mut decoded = Gateway::default();
        for (index, (_, value)) in encoded_fields(&typical).iter().enumerate() {
            decoded.decode_field(index, value).unwrap();
        }
        assert_eq!(decoded, typical);
        // 43 bytes of field names, 42 of MessagePack values.
        assert_eq!(encoded_size(&typical), 85);
    }

    #[test]
    fn picker_stays_in_range() {
        let mut picker = Picker::new(7);
        assert!((0..1000).all(|_| picker.index(3) < 3));
    }
}
