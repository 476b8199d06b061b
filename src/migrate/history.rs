//! `flyway_schema_history`: Flyway's table, columns and row types, so either tool can take
//! over a database the other migrated; and the advisory lock both tools take around it.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use super::db::{quote_ident, Db, DbError};
use super::script::Version;

/// Row types Flyway writes (`type` column).
pub const SQL: &str = "SQL";
pub const BASELINE: &str = "BASELINE";
pub const SCHEMA: &str = "SCHEMA";
pub const UNDO_SQL: &str = "UNDO_SQL";
pub const DELETE: &str = "DELETE";

pub const BASELINE_DESCRIPTION: &str = "<< Flyway Baseline >>";
pub const SCHEMA_DESCRIPTION: &str = "<< Flyway Schema Creation >>";

/// Where the history lives.
#[derive(Debug, Clone)]
pub struct Table {
    pub schema: String,
    pub name: String,
}

/// One history row.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub installed_by: String,
    pub installed_on: String,
    pub execution_time: i32,
    pub success: bool,
}

impl Applied {
    pub fn version(&self) -> Option<Version> {
        self.version.as_deref().and_then(Version::parse)
    }
}

/// A row to insert (the rank and time are the database's).
pub struct NewRow<'a> {
    pub version: Option<&'a str>,
    pub description: &'a str,
    pub kind: &'a str,
    pub script: &'a str,
    pub checksum: Option<i32>,
    pub installed_by: &'a str,
    pub execution_time_ms: i32,
    pub success: bool,
}

impl Table {
    /// `"public"."flyway_schema_history"`: also exactly the string Flyway hashes for its lock.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    pub fn exists(&self, db: &Db) -> Result<bool, DbError> {
        let rows = db.query(
            "select 1 from pg_catalog.pg_tables where schemaname = $1 and tablename = $2",
            &[&self.schema, &self.name],
        )?;
        Ok(!rows.is_empty())
    }

    /// Creates the schema (recording it as Flyway does) and the table, if missing. Runs in
    /// the caller's transaction.
    pub fn create(&self, db: &Db, installed_by: &str) -> Result<(), DbError> {
        let schema_missing = db
            .query(
                "select 1 from pg_catalog.pg_namespace where nspname = $1",
                &[&self.schema],
            )?
            .is_empty();
        if schema_missing {
            db.exec(&format!("create schema {}", quote_ident(&self.schema)))?;
        }
        let t = self.qualified();
        let pk = quote_ident(&format!("{}_pk", self.name));
        let idx = quote_ident(&format!("{}_s_idx", self.name));
        db.exec(&format!(
            "create table {t} (
                installed_rank int not null,
                version varchar(50),
                description varchar(200) not null,
                type varchar(20) not null,
                script varchar(1000) not null,
                checksum int,
                installed_by varchar(100) not null,
                installed_on timestamp not null default now(),
                execution_time int not null,
                success boolean not null
            );
            alter table {t} add constraint {pk} primary key (installed_rank);
            create index {idx} on {t} (success);"
        ))?;
        if schema_missing {
            let s = quote_ident(&self.schema);
            self.insert(
                db,
                &NewRow {
                    version: Some("0"),
                    description: SCHEMA_DESCRIPTION,
                    kind: SCHEMA,
                    script: &s,
                    checksum: None,
                    installed_by,
                    execution_time_ms: 0,
                    success: true,
                },
            )?;
        }
        Ok(())
    }

    /// Every row, in installed order; empty when the table does not exist.
    pub fn read(&self, db: &Db) -> Result<Vec<Applied>, DbError> {
        if !self.exists(db)? {
            return Ok(vec![]);
        }
        let rows = db.query(
            &format!(
                "select installed_rank, version, description, type, script, checksum, \
                 installed_by, to_char(installed_on, 'YYYY-MM-DD HH24:MI:SS.MS'), \
                 execution_time, success from {} order by installed_rank",
                self.qualified()
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Applied {
                installed_rank: r.get(0),
                version: r.get(1),
                description: r.get(2),
                kind: r.get(3),
                script: r.get(4),
                checksum: r.get(5),
                installed_by: r.get(6),
                installed_on: r.get(7),
                execution_time: r.get(8),
                success: r.get(9),
            })
            .collect())
    }

    pub fn insert(&self, db: &Db, row: &NewRow) -> Result<(), DbError> {
        let t = self.qualified();
        db.execute(
            &format!(
                "insert into {t} (installed_rank, version, description, type, script, checksum, \
                 installed_by, execution_time, success) \
                 values ((select coalesce(max(installed_rank), 0) + 1 from {t}), \
                 $1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &row.version,
                &truncate(row.description, 200),
                &row.kind,
                &truncate(row.script, 1000),
                &row.checksum,
                &truncate(row.installed_by, 100),
                &row.execution_time_ms,
                &row.success,
            ],
        )?;
        Ok(())
    }

    /// Flyway's lock key for this table: a magic number plus Java's `String.hashCode` of the
    /// quoted name, so a Flyway runner and a lakelet runner on the same database exclude each
    /// other.
    pub fn lock_key(&self) -> i64 {
        const MAGIC: i64 = 77_431_708_279_161;
        MAGIC + java_hash(&self.qualified()) as i64
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// `java.lang.String.hashCode`: over UTF-16 code units, wrapping.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// A session-level advisory lock on the history table, held for the whole run.
pub struct Lock<'a> {
    db: &'a Db,
    key: i64,
}

