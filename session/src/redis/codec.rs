//! The layout of one session in Redis: a HASH whose fields are the struct's
//! fields (MessagePack bytes) plus metadata fields whose names start with `$`.
//!
//! | hash field | value |
//! |---|---|
//! | `$meta` | `<version>:<created>:<issued>:<idle>:<deadline>`, decimal |
//! | `$at` | the last access (refreshed at most once per `touchAfter`), decimal |
//! | anything else | one struct field, as the runtime wrote it |
//!
//! In `$meta`, `version` is [`FORMAT_VERSION`]; `created` and `issued` are
//! `Meta::created_at` and `Meta::id_issued_at` (ms since the epoch); `idle`
//! is `Meta::idle_timeout_ms`; `deadline` is `Meta::absolute_deadline`,
//! empty when there is none: `2:1767225600000:1767225600000:1800000:`.
//! `$at` is apart so that a touch rewrites one short field and a concurrent
//! change of the idle timeout is never undone by it.
//!
//! A rotated id leaves a **tombstone** hash instead: `$to` (the new key),
//! and, during the grace period of an auto-renewal, `$fwd` (the new id,
//! encrypted with a key stream derived from the old id, so a dump of Redis
//! holds no usable token) and `$until` (ms). Names starting with `$` are
//! reserved.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;

pub(crate) use crate::forward::{open_forward, seal_forward};
use crate::id::SessionId;
use crate::principal::SessionHandle;
use crate::record::{Fields, Meta, Record, FORMAT_VERSION};
use crate::store::Write;
#[cfg(test)]
use crate::store::WriteKind;

/// The hash field holding the metadata.
pub(crate) const META: &str = "$meta";
/// The hash field holding the last access.
pub(crate) const AT: &str = "$at";

/// The longest TTL ever sent to Redis (about 142,000 years): keeps `PEXPIRE`
/// far from its overflow check whatever timeouts are configured.
pub(crate) const MAX_TTL_MS: u64 = 1 << 52;

/// One script argument: borrowed from the write where possible.
pub(crate) type Arg<'a> = Cow<'a, [u8]>;

/// The Redis key of a session: `prefix` + base64url(SHA-256(id)) (its
/// [`SessionHandle`]), so a dump of Redis holds no usable session token.
pub(crate) fn key(prefix: &str, id: &SessionId) -> String {
    handle_key(prefix, &SessionHandle::of(id))
}

/// The Redis key of the session a handle names.
pub(crate) fn handle_key(prefix: &str, handle: &SessionHandle) -> String {
    let mut key = String::with_capacity(prefix.len() + 43);
    key.push_str(prefix);
    key.push_str(handle.as_str());
    key
}

/// The write script's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A new session.
    Create,
    /// A conditional change in place.
    Update,
    /// Single node: check, copy to the new key, change, tombstone (one script).
    Rotate,
    /// Cluster, second step of a rotation: check the old key, tombstone it.
    Seal,
}

impl Mode {
    fn code(self) -> &'static [u8] {
        match self {
            Self::Create => b"c",
            Self::Update => b"u",
            Self::Rotate => b"r",
            Self::Seal => b"s",
        }
    }
}

/// The tombstone part of a rotation's arguments.
pub(crate) struct Tomb<'a> {
    pub(crate) grace_ms: u64,
    /// The sealed forward (empty without grace).
    pub(crate) forward: String,
    /// The new key (recorded in `$to`).
    pub(crate) new_key: &'a str,
}

/// The principal part of a write's arguments (see `index.rs`); absent for
/// a session without a principal, which so sends nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalArgs {
    /// `j`: the session's principal hash and index deadline (`$px`, `$pd`).
    Set { px: String, deadline: u64 },
    /// `l`: the session has no principal any more.
    Leave,
    /// `k`: the session keeps its principal; `refreshed` after the index
    /// entry of that principal hash was extended to this deadline; the
    /// stored deadline is due for a refresh when older than `due`.
    Keep {
        refreshed: Option<(String, u64)>,
        due: u64,
    },
}

