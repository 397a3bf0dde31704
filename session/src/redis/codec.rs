//! The layout of one session in Redis: a HASH whose fields are the struct's
//! fields (MessagePack bytes) plus one metadata field, `$meta`.
//!
//! | hash field | value |
//! |---|---|
//! | `$meta` | `<version>:<created>:<issued>:<access>:<idle>:<deadline>`, decimal |
//! | anything else | one struct field, as stored in `Update::set` |
//!
//! In `$meta`, `version` is [`FORMAT_VERSION`]; `created`, `issued` and
//! `access` are `Meta::created_at`, `Meta::id_issued_at` and
//! `Meta::last_access` (ms since the epoch; the load script rewrites
//! `access`); `idle` is `Meta::idle_timeout_ms`; `deadline` is
//! `Meta::absolute_deadline`, empty when there is none. For example
//! `1:1767225600000:1767225600000:1767225600000:1800000:`.
//!
//! The metadata is one field, so a load reply and a write carry one
//! name/value pair of it rather than six; it is decimal text so the Lua load
//! script can compute the TTL. Names starting with `$` are reserved for it.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::id::SessionId;
use crate::record::{Fields, Meta, Record, Update, FORMAT_VERSION};

/// The hash field holding the metadata.
pub(crate) const META: &str = "$meta";

/// The longest TTL ever sent to Redis (about 142,000 years): keeps `PEXPIRE`
/// far from its overflow check whatever timeouts are configured.
pub(crate) const MAX_TTL_MS: u64 = 1 << 52;

/// One script argument: borrowed from the update where possible.
pub(crate) type Arg<'a> = Cow<'a, [u8]>;

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
/// replace flag, TTL, number of pairs, the pairs (`$meta` first), then the
/// names to delete. Field names and values are borrowed, not copied.
pub(crate) fn write_args(update: &Update) -> Result<Vec<Arg<'_>>, String> {
    if let Some((name, _)) = update.set.iter().find(|(n, _)| n.starts_with('$')) {
        return Err(reserved(name));
    }
    if let Some(name) = update.remove.iter().find(|n| n.starts_with('$')) {
        return Err(reserved(name));
    }
    let pairs = 1 + update.set.len();
    let mut args = Vec::with_capacity(3 + 2 * pairs + update.remove.len());
    args.push(Cow::Borrowed(if update.replace {
        b"1".as_slice()
    } else {
        b"0".as_slice()
    }));
    args.push(Cow::Owned(ttl(update).to_string().into_bytes()));
    args.push(Cow::Owned(pairs.to_string().into_bytes()));
    args.push(Cow::Borrowed(META.as_bytes()));
    args.push(Cow::Owned(encode_meta(&update.meta).into_bytes()));
    for (name, value) in &update.set {
        args.push(Cow::Borrowed(name.as_bytes()));
        args.push(Cow::Borrowed(value.as_ref()));
    }
    for name in &update.remove {
        args.push(Cow::Borrowed(name.as_bytes()));
    }
    Ok(args)
}

fn reserved(name: &str) -> String {
    format!(
        "session field {name:?} starts with '$', which the Redis store reserves for its metadata; rename the field"
    )
}

/// The `$meta` text of `meta`.
pub(crate) fn encode_meta(meta: &Meta) -> String {
    let mut text = String::with_capacity(80);
    let _ = write!(
        text,
        "{FORMAT_VERSION}:{}:{}:{}:{}:",
        meta.created_at, meta.id_issued_at, meta.last_access, meta.idle_timeout_ms
    );
    if let Some(deadline) = meta.absolute_deadline {
        let _ = write!(text, "{deadline}");
    }
    text
}

