//! The statements the store sends (each prepared once per connection and
//! cached), the arguments of a write, and the decoding of the rows that
//! come back: pure functions, tested without a database.

use bytes::Bytes;

use super::schema::Names;
use crate::forward::seal_forward;
use crate::principal::{PrincipalWrite, SessionHandle};
use crate::record::{Fields, Meta, Record, FORMAT_VERSION};
use crate::store::{Write, WriteKind};

/// The longest TTL sent to the database (100 years), far from
/// `timestamptz`'s range whatever timeouts are configured.
pub(crate) const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3_600_000;

/// The texts of every statement, rendered once per store for its names.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `$1` handle, `$2` now (ms): one row for a live session (its meta
    /// columns, then its field names and values as two arrays), or one
    /// tombstone row (only the last column, `forward`, set) within its
    /// grace period.
    pub(crate) load: String,
    /// The write function: 21 arguments, one row back.
    pub(crate) write: String,
    /// `$1` handle: deletes the session or the tombstone and the session
    /// it forwards to.
    pub(crate) delete: String,
    /// `$1` principal hash: the live sessions of a principal, one row each
    /// (handle, meta columns, names, values).
    pub(crate) list: String,
    /// The revoke function: principal hash, take, handles, now.
    pub(crate) revoke: String,
    /// `$1` batch size: deletes up to that many expired sessions.
    pub(crate) sweep_sessions: String,
    /// `$1` batch size: deletes up to that many expired tombstones.
    pub(crate) sweep_moves: String,
}

impl Statements {
    pub(crate) fn new(names: &Names) -> Self {
        Self {
            load: names.render(
                "SELECT s.version, s.created_at, s.id_issued_at, s.last_access, \
                 s.idle_timeout_ms, s.absolute_deadline, f.names, f.vals, NULL::text AS forward \
                 FROM {t} AS s CROSS JOIN LATERAL (SELECT coalesce(array_agg(f.name), '{}') AS names, \
                 coalesce(array_agg(f.value), '{}') AS vals FROM {t_fields} AS f WHERE f.sid = s.sid) AS f \
                 WHERE s.handle = $1 AND s.expires_at > now() \
                 UNION ALL \
                 SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, m.forward \
                 FROM {t_moves} AS m \
                 WHERE m.handle = $1 AND m.until > $2 AND m.expires_at > now()",
            ),
            write: names.render(
                "SELECT * FROM {t_write}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            ),
            // By `sid`, which a rotation keeps: a delete that waited for a
            // concurrent rotation of its session still deletes it.
            delete: names.render(
                "DELETE FROM {t} AS s WHERE s.sid IN ( \
                 SELECT s2.sid FROM {t} AS s2 WHERE s2.handle = $1 \
                 UNION ALL \
                 SELECT m.sid FROM {t_moves} AS m WHERE m.handle = $1 AND m.expires_at > now())",
            ),
            list: names.render(
                "SELECT s.handle, s.version, s.created_at, s.id_issued_at, s.last_access, \
                 s.idle_timeout_ms, s.absolute_deadline, f.names, f.vals \
                 FROM {t} AS s CROSS JOIN LATERAL (SELECT coalesce(array_agg(f.name), '{}') AS names, \
                 coalesce(array_agg(f.value), '{}') AS vals FROM {t_fields} AS f WHERE f.sid = s.sid) AS f \
                 WHERE s.principal = $1 AND s.expires_at > now()",
            ),
            revoke: names.render("SELECT {t_revoke}($1, $2, $3, $4)"),
            sweep_sessions: names.render(
                "DELETE FROM {t} WHERE sid = ANY (ARRAY(SELECT sid FROM {t} \
                 WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))",
            ),
            sweep_moves: names.render(
                "DELETE FROM {t_moves} WHERE handle = ANY (ARRAY(SELECT handle FROM {t_moves} \
                 WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))",
            ),
        }
    }
}

/// A u64 of the stored format as a `bigint` (saturating: no timestamp or
/// timeout in ms comes near 2^63).
pub(crate) fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The arguments of one call of the write function, owned (the statement
/// borrows them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WriteArgs {
    pub(crate) mode: &'static str,
    pub(crate) handle: String,
    pub(crate) now: i64,
    pub(crate) ttl_ms: i64,
    pub(crate) meta_changed: bool,
    pub(crate) version: i32,
    pub(crate) created: i64,
    pub(crate) issued: i64,
    pub(crate) access: i64,
    pub(crate) idle: i64,
    pub(crate) deadline: Option<i64>,
    pub(crate) set_names: Vec<&'static str>,
    pub(crate) set_values: Vec<Bytes>,
    pub(crate) remove: Vec<&'static str>,
    pub(crate) expect_names: Vec<&'static str>,
    pub(crate) expect_values: Vec<Option<Bytes>>,
    pub(crate) to: Option<String>,
    pub(crate) forward: Option<String>,
    pub(crate) grace_ms: i64,
    pub(crate) principal: &'static str,
    pub(crate) px: Option<String>,
}

/// The write function's arguments for `write`.
pub(crate) fn write_args(write: &Write) -> WriteArgs {
    let (mode, to, forward, grace_ms) = match &write.kind {
        WriteKind::Create => ("create", None, None, 0),
        WriteKind::Update => ("update", None, None, 0),
        WriteKind::Rotate { to, grace_ms, .. } => (
            "rotate",
            Some(SessionHandle::of(to).as_str().to_owned()),
            (*grace_ms > 0).then(|| seal_forward(&write.id, to)),
            big(*grace_ms),
        ),
    };
    let (principal, px) = match &write.principal {
        None => ("none", None),
        Some(PrincipalWrite::Keep(p)) => ("keep", Some(p.hashed())),
        Some(PrincipalWrite::Join(p)) => ("join", Some(p.hashed())),
        Some(PrincipalWrite::Leave) => ("leave", None),
    };
    let meta = &write.meta;
    WriteArgs {
        mode,
        handle: SessionHandle::of(&write.id).as_str().to_owned(),
        now: big(write.now),
        ttl_ms: big(write.ttl_ms.clamp(1, MAX_TTL_MS)),
        meta_changed: write.meta_changed || !matches!(write.kind, WriteKind::Update),
        version: i32::from(FORMAT_VERSION),
        created: big(meta.created_at),
        issued: big(meta.id_issued_at),
        access: big(meta.last_access),
        idle: big(meta.idle_timeout_ms),
        deadline: meta.absolute_deadline.map(big),
        set_names: write.set.iter().map(|(n, _)| *n).collect(),
        set_values: write.set.iter().map(|(_, v)| v.clone()).collect(),
        remove: write.remove.clone(),
        expect_names: write.expect.iter().map(|(n, _)| *n).collect(),
        expect_values: write.expect.iter().map(|(_, v)| v.clone()).collect(),
        to,
        forward,
        grace_ms,
        principal,
        px,
    }
}

/// The `Meta` columns of a row, as they come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaColumns {
    pub(crate) version: i32,
    pub(crate) created: i64,
    pub(crate) issued: i64,
    pub(crate) access: i64,
    pub(crate) idle: i64,
    pub(crate) deadline: Option<i64>,
}

