//! Rotation forwards: the new id of a rotated session, as a store keeps it
//! for the grace period under the old id. The new id is encrypted with a
//! key stream derived from the old id, which only the old id's holders know
//! (the store has only its hash), so a dump of the store gives no one a
//! usable session token. Used by the Redis (`$fwd`) and PostgreSQL
//! (`forward` column) stores.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::id::SessionId;

/// `len` bytes of key stream for the forward of `old`: SHA-256 in counter
/// mode over the old id, which only its holders know (the store has its hash).
fn key_stream(old: &SessionId, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        let mut hash = Sha256::new();
        hash.update(b"sessionkit forward\0");
        hash.update(old.as_str().as_bytes());
        hash.update(counter.to_le_bytes());
        out.extend_from_slice(&hash.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// The `$fwd` text: `new` encrypted for the holders of `old`.
pub(crate) fn seal_forward(old: &SessionId, new: &SessionId) -> String {
    let plain = new.as_str().as_bytes();
    let sealed: Vec<u8> = plain
        .iter()
        .zip(key_stream(old, plain.len()))
        .map(|(p, k)| p ^ k)
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

/// Opens [`seal_forward`]'s text with `old`; `None` if it is not one.
pub(crate) fn open_forward(old: &SessionId, text: &[u8]) -> Option<SessionId> {
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let plain: Vec<u8> = sealed
        .iter()
        .zip(key_stream(old, sealed.len()))
        .map(|(s, k)| s ^ k)
        .collect();
    SessionId::parse(std::str::from_utf8(&plain).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_open_only_with_the_old_id() {
        let old = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let other = SessionId::parse("zyxwvutsrqponmlkjihgfedcba").unwrap();
        let new = SessionId::parse("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f").unwrap();
        let sealed = seal_forward(&old, &new);
        assert!(!sealed.contains(new.as_str()));
        assert_eq!(open_forward(&old, sealed.as_bytes()), Some(new.clone()));
        assert_ne!(open_forward(&other, sealed.as_bytes()), Some(new));
        assert_eq!(open_forward(&old, b"%%%"), None);
    }
}
