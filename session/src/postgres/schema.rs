//! The schema: its SQL (tables, indexes, the two functions that make a
//! write and a revocation one round trip each), its versions, and the
//! migration that brings a database up to date at start-up.
//!
//! # Tables (names for the default table name `sessionkit`)
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `sessionkit` | live session | `sid` (surrogate key, kept across id rotations), `handle` (base64url(SHA-256(id)), unique), the [`Meta`](crate::store::Meta) columns in ms since the epoch (`version`, `created_at`, `id_issued_at`, `last_access`, `idle_timeout_ms`, `absolute_deadline`), `expires_at` (timestamptz on the database's clock, indexed: what the sweeper deletes by), `principal` (base64url(SHA-256(principal)) or null, partially indexed: the principal index) |
//! | `sessionkit_fields` | stored field | `sid`, `name`, `value` (the field's MessagePack bytes); primary key (`sid`, `name`); deleted with its session |
//! | `sessionkit_moves` | rotation tombstone | `handle` (the old id's hash), `sid` (the session it moved to), `forward` (the new id, sealed with the old one), `until` (end of the grace period, ms), `expires_at`; deleted with its session |
//! | `sessionkit_schema` | applied migration | `version`, `applied_at` |
//!
//! A rotation changes the session row's `handle` in place: no field is
//! copied. The principal index is the `principal` column, so it is exact
//! and changes in the same transaction as the session: no entry outlives
//! its session, none is missing.
//!
//! # Functions
//!
//! `sessionkit_write(...)` applies one [`Write`](crate::store::Write): it
//! locks the session row (`FOR UPDATE`), checks it is live, checks the
//! expected fields, and applies the change, in one call; the answer carries
//! the stored record when an expectation failed. `sessionkit_revoke(...)`
//! deletes a principal's sessions under a transaction-scoped advisory lock
//! on the principal, which rotations that keep the principal take shared:
//! a revocation and a rotation of the same principal's session never
//! interleave.

/// The schema version this release writes.
pub(crate) const LATEST: i32 = 1;

/// The advisory lock class of a migration (the second key is the hash of
/// the schema name): instances starting at once migrate one at a time, and
/// so do stores of different tables in one schema (which may both create
/// it).
pub(crate) const MIGRATE_LOCK: i32 = 0x736b_6d67;

/// The advisory lock class of a principal (the second key is `hashtext` of
/// its hash): revocations take it exclusively, rotations keeping the
/// principal take it shared.
pub(crate) const PRINCIPAL_LOCK: i32 = 0x736b_7072;

/// Where the store's objects live: a schema and a base table name, both
/// checked identifiers (see [`check_identifier`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) schema: String,
    pub(crate) table: String,
}

/// Whether `name` can name a schema or the base table: lower-case ASCII
/// letters, digits and `_`, starting with a letter or `_`, at most 40
/// characters (so the derived names stay under PostgreSQL's 63).
pub(crate) fn check_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && name.len() <= 40
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Names {
    /// `"schema"."table<suffix>"`.
    pub(crate) fn object(&self, suffix: &str) -> String {
        format!("\"{}\".\"{}{suffix}\"", self.schema, self.table)
    }

    /// `sql` with `{s}` replaced by the quoted schema and every `{t…}` by a
    /// quoted object (`{t}`, `{t_fields}`, …); `{lock}` by the principal
    /// lock class and `{ix_…}` by an index name.
    pub(crate) fn render(&self, sql: &str) -> String {
        let mut out = sql.replace("{s}", &format!("\"{}\"", self.schema));
        for suffix in [
            "_fields",
            "_moves",
            "_schema",
            "_write",
            "_revoke",
            "_expires",
            "_principal",
            "_moves_sid",
            "_moves_expires",
        ] {
            out = out.replace(&format!("{{t{suffix}}}"), &self.object(suffix));
            // Index names are not schema-qualified in CREATE INDEX.
            out = out.replace(
                &format!("{{ix{suffix}}}"),
                &format!("\"{}{suffix}\"", self.table),
            );
        }
        out = out.replace("{t}", &self.object(""));
        out.replace("{lock}", &PRINCIPAL_LOCK.to_string())
    }

    /// The key of the migration lock: the schema name.
    pub(crate) fn lock_key(&self) -> String {
        self.schema.clone()
    }
}