/// The write script's arguments (see `scripts::WRITE` for the layout).
///
/// The expectations are split into the names and values of fields that must
/// hold given bytes, then the names of fields that must be absent, so the
/// script reads them with one `HMGET` of contiguous arguments and compares
/// bytes without building any string. `$meta` goes only with a write that
/// stores it, and `$at` only when it is not `now`.
///
/// # Errors
/// A message when a field name is reserved (starts with `$`), or when a
/// write names more than 65,535 fields of one kind.
pub(crate) fn write_args<'a>(
    mode: Mode,
    write: &'a Write,
    set: &'a [(&'static str, Bytes)],
    expect: &'a [(&'static str, Option<Bytes>)],
    tomb: Option<&Tomb<'_>>,
    principal: Option<&PrincipalArgs>,
) -> Result<Vec<Arg<'a>>, String> {
    let names = set
        .iter()
        .map(|(n, _)| *n)
        .chain(write.remove.iter().copied())
        .chain(expect.iter().map(|(n, _)| *n));
    for name in names {
        if name.starts_with('$') {
            return Err(reserved(name));
        }
    }
    let present = expect.iter().filter(|(_, want)| want.is_some()).count();
    let absent = expect.len() - present;
    let counts = [present, absent, set.len(), write.remove.len()];
    let meta = match mode {
        Mode::Create | Mode::Rotate => true,
        Mode::Update => write.meta_changed,
        Mode::Seal => false,
    };
    // A seal writes no `$at`; elsewhere `$at` is `now` unless told otherwise.
    let at = mode != Mode::Seal && write.meta.last_access != write.now;
    let mut header = Vec::with_capacity(10);
    header.push(match principal {
        None => b'-',
        Some(PrincipalArgs::Set { .. }) => b'j',
        Some(PrincipalArgs::Leave) => b'l',
        Some(PrincipalArgs::Keep { .. }) => b'k',
    });
    header.push(match (meta, at) {
        (false, false) => b'-',
        (true, false) => b'm',
        (false, true) => b'a',
        (true, true) => b'b',
    });
    for n in counts {
        let n = u16::try_from(n).map_err(|_| {
            format!(
                "a session write names {n} fields of one kind; the Redis store's write script takes at most {}",
                u16::MAX
            )
        })?;
        header.extend_from_slice(&n.to_be_bytes());
    }
    let number = |n: u64| Cow::Owned(n.to_string().into_bytes());
    let mut args = Vec::with_capacity(12 + 2 * (set.len() + expect.len()) + write.remove.len());
    args.push(Cow::Borrowed(mode.code()));
    args.push(Cow::Owned(header));
    args.push(number(write.now));
    args.push(number(write.ttl_ms.clamp(1, MAX_TTL_MS)));
    if meta {
        args.push(Cow::Owned(encode_meta(&write.meta).into_bytes()));
    }
    if at {
        args.push(number(write.meta.last_access));
    }
    let (with_bytes, without): (Vec<_>, Vec<_>) =
        expect.iter().partition(|(_, want)| want.is_some());
    for (name, _) in with_bytes.iter().chain(&without) {
        args.push(Cow::Borrowed(name.as_bytes()));
    }
    for (_, want) in &with_bytes {
        if let Some(bytes) = want {
            args.push(Cow::Borrowed(bytes.as_ref()));
        }
    }
    for (name, value) in set {
        args.push(Cow::Borrowed(name.as_bytes()));
        args.push(Cow::Borrowed(value.as_ref()));
    }
    for name in &write.remove {
        args.push(Cow::Borrowed(name.as_bytes()));
    }
    if let Some(tomb) = tomb {
        args.push(number(tomb.grace_ms.min(MAX_TTL_MS)));
        args.push(Cow::Owned(tomb.forward.clone().into_bytes()));
        args.push(Cow::Owned(tomb.new_key.as_bytes().to_vec()));
    }
    match principal {
        None | Some(PrincipalArgs::Leave) => {}
        Some(PrincipalArgs::Set { px, deadline }) => {
            args.push(Cow::Owned(px.clone().into_bytes()));
            args.push(number(*deadline));
        }
        Some(PrincipalArgs::Keep { refreshed, due }) => {
            match refreshed {
                Some((px, deadline)) => {
                    args.push(Cow::Owned(px.clone().into_bytes()));
                    args.push(number(*deadline));
                }
                None => {
                    args.push(Cow::Borrowed(b"".as_slice()));
                    args.push(Cow::Borrowed(b"".as_slice()));
                }
            }
            args.push(number(*due));
        }
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
    let mut text = String::with_capacity(64);
    let _ = write!(
        text,
        "{FORMAT_VERSION}:{}:{}:{}:",
        meta.created_at, meta.id_issued_at, meta.idle_timeout_ms
    );
    if let Some(deadline) = meta.absolute_deadline {
        let _ = write!(text, "{deadline}");
    }
    text
}