/// Parses `$meta`: the same grammar as the load script's pattern
/// `^(%d+):(%d+):(%d+):(%d+):(%d+):(%d*)$`.
fn decode_meta(value: &[u8]) -> Result<Meta, Unreadable> {
    let corrupt = || {
        Unreadable::Corrupt(format!(
            "malformed {META} field {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    let mut parts = value.split(|&b| b == b':');
    let version = parts.next().unwrap_or_default();
    if version.is_empty() || !version.iter().all(u8::is_ascii_digit) {
        return Err(corrupt());
    }
    if version != FORMAT_VERSION.to_string().as_bytes() {
        // Another release's format: whatever follows is its business.
        return Err(Unreadable::Version(
            String::from_utf8_lossy(version).into_owned(),
        ));
    }
    let number = |part: Option<&[u8]>| -> Option<u64> {
        let part = part?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let created_at = number(parts.next()).ok_or_else(corrupt)?;
    let id_issued_at = number(parts.next()).ok_or_else(corrupt)?;
    let last_access = number(parts.next()).ok_or_else(corrupt)?;
    let idle_timeout_ms = number(parts.next()).ok_or_else(corrupt)?;
    let absolute_deadline = match parts.next() {
        Some([]) => None,
        deadline => Some(number(deadline).ok_or_else(corrupt)?),
    };
    if parts.next().is_some() {
        return Err(corrupt());
    }
    Ok(Meta {
        created_at,
        id_issued_at,
        last_access,
        idle_timeout_ms,
        absolute_deadline,
    })
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
    let mut meta = None;
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        if name.first() == Some(&b'$') {
            if name == META.as_bytes() {
                meta = Some(value);
            } else if name == b"$type" {
                let kind = String::from_utf8_lossy(&value).into_owned();
                return Err(Unreadable::Corrupt(format!(
                    "the key held a {kind}, not a hash; it was deleted"
                )));
            }
            // Other `$` names: metadata of a later minor format; ignored.
            continue;
        }
        fields.insert(Bytes::from(name), Bytes::from(value));
    }
    let Some(meta) = meta else {
        return Err(Unreadable::Corrupt(format!(
            "no {META} field; the hash was not written by this layout of sessionkit"
        )));
    };
    let meta = decode_meta(&meta)?;
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
    fn meta_text() {
        let t = 1_767_225_600_000;
        assert_eq!(
            encode_meta(&Meta::new(t, 1_800_000, None)),
            "1:1767225600000:1767225600000:1767225600000:1800000:"
        );
        let meta = Meta {
            created_at: 1,
            id_issued_at: 2,
            last_access: 3,
            idle_timeout_ms: 4,
            absolute_deadline: Some(u64::MAX),
        };
        assert_eq!(encode_meta(&meta), format!("1:1:2:3:4:{}", u64::MAX));
        assert_eq!(decode_meta(encode_meta(&meta).as_bytes()), Ok(meta));
    }

    #[test]
    fn write_args_round_trip_through_decode() {
        for deadline in [Some(120_000), None] {
            let update = Update {
                meta: Meta::new(1_000, 60_000, deadline),
                set: vec![("cart", Bytes::from_static(b"\x91\xa1a"))],
                remove: vec!["gone"],
                replace: false,
            };
            let args = write_args(&update).unwrap();
            assert_eq!(args[0].as_ref(), b"0");
            assert_eq!(args[1].as_ref(), b"60000");
            let pairs: usize = std::str::from_utf8(&args[2]).unwrap().parse().unwrap();
            assert_eq!(pairs, 2, "one metadata pair and one field");
            assert_eq!(args.len(), 3 + 2 * pairs + 1, "then the one name to delete");
            assert_eq!(args.last().unwrap().as_ref(), b"gone");
            let pairs = args[3..3 + 2 * pairs].iter().map(|a| a.to_vec()).collect();
            let record = decode(pairs).unwrap();
            assert_eq!(record.meta, update.meta);
            assert_eq!(record.fields.get("cart").unwrap().as_ref(), b"\x91\xa1a");
            assert_eq!(record.fields.len(), 1, "metadata is not a field");
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        let update = Update {
            meta: Meta::new(1_000, 60_000, None),
            set: vec![("$meta", Bytes::from_static(b"1"))],
            remove: vec![],
            replace: true,
        };
        assert!(write_args(&update).unwrap_err().contains("reserves"));
        let update = Update {
            set: vec![],
            remove: vec!["$x"],
            ..update
        };
        assert!(write_args(&update).unwrap_err().contains("reserves"));
    }

    #[test]
    fn unreadable_hashes_are_classified() {
        let with = |meta: &[u8]| decode(flat(&[("x", b"\x01"), ("$meta", meta)]));
        let good = with(b"1:1:1:1:10:").unwrap();
        assert_eq!(good.meta.absolute_deadline, None);
        assert_eq!(
            with(b"1:1:1:1:10:20").unwrap().meta.absolute_deadline,
            Some(20)
        );
        assert_eq!(
            decode(flat(&[("$meta", b"1:1:1:1:10:"), ("$later", b"?")]))
                .unwrap()
                .fields
                .len(),
            0,
            "unknown `$` names are ignored"
        );
        for corrupt in [
            b"".as_slice(),
            b"1",
            b"1:1:1:1:10",
            b"1:1:1:soon:10:",
            b"1:1:1:1::",
            b"1:1:1:1:10::",
            b"1:1:1:1:10:20:",
            b"1:1:1:+1:10:",
            b"1:1:1:1:99999999999999999999:",
            b"x:1:1:1:10:",
            b":1:1:1:10:",
        ] {
            assert!(
                matches!(with(corrupt), Err(Unreadable::Corrupt(_))),
                "{:?}",
                String::from_utf8_lossy(corrupt)
            );
        }
        assert_eq!(with(b"9:1:1:1:10:"), Err(Unreadable::Version("9".into())));
        assert_eq!(
            with(b"2:another:layout"),
            Err(Unreadable::Version("2".into())),
            "a later format may change what follows the version"
        );
        assert!(matches!(
            decode(flat(&[("x", b"1")])),
            Err(Unreadable::Corrupt(_))
        ));
        assert!(
            matches!(
                decode(flat(&[
                    ("$version", b"1"),
                    ("$access", b"1"),
                    ("$idle", b"10")
                ])),
                Err(Unreadable::Corrupt(_))
            ),
            "the earlier six-field layout has no $meta"
        );
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