/// Why stored columns are not a session this release can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Written by another format version.
    Version(i32),
    /// A negative time or timeout.
    Corrupt(&'static str),
}

/// The [`Meta`] the columns hold.
pub(crate) fn meta(columns: MetaColumns) -> Result<Meta, Unreadable> {
    if columns.version != i32::from(FORMAT_VERSION) {
        return Err(Unreadable::Version(columns.version));
    }
    let u = |v: i64| u64::try_from(v).map_err(|_| Unreadable::Corrupt("a negative time"));
    Ok(Meta {
        created_at: u(columns.created)?,
        id_issued_at: u(columns.issued)?,
        last_access: u(columns.access)?,
        idle_timeout_ms: u(columns.idle)?,
        absolute_deadline: columns.deadline.map(u).transpose()?,
    })
}

/// A record from its meta columns and its fields' (name, value) pairs.
pub(crate) fn record(
    columns: MetaColumns,
    fields: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<Record, Unreadable> {
    let meta = meta(columns)?;
    let mut stored = Fields::default();
    for (name, value) in fields {
        stored.insert(Bytes::from(name), Bytes::from(value));
    }
    Ok(Record {
        meta,
        fields: stored,
    })
}

/// The write function's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Done,
    Gone,
    Moved,
    Conflict,
}

impl Status {
    pub(crate) fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Done),
            1 => Some(Self::Gone),
            2 => Some(Self::Moved),
            3 => Some(Self::Conflict),
            _ => None,
        }
    }
}

