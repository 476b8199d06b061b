//! The Postgres roles principals' sessions run as (see `Access`), made on a compute the first
//! time a non-superuser session needs them, once per compute start and database; the guard
//! that keeps agents from dropping anything; and handing an existing schema to its owner.
//!
//! The ownership model: `lakelet_app` (no login) owns the application schema. Migrations run
//! as it (the runner's `SET ROLE lakelet_app`), so whatever a migration creates, any later
//! migration may alter. Sessions reach it three ways:
//! - `lakelet_owner` inherits it: alters, drops, truncates anything (roles with `drop`);
//! - `lakelet_writer` and `lakelet_agent` are members through `lakelet_migrate`, which does
//!   not inherit: outside a migration they write rows and their own objects only (a DROP or
//!   TRUNCATE of the application's table is Postgres's own 42501 "must be owner"); inside
//!   one they act as the owner;
//! - `lakelet_agent` never drops anything, migration or not: an event trigger refuses it.

use std::path::Path;

use anyhow::{Context, Result};

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The roles, created once per cluster.
const ROLES: &str = "DO $$BEGIN
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_app') THEN
   CREATE ROLE lakelet_app NOLOGIN; GRANT pg_read_all_data, pg_write_all_data TO lakelet_app; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_migrate') THEN
   CREATE ROLE lakelet_migrate NOLOGIN NOINHERIT; GRANT lakelet_app TO lakelet_migrate; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_reader') THEN
   CREATE ROLE lakelet_reader LOGIN; GRANT pg_read_all_data TO lakelet_reader; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_owner') THEN
   CREATE ROLE lakelet_owner LOGIN CREATEDB;
   GRANT pg_read_all_data, pg_write_all_data TO lakelet_owner; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles a ON a.oid = m.roleid
                JOIN pg_roles b ON b.oid = m.member
                WHERE a.rolname = 'lakelet_app' AND b.rolname = 'lakelet_owner') THEN
   GRANT lakelet_app TO lakelet_owner; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_writer') THEN
   CREATE ROLE lakelet_writer LOGIN;
   GRANT pg_read_all_data, pg_write_all_data, lakelet_migrate TO lakelet_writer; END IF;
 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_agent') THEN
   CREATE ROLE lakelet_agent LOGIN;
   GRANT pg_read_all_data, pg_write_all_data, lakelet_migrate TO lakelet_agent; END IF;
END$$";

const HAVE_ROLES: &str = "SELECT count(*) = 6 AND bool_or(rolname = 'lakelet_owner' AND EXISTS (
   SELECT 1 FROM pg_auth_members m JOIN pg_roles a ON a.oid = m.roleid
   WHERE a.rolname = 'lakelet_app' AND m.member = r.oid))
 FROM pg_roles r WHERE rolname IN ('lakelet_app', 'lakelet_migrate', 'lakelet_reader',
   'lakelet_owner', 'lakelet_writer', 'lakelet_agent')";

/// The roles that create objects in a database.
const CREATORS: &[&str] = &[
    "lakelet_app",
    "lakelet_owner",
    "lakelet_writer",
    "lakelet_agent",
];

/// The agents' guard, per database: `sql_drop` fires for every object a command drops (a
/// table, a column, a constraint), in any role the session has set, and raising there undoes
/// the command. It keys on `session_user`, which no non-superuser session can change.
/// (TRUNCATE fires no event trigger; outside a migration an agent is not the owner, so
/// Postgres refuses it; inside one it is not caught.)
const GUARD: &str = "CREATE SCHEMA IF NOT EXISTS _lakelet;
REVOKE ALL ON SCHEMA _lakelet FROM PUBLIC;
CREATE OR REPLACE FUNCTION _lakelet.guard_drop() RETURNS event_trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF session_user = 'lakelet_agent' THEN
    RAISE EXCEPTION 'lakelet: an agent never drops anything (% refused by lakelet.toml: agents never hold roles.<role>.drop)', tg_tag
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'an agent adds and writes; a DROP reaches the schema through a developer''s or CI''s migration';
  END IF;
END $f$;
DO $$BEGIN
 IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'lakelet_guard_sql_drop') THEN
   CREATE EVENT TRIGGER lakelet_guard_sql_drop ON sql_drop EXECUTE FUNCTION _lakelet.guard_drop();
 END IF;