impl<'a> Lock<'a> {
    /// Polls `pg_try_advisory_lock` every 100 ms until it is granted or `timeout` passes. A
    /// blocking `pg_advisory_lock` would sit in an open transaction that a CREATE INDEX
    /// CONCURRENTLY in the holder's migration then waits for: a deadlock no timeout breaks.
    pub fn acquire(db: &'a Db, table: &Table, timeout: Duration) -> Result<Lock<'a>> {
        let key = table.lock_key();
        let start = Instant::now();
        let mut told = false;
        loop {
            let got: bool = db.query("select pg_try_advisory_lock($1)", &[&key])?[0].get(0);
            if got {
                return Ok(Lock { db, key });
            }
            if start.elapsed() >= timeout {
                let holder = holder(db, key).unwrap_or_default();
                bail!(
                    "another migration runner holds the lock on {}{holder}; waited {:?}. \
                     Wait for it to finish, or raise --lock-timeout",
                    table.qualified(),
                    timeout
                );
            }
            if !told && start.elapsed() > Duration::from_secs(2) {
                eprintln!(
                    "waiting for the migration lock on {} (another runner holds it)…",
                    table.qualified()
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        // A failed unlock is harmless: the lock goes with the session.
        let _ = self.db.query("select pg_advisory_unlock($1)", &[&self.key]);
    }
}

/// ` (held by pid P, application A, since T)` for the session holding `key`.
fn holder(db: &Db, key: i64) -> Result<String, DbError> {
    let rows = db.query(
        "select a.pid, coalesce(a.application_name, ''), coalesce(a.backend_start::text, '') \
         from pg_locks l join pg_stat_activity a using (pid) \
         where l.locktype = 'advisory' and l.granted \
           and l.classid::bigint = ($1::bigint >> 32) and l.objid::bigint = ($1::bigint & 4294967295) \
           and l.objsubid = 1",
        &[&key],
    )?;
    Ok(match rows.first() {
        Some(r) => format!(
            " (pid {}, application '{}', connected since {})",
            r.get::<_, i32>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        ),
        None => String::new(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn java_hash_matches_java() {
        // Values of "".hashCode(), "a".hashCode() and "hello".hashCode() in Java.
        assert_eq!(super::java_hash(""), 0);
        assert_eq!(super::java_hash("a"), 97);
        assert_eq!(super::java_hash("hello"), 99162322);
        // Wraps like Java's int arithmetic instead of overflowing.
        assert_eq!(super::java_hash("polygenelubricants"), i32::MIN);
    }
}