/// Version 1: the tables, indexes and functions.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS {t} (
    sid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handle text NOT NULL UNIQUE,
    version integer NOT NULL,
    created_at bigint NOT NULL,
    id_issued_at bigint NOT NULL,
    last_access bigint NOT NULL,
    idle_timeout_ms bigint NOT NULL,
    absolute_deadline bigint,
    expires_at timestamptz NOT NULL,
    principal text
);
CREATE INDEX IF NOT EXISTS {ix_expires} ON {t} (expires_at);
CREATE INDEX IF NOT EXISTS {ix_principal} ON {t} (principal) WHERE principal IS NOT NULL;
CREATE TABLE IF NOT EXISTS {t_fields} (
    sid bigint NOT NULL REFERENCES {t} (sid) ON DELETE CASCADE,
    name text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (sid, name)
);
CREATE TABLE IF NOT EXISTS {t_moves} (
    handle text PRIMARY KEY,
    sid bigint NOT NULL REFERENCES {t} (sid) ON DELETE CASCADE,
    forward text NOT NULL,
    until bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {ix_moves_sid} ON {t_moves} (sid);
CREATE INDEX IF NOT EXISTS {ix_moves_expires} ON {t_moves} (expires_at);

CREATE OR REPLACE FUNCTION {t_write}(
    p_mode text, p_handle text, p_now bigint, p_ttl_ms bigint, p_meta_changed boolean,
    p_version integer, p_created bigint, p_issued bigint, p_access bigint, p_idle bigint,
    p_deadline bigint, p_set_names text[], p_set_values bytea[], p_remove text[],
    p_expect_names text[], p_expect_values bytea[], p_to text, p_forward text,
    p_grace_ms bigint, p_principal text, p_px text,
    OUT o_status integer, OUT o_forward text, OUT o_version integer, OUT o_created bigint,
    OUT o_issued bigint, OUT o_access bigint, OUT o_idle bigint, OUT o_deadline bigint,
    OUT o_names text[], OUT o_values bytea[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_sid bigint;
    v_px text;
    v_ttl interval := p_ttl_ms * interval '1 millisecond';
BEGIN
    -- 0 done, 1 gone, 2 moved (o_forward), 3 conflict (the stored record).
    o_status := 0;
    IF p_mode = 'create' THEN
        INSERT INTO {t} AS s (handle, version, created_at, id_issued_at, last_access,
            idle_timeout_ms, absolute_deadline, expires_at, principal)
        VALUES (p_handle, p_version, p_created, p_issued, p_access, p_idle, p_deadline,
            now() + v_ttl, CASE WHEN p_principal = 'join' THEN p_px END)
        RETURNING s.sid INTO v_sid;
        INSERT INTO {t_fields} (sid, name, value)
        SELECT v_sid, u.n, u.v FROM unnest(p_set_names, p_set_values) AS u(n, v);
        RETURN;
    END IF;
    IF p_mode = 'rotate' AND p_principal = 'keep' THEN
        PERFORM pg_advisory_xact_lock_shared({lock}, hashtext(p_px));
    END IF;
    SELECT s.sid, s.principal INTO v_sid, v_px FROM {t} AS s
    WHERE s.handle = p_handle AND s.expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        SELECT m.forward INTO o_forward FROM {t_moves} AS m
        WHERE m.handle = p_handle AND m.until > p_now AND m.expires_at > now();
        o_status := CASE WHEN FOUND THEN 2 ELSE 1 END;
        RETURN;
    END IF;
    IF cardinality(p_expect_names) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_expect_names, p_expect_values) AS e(n, v)
        LEFT JOIN {t_fields} AS f ON f.sid = v_sid AND f.name = e.n
        WHERE f.value IS DISTINCT FROM e.v
    ) THEN
        o_status := 3;
        SELECT s.version, s.created_at, s.id_issued_at, s.last_access, s.idle_timeout_ms,
            s.absolute_deadline
        INTO o_version, o_created, o_issued, o_access, o_idle, o_deadline
        FROM {t} AS s WHERE s.sid = v_sid;
        SELECT coalesce(array_agg(f.name), '{}'), coalesce(array_agg(f.value), '{}')
        INTO o_names, o_values FROM {t_fields} AS f WHERE f.sid = v_sid;
        RETURN;
    END IF;
    IF p_mode = 'rotate' AND p_principal = 'keep' AND v_px IS DISTINCT FROM p_px THEN
        -- Not indexed under the principal any more: revoked, or moved to another.
        o_status := 1;
        RETURN;
    END IF;
    IF p_mode = 'rotate' THEN
        IF p_grace_ms > 0 THEN
            INSERT INTO {t_moves} AS m (handle, sid, forward, until, expires_at)
            VALUES (p_handle, v_sid, p_forward, p_now + p_grace_ms,
                now() + p_grace_ms * interval '1 millisecond')
            ON CONFLICT (handle) DO UPDATE SET sid = EXCLUDED.sid, forward = EXCLUDED.forward,
                until = EXCLUDED.until, expires_at = EXCLUDED.expires_at;
        ELSE
            -- regenerate: no old id of this session forwards any more.
            DELETE FROM {t_moves} AS m WHERE m.sid = v_sid;
        END IF;
        UPDATE {t} AS s SET handle = p_to, version = p_version, created_at = p_created,
            id_issued_at = p_issued, last_access = p_access, idle_timeout_ms = p_idle,
            absolute_deadline = p_deadline, expires_at = now() + v_ttl,
            principal = CASE p_principal WHEN 'join' THEN p_px WHEN 'leave' THEN NULL
                ELSE s.principal END
        WHERE s.sid = v_sid;
    ELSIF p_meta_changed THEN
        UPDATE {t} AS s SET version = p_version, created_at = p_created,
            id_issued_at = p_issued, last_access = p_access, idle_timeout_ms = p_idle,
            absolute_deadline = p_deadline, expires_at = now() + v_ttl,
            principal = CASE p_principal WHEN 'join' THEN p_px WHEN 'leave' THEN NULL
                ELSE s.principal END
        WHERE s.sid = v_sid;
    ELSE
        UPDATE {t} AS s SET last_access = p_access,
            expires_at = greatest(s.expires_at, now() + v_ttl),
            principal = CASE p_principal WHEN 'join' THEN p_px WHEN 'leave' THEN NULL
                ELSE s.principal END
        WHERE s.sid = v_sid;
    END IF;
    IF cardinality(p_remove) > 0 THEN
        DELETE FROM {t_fields} AS f WHERE f.sid = v_sid AND f.name = ANY (p_remove);
    END IF;
    IF cardinality(p_set_names) > 0 THEN
        INSERT INTO {t_fields} AS f (sid, name, value)
        SELECT v_sid, u.n, u.v FROM unnest(p_set_names, p_set_values) AS u(n, v)
        ON CONFLICT (sid, name) DO UPDATE SET value = EXCLUDED.value;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION {t_revoke}(
    p_px text, p_take text, p_handles text[], p_now bigint)
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    v_keep bigint;
    v_count integer;
BEGIN
    PERFORM pg_advisory_xact_lock({lock}, hashtext(p_px));
    IF p_take = 'except' THEN
        SELECT k.sid INTO v_keep FROM (
            SELECT s.sid FROM {t} AS s WHERE s.handle = p_handles[1]
            UNION ALL
            SELECT m.sid FROM {t_moves} AS m WHERE m.handle = p_handles[1]
        ) AS k LIMIT 1;
    END IF;
    WITH gone AS (
        DELETE FROM {t} AS s
        WHERE s.principal = p_px AND CASE p_take
            WHEN 'all' THEN true
            WHEN 'except' THEN s.sid IS DISTINCT FROM v_keep
            ELSE s.sid IN (
                SELECT s2.sid FROM {t} AS s2 WHERE s2.handle = ANY (p_handles)
                UNION
                SELECT m.sid FROM {t_moves} AS m
                WHERE m.handle = ANY (p_handles) AND m.until > p_now)
            END
        RETURNING s.expires_at > now() AND p_now - s.last_access < s.idle_timeout_ms
            AND (s.absolute_deadline IS NULL OR p_now < s.absolute_deadline) AS live
    )
    -- Only sessions still live by their own timestamps count.
    SELECT count(*) FILTER (WHERE g.live) INTO v_count FROM gone AS g;
    RETURN v_count;
END
$fn$;
"#;

/// The migrations, oldest first: (version, SQL template).
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

/// The table of applied versions.
const VERSION_TABLE: &str = "CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {t_schema} (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
";

/// The whole schema as one idempotent script, for teams that run their
/// migrations themselves: the version table, every migration, and the
/// version rows.
pub(crate) fn full_sql(names: &Names) -> String {
    let mut sql = String::from("BEGIN;\n");
    sql.push_str(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATE_LOCK}, hashtext('{}'));\n",
        names.lock_key()
    ));
    sql.push_str(&names.render(VERSION_TABLE));
    for (version, step) in MIGRATIONS {
        sql.push_str(&names.render(step));
        sql.push_str(&names.render(&format!(
            "INSERT INTO {{t_schema}} (version) VALUES ({version}) ON CONFLICT DO NOTHING;\n"
        )));
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// What the migration does, from the version the database is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Apply these migrations (versions, oldest first).
    Apply(Vec<i32>),
    /// Nothing to do.
    UpToDate,
    /// The database was migrated by a newer release: leave it alone.
    Newer(i32),
}