fn number(part: Option<&[u8]>) -> Option<u64> {
    let part = part?;
    if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Parses `$meta` and `$at` into a [`Meta`].
fn decode_meta(value: &[u8], at: Option<&[u8]>) -> Result<Meta, Unreadable> {
    let corrupt = || {
        Unreadable::Corrupt(format!(
            "malformed {META} field ({} bytes) or {AT} field",
            value.len()
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
    let created_at = number(parts.next()).ok_or_else(corrupt)?;
    let id_issued_at = number(parts.next()).ok_or_else(corrupt)?;
    let idle_timeout_ms = number(parts.next()).ok_or_else(corrupt)?;
    let absolute_deadline = match parts.next() {
        Some([]) => None,
        deadline => Some(number(deadline).ok_or_else(corrupt)?),
    };
    if parts.next().is_some() {
        return Err(corrupt());
    }
    let last_access = number(at).ok_or_else(corrupt)?;
    Ok(Meta {
        created_at,
        id_issued_at,
        last_access,
        idle_timeout_ms,
        absolute_deadline,
    })
}

/// Why a stored hash is not something this version can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Written by a format this version does not know (a newer or older
    /// release): left alone, it expires by its TTL.
    Version(String),
    /// Broken: missing or malformed metadata.
    Corrupt(String),
}

/// What a stored hash is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A session.
    Session(Record),
    /// A rotation tombstone: the key it forwards to, the sealed forward (if
    /// any) and until when it holds.
    Tombstone {
        to: Vec<u8>,
        forward: Option<Vec<u8>>,
        until: u64,
    },
}

/// Decodes a `HGETALL` reply (name/value pairs).
pub(crate) fn decode(flat: Vec<Vec<u8>>) -> Result<Stored, Unreadable> {
    if !flat.len().is_multiple_of(2) {
        return Err(Unreadable::Corrupt(format!(
            "the hash came back as {} items, not name/value pairs",
            flat.len()
        )));
    }
    let mut fields = Fields::with_capacity(flat.len() / 2);
    let (mut meta, mut at, mut to, mut forward, mut until) = (None, None, None, None, None);
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        if name.first() == Some(&b'$') {
            match name.as_slice() {
                b"$meta" => meta = Some(value),
                b"$at" => at = Some(value),
                b"$to" => to = Some(value),
                b"$fwd" => forward = Some(value),
                b"$until" => until = Some(value),
                // Other `$` names: metadata of a later minor format; ignored.
                _ => {}
            }
            continue;
        }
        fields.insert(Bytes::from(name), Bytes::from(value));
    }
    if let Some(to) = to {
        return Ok(Stored::Tombstone {
            to,
            forward,
            until: number(until.as_deref()).unwrap_or(0),
        });
    }
    let Some(meta) = meta else {
        return Err(Unreadable::Corrupt(format!(
            "no {META} field; the hash was not written by this layout of sessionkit"
        )));
    };
    let meta = decode_meta(&meta, at.as_deref())?;
    Ok(Stored::Session(Record { meta, fields }))
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

    fn write(meta: Meta) -> Write {
        Write {
            id: id(),
            kind: WriteKind::Update,
            now: meta.last_access,
            meta,
            meta_changed: false,
            ttl_ms: 60_000,
            set: vec![("cart", Bytes::from_static(b"\x91\xa1a"))],
            remove: vec!["gone"],
            expect: vec![("cart", None)],
            principal: None,
        }
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
    fn forwards_open_only_with_the_old_id() {
        let new = SessionId::parse("0123456789-abcdefghij_KLMNOP").unwrap();
        let sealed = seal_forward(&id(), &new);
        assert!(!sealed.contains(new.as_str()));
        assert_eq!(open_forward(&id(), sealed.as_bytes()), Some(new.clone()));
        let other = SessionId::parse("zyxwvutsrqponmlkjihgfedcba").unwrap();
        assert_ne!(open_forward(&other, sealed.as_bytes()), Some(new));
        assert_eq!(open_forward(&id(), b"%%%"), None);
    }

    #[test]
    fn meta_text_round_trips() {
        let t = 1_767_225_600_000;
        assert_eq!(
            encode_meta(&Meta::new(t, 1_800_000, None)),
            "2:1767225600000:1767225600000:1800000:"
        );
        let meta = Meta {
            created_at: 1,
            id_issued_at: 2,
            last_access: 3,
            idle_timeout_ms: 4,
            absolute_deadline: Some(u64::MAX),
        };
        let text = encode_meta(&meta);
        assert_eq!(text, format!("2:1:2:4:{}", u64::MAX));
        assert_eq!(decode_meta(text.as_bytes(), Some(b"3")), Ok(meta));
    }

    fn text(args: &[Arg<'_>]) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    /// The header: principal part, what follows the TTL, four counts.
    fn header(principal: u8, extra: u8, counts: [u16; 4]) -> Vec<u8> {
        let mut h = vec![principal, extra];
        for n in counts {
            h.extend_from_slice(&n.to_be_bytes());
        }
        h
    }

    #[test]
    fn a_counter_update_sends_eight_arguments() {
        // `/counter`: one field read, changed and written back.
        let mut w = write(Meta::new(1_000, 60_000, Some(120_000)));
        w.set = vec![("visits", Bytes::from_static(b"\x04"))];
        w.remove.clear();
        w.expect = vec![("visits", Some(Bytes::from_static(b"\x03")))];
        let args = write_args(Mode::Update, &w, &w.set, &w.expect, None, None).unwrap();
        assert_eq!(args.len(), 8);
        assert_eq!(args[0].as_ref(), b"u");
        assert_eq!(args[1].as_ref(), header(b'-', b'-', [1, 0, 1, 0]));
        assert_eq!(
            text(&args[2..]),
            ["1000", "60000", "visits", "\u{3}", "visits", "\u{4}"],
            "now, TTL, expected name and raw bytes, the pair; no $meta, no $at"
        );
    }

    #[test]
    fn expectations_list_names_then_the_bytes_expected() {
        let mut w = write(Meta::new(1_000, 60_000, None));
        w.expect = vec![
            ("a", Some(Bytes::from_static(b"1"))),
            ("gone", None),
            ("b", Some(Bytes::from_static(b""))),
        ];
        let args = write_args(Mode::Update, &w, &w.set, &w.expect, None, None).unwrap();
        assert_eq!(args[1].as_ref(), header(b'-', b'-', [2, 1, 1, 1]));
        assert_eq!(
            text(&args[4..]),
            [
                "a",
                "b",
                "gone",
                "1",
                "",
                "cart",
                "\u{fffd}\u{fffd}a",
                "gone"
            ],
            "names with bytes, absent names, the bytes (empty is not absent), pairs, removals"
        );
    }

    #[test]
    fn metadata_and_last_access_go_only_when_needed() {
        let mut w = write(Meta::new(1_000, 60_000, Some(120_000)));
        w.remove.clear();
        let plain = write_args(Mode::Update, &w, &[], &[], None, None).unwrap();
        assert_eq!(plain.len(), 4, "mode, header, now, TTL");
        let changed = Write {
            meta_changed: true,
            ..w.clone()
        };
        let args = write_args(Mode::Update, &changed, &[], &[], None, None).unwrap();
        assert_eq!(args[1][1], b'm');
        assert_eq!(args[4].as_ref(), encode_meta(&changed.meta).as_bytes());
        assert_eq!(args.len(), 5);
        let mut earlier = w.clone();
        earlier.meta.last_access = 900;
        let args = write_args(Mode::Update, &earlier, &[], &[], None, None).unwrap();
        assert_eq!(args[1][1], b'a');
        assert_eq!(text(&args[2..]), ["1000", "60000", "900"]);
        let both = Write {
            meta_changed: true,
            ..earlier.clone()
        };
        let args = write_args(Mode::Update, &both, &[], &[], None, None).unwrap();
        assert_eq!(args[1][1], b'b');
        assert_eq!(args[4].as_ref(), encode_meta(&both.meta).as_bytes());
        assert_eq!(args[5].as_ref(), b"900");
        // Creates and rotations always store the metadata; a seal never.
        for (mode, extra) in [
            (Mode::Create, b'm'),
            (Mode::Rotate, b'm'),
            (Mode::Seal, b'-'),
        ] {
            let args = write_args(mode, &w, &[], &[], None, None).unwrap();
            assert_eq!(args[1][1], extra, "{mode:?}");
        }
        let args = write_args(Mode::Seal, &earlier, &[], &[], None, None).unwrap();
        assert_eq!(args[1][1], b'-', "a seal writes no $at");
    }

    #[test]
    fn the_tombstone_and_principal_parts_follow_everything_else() {
        let w = write(Meta::new(1_000, 60_000, None));
        let plain = write_args(Mode::Update, &w, &[], &[], None, None)
            .unwrap()
            .len();
        let with = |principal: &PrincipalArgs| -> (u8, Vec<String>) {
            let args = write_args(Mode::Update, &w, &[], &[], None, Some(principal)).unwrap();
            (args[1][0], text(&args[plain..]))
        };
        let set = with(&PrincipalArgs::Set {
            px: "h".into(),
            deadline: 9,
        });
        assert_eq!(set, (b'j', vec!["h".to_owned(), "9".to_owned()]));
        assert_eq!(with(&PrincipalArgs::Leave), (b'l', Vec::new()));
        let keep = with(&PrincipalArgs::Keep {
            refreshed: None,
            due: 5,
        });
        assert_eq!(
            keep,
            (b'k', vec![String::new(), String::new(), "5".to_owned()])
        );
        let refreshed = with(&PrincipalArgs::Keep {
            refreshed: Some(("h".into(), 7)),
            due: 5,
        });
        assert_eq!(refreshed.1, ["h", "7", "5"]);
        let tomb = Tomb {
            grace_ms: 30_000,
            forward: "fwd".into(),
            new_key: "p:new",
        };
        let args = write_args(
            Mode::Seal,
            &w,
            &[],
            &w.expect,
            Some(&tomb),
            Some(&PrincipalArgs::Leave),
        )
        .unwrap();
        assert_eq!(args[0].as_ref(), b"s");
        assert_eq!(args[1].as_ref(), header(b'l', b'-', [0, 1, 0, 1]));
        assert_eq!(text(&args[4..]), ["cart", "gone", "30000", "fwd", "p:new"]);
    }

    #[test]
    fn reserved_names_are_refused() {
        let mut w = write(Meta::new(1_000, 60_000, None));
        w.set = vec![("$meta", Bytes::from_static(b"1"))];
        assert!(write_args(Mode::Create, &w, &w.set, &[], None, None)
            .unwrap_err()
            .contains("reserves"));
        w.set.clear();
        w.remove = vec!["$x"];
        assert!(write_args(Mode::Update, &w, &[], &[], None, None)
            .unwrap_err()
            .contains("reserves"));
    }

    #[test]
    fn hashes_decode_as_sessions_tombstones_or_unreadable() {
        let with = |meta: &[u8]| decode(flat(&[("x", b"\x01"), ("$meta", meta), ("$at", b"7")]));
        let Ok(Stored::Session(good)) = with(b"2:1:1:10:") else {
            panic!("a session");
        };
        assert_eq!(good.meta.absolute_deadline, None);
        assert_eq!(good.meta.last_access, 7);
        assert_eq!(good.fields.len(), 1, "metadata is not a field");
        assert!(matches!(
            decode(flat(&[("$to", b"k"), ("$fwd", b"abc"), ("$until", b"99")])),
            Ok(Stored::Tombstone {
                forward: Some(_),
                until: 99,
                ..
            })
        ));
        assert!(matches!(
            decode(flat(&[("$to", b"k")])),
            Ok(Stored::Tombstone { forward: None, .. })
        ));
        for corrupt in [
            b"".as_slice(),
            b"2",
            b"2:1:1:10",
            b"2:1:soon:10:",
            b"2:1:1::",
            b"2:1:1:10::",
            b"2:1:1:10:20:",
            b"2:1:+1:10:",
            b"2:1:1:99999999999999999999:",
            b"x:1:1:10:",
            b":1:1:10:",
        ] {
            assert!(
                matches!(with(corrupt), Err(Unreadable::Corrupt(_))),
                "{:?}",
                String::from_utf8_lossy(corrupt)
            );
        }
        assert!(
            matches!(
                decode(flat(&[("$meta", b"2:1:1:10:")])),
                Err(Unreadable::Corrupt(_))
            ),
            "no $at"
        );
        assert_eq!(with(b"9:1:1:10:"), Err(Unreadable::Version("9".into())));
        assert_eq!(
            with(b"1:1:1:1:10:"),
            Err(Unreadable::Version("1".into())),
            "the first milestone's layout"
        );
        assert!(matches!(
            decode(flat(&[("x", b"1")])),
            Err(Unreadable::Corrupt(_))
        ));
        assert!(matches!(
            decode(vec![b"odd".to_vec()]),
            Err(Unreadable::Corrupt(_))
        ));
    }
}
