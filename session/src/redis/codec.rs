//! The layout of one session in Redis: a HASH whose fields are the struct's
//! fields (MessagePack bytes) plus metadata fields whose names start with `$`.
//!
//! | hash field | value |
//! |---|---|
//! | `$version` | [`FORMAT_VERSION`] in decimal |
//! | `$created` | `Meta::created_at`, decimal ms since the epoch |
//! | `$issued` | `Meta::id_issued_at` |
//! | `$access` | `Meta::last_access` (the load script rewrites it) |
//! | `$idle` | `Meta::idle_timeout_ms` |
//! | `$deadline` | `Meta::absolute_deadline`; absent when there is none |
//! | anything else | one struct field, as stored in `Update::set` |
//!
//! The metadata is decimal text so the Lua load script can compute the TTL.

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::id::SessionId;
use crate::record::{Fields, Meta, Record, Update, FORMAT_VERSION};

pub(crate) const VERSION: &str = "$version";
pub(crate) const CREATED: &str = "$created";
pub(crate) const ISSUED: &str = "$issued";
pub(crate) const ACCESS: &str = "$access";
pub(crate) const IDLE: &str = "$idle";
pub(crate) const DEADLINE: &str = "$deadline";

/// The longest TTL ever sent to Redis (about 142,000 years): keeps `PEXPIRE`
/// far from its overflow check whatever timeouts are configured.
pub(crate) const MAX_TTL_MS: u64 = 1 << 52;

/// The Redis key of a session: `prefix` + base64url(SHA-256(id)), so a dump
/// of Redis holds no usable session token.
pub(crate) fn key(prefix: &str, id: &SessionId) -> String {
    let digest = Sha256::digest(id.as_str().as_bytes());
    let mut key = String::with_capacity(prefix.len() + 43);
    key.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, &mut key);
    key
}

/// The TTL of a write, clamped to what Redis accepts.
pub(crate) fn ttl(update: &Update) -> u64 {
    update.ttl_ms().min(MAX_TTL_MS)
}

/// The write script's arguments for `update` (see `scripts::WRITE`):
/// replace flag, TTL, number of pairs, the pairs (metadata first), then the
/// names to delete.
pub(crate) fn write_args(update: &Update) -> Result<Vec<Vec<u8>>, String> {
    if let Some((name, _)) = update.set.iter().find(|(n, _)| n.starts_with('$')) {
        return Err(reserved(name));
    }
    if let Some(name) = update.remove.iter().find(|n| n.starts_with('$')) {
        return Err(reserved(name));
    }
    let meta = meta_pairs(&update.meta);
    let pairs = meta.len() + update.set.len();
    let mut args = Vec::with_capacity(3 + 2 * pairs + update.remove.len() + 1);
    args.push(if update.replace {
        b"1".to_vec()
    } else {
        b"0".to_vec()
    });
    args.push(ttl(update).to_string().into_bytes());
    args.push(pairs.to_string().into_bytes());
    for (name, value) in meta {
        args.push(name.as_bytes().to_vec());
        args.push(value.into_bytes());
    }
    for (name, value) in &update.set {
        args.push(name.as_bytes().to_vec());
        args.push(value.to_vec());
    }
    for name in &update.remove {
        args.push(name.as_bytes().to_vec());
    }
    if update.meta.absolute_deadline.is_none() && !update.replace {
        args.push(DEADLINE.as_bytes().to_vec());
    }
    Ok(args)
}

fn reserved(name: &str) -> String {
    format!(
        "session field {name:?} starts with '$', which the Redis store reserves for its metadata; rename the field"
    )
}

fn meta_pairs(meta: &Meta) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        (VERSION, FORMAT_VERSION.to_string()),
        (CREATED, meta.created_at.to_string()),
        (ISSUED, meta.id_issued_at.to_string()),
        (ACCESS, meta.last_access.to_string()),
        (IDLE, meta.idle_timeout_ms.to_string()),
    ];
    if let Some(deadline) = meta.absolute_deadline {
        pairs.push((DEADLINE, deadline.to_string()));
    }
    pairs
}

/// Why a stored hash is not a session this version can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Written by a format this version does not know (a newer or older
    /// release): left alone, it expires by its TTL.
    Version(String),
    /// Broken: missing or malformed metadata, or not a hash at all.
    Corrupt(String),
}