/// The migration plan for a database at version `current` (0: new).
pub(crate) fn plan(current: i32) -> Plan {
    if current > LATEST {
        return Plan::Newer(current);
    }
    let pending: Vec<i32> = MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| *v > current)
        .collect();
    if pending.is_empty() {
        Plan::UpToDate
    } else {
        Plan::Apply(pending)
    }
}

/// Brings the schema to [`LATEST`] in one transaction, under an advisory
/// lock: several instances starting at once migrate one after the other,
/// and the later ones find nothing to do.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    names: &Names,
) -> Result<Plan, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&MIGRATE_LOCK, &names.lock_key()],
    )
    .await?;
    tx.batch_execute(&names.render(VERSION_TABLE)).await?;
    let current: i32 = tx
        .query_one(
            &names.render("SELECT coalesce(max(version), 0) FROM {t_schema}"),
            &[],
        )
        .await?
        .get(0);
    let plan = plan(current);
    if let Plan::Apply(versions) = &plan {
        for (version, step) in MIGRATIONS.iter().filter(|(v, _)| versions.contains(v)) {
            tx.batch_execute(&names.render(step)).await?;
            tx.execute(
                &names.render("INSERT INTO {t_schema} (version) VALUES ($1)"),
                &[version],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            schema: "app".into(),
            table: "sess".into(),
        }
    }

    #[test]
    fn identifiers_are_plain_lower_case() {
        assert!(check_identifier("sessionkit"));
        assert!(check_identifier("_app_2"));
        assert!(!check_identifier(""));
        assert!(!check_identifier("2app"));
        assert!(!check_identifier("App"));
        assert!(!check_identifier("a\"b"));
        assert!(!check_identifier("a.b"));
        assert!(!check_identifier(&"a".repeat(41)));
    }

    #[test]
    fn every_placeholder_is_rendered() {
        let sql = names().render(V1);
        assert!(!sql.contains("{t"), "{sql}");
        assert!(!sql.contains("{ix"), "{sql}");
        assert!(!sql.contains("{lock}"));
        assert!(sql.contains("\"app\".\"sess_fields\""));
        assert!(sql.contains("CREATE INDEX IF NOT EXISTS \"sess_expires\" ON \"app\".\"sess\""));
        let full = full_sql(&names());
        assert!(full.starts_with("BEGIN;"));
        assert!(full.contains("INSERT INTO \"app\".\"sess_schema\" (version) VALUES (1)"));
        assert!(full.trim_end().ends_with("COMMIT;"));
    }

    #[test]
    fn plans_follow_the_version() {
        assert_eq!(plan(0), Plan::Apply(vec![1]));
        assert_eq!(plan(LATEST), Plan::UpToDate);
        assert_eq!(plan(LATEST + 1), Plan::Newer(LATEST + 1));
    }
}