END$$";

/// Makes the Postgres roles principals connect as (see `Access`), their rights in database
/// `db`, and the agents' guard, once per compute start and database.
pub async fn ensure_roles(sockdir: &Path, db: &str) -> Result<()> {
    let client = super::connect(sockdir, db).await?;
    let have: bool = client.query_one(HAVE_ROLES, &[]).await?.get(0);
    if !have {
        client
            .batch_execute(ROLES)
            .await
            .context("creating lakelet's roles")?;
    }
    let checks: Vec<String> = CREATORS
        .iter()
        .map(|r| {
            format!(
                "has_database_privilege('{r}', current_database(), 'CREATE') AND \
                 coalesce(has_schema_privilege('{r}', to_regnamespace('public')::oid, 'CREATE'), true)"
            )
        })
        .collect();
    let q = format!(
        "SELECT {} AND EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'lakelet_guard_sql_drop')",
        checks.join(" AND ")
    );
    let ready: bool = client.query_one(&q, &[]).await?.get(0);
    if !ready {
        let all = CREATORS.join(", ");
        let q = format!(
            "GRANT CREATE, TEMP ON DATABASE {} TO {all}; \
             DO $$BEGIN IF to_regnamespace('public') IS NOT NULL THEN \
               GRANT USAGE, CREATE ON SCHEMA public TO {all}; END IF; END$$; {GUARD}",
            ident(db)
        );
        client
            .batch_execute(&q)
            .await
            .context("granting lakelet's roles CREATE and installing the agents' guard")?;
    }
    Ok(())
}

/// Every schema, table, view, sequence, routine and type in the user's schemas that a
/// superuser owns (what `CREATE` as the superuser, `pg_restore` or `initdb` left), minus
/// extension members and sequences that follow their column: what [`hand_to_app`] gives.
const HANDOVER: &str = "DO $$DECLARE r record; n int := 0; BEGIN
 FOR r IN SELECT format('ALTER SCHEMA %I OWNER TO lakelet_app', s.nspname) AS q
   FROM pg_namespace s JOIN pg_roles o ON o.oid = s.nspowner
   WHERE o.rolsuper AND s.nspname !~ '^pg_' AND s.nspname NOT IN ('information_schema', '_lakelet')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = s.oid AND d.deptype = 'e')
 UNION ALL SELECT format('ALTER %s %s OWNER TO lakelet_app',
     CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
       WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass)
   FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
   WHERE o.rolsuper AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
     AND s.nspname !~ '^pg_' AND s.nspname NOT IN ('information_schema', '_lakelet')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
 UNION ALL SELECT format('ALTER ROUTINE %s OWNER TO lakelet_app', p.oid::regprocedure)
   FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace JOIN pg_roles o ON o.oid = p.proowner
   WHERE o.rolsuper AND s.nspname !~ '^pg_' AND s.nspname NOT IN ('information_schema', '_lakelet')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 UNION ALL SELECT format('ALTER %s %s OWNER TO lakelet_app', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype)
   FROM pg_type t JOIN pg_namespace s ON s.oid = t.typnamespace JOIN pg_roles o ON o.oid = t.typowner
   WHERE o.rolsuper AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
     AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
     AND s.nspname !~ '^pg_' AND s.nspname NOT IN ('information_schema', '_lakelet')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype IN ('e', 'i'))
 LOOP EXECUTE r.q; n := n + 1; END LOOP;
 PERFORM set_config('lakelet.handed', n::text, true);
END$$";

/// Hands every application object a superuser owns in database `db` to `lakelet_app`, the
/// role migrations run as (`lakelet schema own`); returns how many objects changed owner.
/// Objects a principal's role created stay that role's.
pub async fn hand_to_app(sockdir: &Path, db: &str) -> Result<u64> {
    ensure_roles(sockdir, db).await?;
    let mut client = super::connect(sockdir, db).await?;
    let tx = client.transaction().await?;
    tx.batch_execute(HANDOVER)
        .await
        .context("handing the schema to lakelet_app")?;
    let n: String = tx
        .query_one("SELECT current_setting('lakelet.handed')", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(n.parse().unwrap_or(0))
}