/// Decodes the flat `HGETALL` reply of the load script.
pub(crate) fn decode(flat: Vec<Vec<u8>>) -> Result<Record, Unreadable> {
    if !flat.len().is_multiple_of(2) {
        return Err(Unreadable::Corrupt(format!(
            "the load script returned {} items, not name/value pairs",
            flat.len()
        )));
    }
    let mut fields = Fields::default();
    let mut version = None;
    let mut numbers: [Option<u64>; 5] = [None; 5];
    let names = [CREATED, ISSUED, ACCESS, IDLE, DEADLINE];
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        if name.first() == Some(&b'$') {
            if name == VERSION.as_bytes() {
                version = Some(value);
                continue;
            }
            if name == b"$type" {
                let kind = String::from_utf8_lossy(&value).into_owned();
                return Err(Unreadable::Corrupt(format!(
                    "the key held a {kind}, not a hash; it was deleted"
                )));
            }
            if let Some(slot) = names.iter().position(|n| n.as_bytes() == name.as_slice()) {
                let text = std::str::from_utf8(&value).ok();
                let number = text.and_then(|t| t.parse::<u64>().ok()).ok_or_else(|| {
                    Unreadable::Corrupt(format!("metadata field {} is not a number", names[slot]))
                })?;
                numbers[slot] = Some(number);
            }
            // Other `$` names: metadata of a later minor format; ignored.
            continue;
        }
        fields.insert(Bytes::from(name), Bytes::from(value));
    }
    let expected = FORMAT_VERSION.to_string();
    match version {
        None => {
            return Err(Unreadable::Corrupt(format!(
                "no {VERSION} field; the hash was not written by sessionkit"
            )))
        }
        Some(v) if v != expected.as_bytes() => {
            return Err(Unreadable::Version(
                String::from_utf8_lossy(&v).into_owned(),
            ))
        }
        Some(_) => {}
    }
    let need = |slot: usize| {
        numbers[slot].ok_or_else(|| {
            Unreadable::Corrupt(format!("metadata field {} is missing", names[slot]))
        })
    };
    let meta = Meta {
        created_at: need(0)?,
        id_issued_at: need(1)?,
        last_access: need(2)?,
        idle_timeout_ms: need(3)?,
        absolute_deadline: numbers[4],
    };
    Ok(Record { meta, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap()
    }

    fn flat(pairs: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(n, v)| [n.as_bytes().to_vec(), v.to_vec()])
            .collect()
    }

    #[test]
    fn key_is_prefixed_hash_not_the_id() {
        let k = key("sessionkit:", &id());
        assert!(k.starts_with("sessionkit:"));
        assert_eq!(k.len(), "sessionkit:".len() + 43);
        assert!(!k.contains(id().as_str()));
        assert_eq!(k, key("sessionkit:", &id()), "stable");
    }

    #[test]
    fn write_args_round_trip_through_decode() {
        let update = Update {
            meta: Meta::new(1_000, 60_000, Some(120_000)),
            set: vec![("cart", Bytes::from_static(b"\x91\xa1a"))],
            remove: vec!["gone"],
            replace: false,
        };
        let args = write_args(&update).unwrap();
        assert_eq!(args[0], b"0");
        assert_eq!(args[1], b"60000");
        let pairs: usize = std::str::from_utf8(&args[2]).unwrap().parse().unwrap();
        assert_eq!(pairs, 7, "six metadata pairs and one field");
        assert_eq!(args.len(), 3 + 2 * pairs + 1);
        let record = decode(args[3..3 + 2 * pairs].to_vec()).unwrap();
        assert_eq!(record.meta, update.meta);
        assert_eq!(record.fields.get("cart").unwrap().as_ref(), b"\x91\xa1a");
    }

    #[test]
    fn no_deadline_is_removed_on_partial_writes() {
        let update = Update {
            meta: Meta::new(1_000, 60_000, None),
            set: vec![],
            remove: vec![],
            replace: false,
        };
        let args = write_args(&update).unwrap();
        assert_eq!(args.last().unwrap(), DEADLINE.as_bytes());
    }

    #[test]
    fn reserved_names_are_refused() {
        let update = Update {
            meta: Meta::new(1_000, 60_000, None),
            set: vec![("$access", Bytes::from_static(b"1"))],
            remove: vec![],
            replace: true,
        };
        assert!(write_args(&update).unwrap_err().contains("reserves"));
    }

    #[test]
    fn unreadable_hashes_are_classified() {
        let good: &[(&str, &[u8])] = &[
            ("$version", b"1"),
            ("$created", b"1"),
            ("$issued", b"1"),
            ("$access", b"1"),
            ("$idle", b"10"),
        ];
        assert!(decode(flat(good)).is_ok());
        assert!(matches!(
            decode(flat(&[("x", b"1")])),
            Err(Unreadable::Corrupt(_))
        ));
        let mut future = good.to_vec();
        future[0] = ("$version", b"9");
        assert_eq!(decode(flat(&future)), Err(Unreadable::Version("9".into())));
        let mut bad = good.to_vec();
        bad[3] = ("$access", b"soon");
        assert!(matches!(decode(flat(&bad)), Err(Unreadable::Corrupt(_))));
        assert!(matches!(
            decode(flat(&good[..4])),
            Err(Unreadable::Corrupt(_))
        ));
        assert!(matches!(
            decode(flat(&[("$type", b"string")])),
            Err(Unreadable::Corrupt(_))
        ));
        assert!(matches!(
            decode(vec![b"odd".to_vec()]),
            Err(Unreadable::Corrupt(_))
        ));
    }
}