/// The revoke function's `take` argument and handles.
pub(crate) fn take_args(take: crate::principal::Take<'_>) -> (&'static str, Vec<String>) {
    use crate::principal::Take;
    match take {
        Take::All => ("all", Vec::new()),
        Take::AllExcept(keep) => ("except", vec![keep.as_str().to_owned()]),
        Take::These(handles) => (
            "these",
            handles.iter().map(|h| h.as_str().to_owned()).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::open_forward;
    use crate::id::SessionId;
    use crate::principal::{Principal, Take};

    fn id(text: &str) -> SessionId {
        SessionId::parse(text).unwrap()
    }

    fn update() -> Write {
        Write {
            id: id("abcdefghijklmnopqrstuvwxyz"),
            kind: WriteKind::Update,
            now: 10,
            meta: Meta::new(5, 1_000, Some(99)),
            meta_changed: false,
            ttl_ms: 0,
            set: vec![("a", Bytes::from_static(b"1"))],
            remove: vec!["b"],
            expect: vec![("c", None), ("a", Some(Bytes::from_static(b"0")))],
            principal: Some(PrincipalWrite::Keep(Principal::of("7").unwrap())),
        }
    }

    #[test]
    fn a_write_sends_hashes_never_ids_or_principals() {
        let w = update();
        let args = write_args(&w);
        assert_eq!(args.mode, "update");
        assert_eq!(args.handle, SessionHandle::of(&w.id).as_str());
        assert!(!args.handle.contains("abcdefghij"));
        assert_eq!(
            args.px.as_deref(),
            Some(Principal::of("7").unwrap().hashed().as_str())
        );
        assert_eq!(args.principal, "keep");
        assert_eq!(args.ttl_ms, 1, "a TTL is at least 1 ms");
        assert!(!args.meta_changed);
        assert_eq!(args.deadline, w.meta.absolute_deadline.map(big));
        assert!(args.deadline.is_some());
        assert_eq!(args.set_names, ["a"]);
        assert_eq!(args.remove, ["b"]);
        assert_eq!(args.expect_names, ["c", "a"]);
        assert_eq!(args.expect_values[0], None);
    }

    #[test]
    fn a_rotation_sends_the_new_hash_and_a_sealed_forward() {
        let to = id("3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f");
        let mut w = update();
        w.kind = WriteKind::Rotate {
            to: to.clone(),
            grace_ms: 5_000,
            full: Vec::new(),
            loaded: Vec::new(),
        };
        let args = write_args(&w);
        assert_eq!(args.mode, "rotate");
        assert!(args.meta_changed, "a rotation stores all of the metadata");
        assert_eq!(args.to.as_deref(), Some(SessionHandle::of(&to).as_str()));
        let forward = args.forward.expect("a forward during the grace period");
        assert!(!forward.contains(to.as_str()));
        assert_eq!(open_forward(&w.id, forward.as_bytes()), Some(to.clone()));
        w.kind = WriteKind::Rotate {
            to,
            grace_ms: 0,
            full: Vec::new(),
            loaded: Vec::new(),
        };
        assert_eq!(write_args(&w).forward, None, "regenerate keeps no link");
        w.principal = Some(PrincipalWrite::Leave);
        assert_eq!(write_args(&w).principal, "leave");
        assert_eq!(write_args(&w).px, None);
        w.ttl_ms = u64::MAX;
        assert_eq!(write_args(&w).ttl_ms, big(MAX_TTL_MS));
    }

    #[test]
    fn rows_decode_into_records() {
        let columns = MetaColumns {
            version: i32::from(FORMAT_VERSION),
            created: 1,
            issued: 2,
            access: 3,
            idle: 4,
            deadline: None,
        };
        let r = record(columns, [("x".to_owned(), b"1".to_vec())]).unwrap();
        assert_eq!(r.fields.len(), 1);
        assert_eq!(r.meta.last_access, 3);
        assert_eq!(r.meta.absolute_deadline, None);
        let other = MetaColumns {
            version: 99,
            ..columns
        };
        assert_eq!(meta(other), Err(Unreadable::Version(99)));
        let negative = MetaColumns {
            access: -1,
            ..columns
        };
        assert!(matches!(meta(negative), Err(Unreadable::Corrupt(_))));
        assert_eq!(Status::from_code(3), Some(Status::Conflict));
        assert_eq!(Status::from_code(7), None);
    }

    #[test]
    fn takes_become_arguments() {
        let h = SessionHandle::of(&id("abcdefghijklmnopqrstuvwxyz"));
        assert_eq!(take_args(Take::All), ("all", vec![]));
        assert_eq!(
            take_args(Take::AllExcept(&h)),
            ("except", vec![h.as_str().to_owned()])
        );
        let these = [h.clone()];
        assert_eq!(take_args(Take::These(&these)).0, "these");
    }

    #[test]
    fn statements_name_the_configured_tables() {
        let s = Statements::new(&Names {
            schema: "app".into(),
            table: "s".into(),
        });
        assert!(s.load.contains("\"app\".\"s_fields\""));
        assert!(s.write.contains("\"app\".\"s_write\"($1,"));
        assert!(s.write.contains("$21)"));
        assert!(s.sweep_sessions.contains("LIMIT $1"));
    }
}
