//! migrate: versioned migrations, Flyway-compatible, proved on throwaway branches.
//!
//! Works on any Postgres reachable by a connection string; branches (for `rehearse`) are
//! made and discarded only through the Branches API client, so the same commands run against
//! the local daemon and against Lakebase.
//!
//! - `script.rs`: the migrations directory (file names, versions, per-file settings).
//! - `checksum.rs`: Flyway's checksum, bit for bit.
//! - `sql.rs`: statement splitting and which statements cannot run in a transaction.
//! - `history.rs`: `flyway_schema_history` and the advisory lock around it.
//! - `plan.rs`: files and history matched: states, validation, what is pending (pure).
//! - `run.rs`: migrate, undo, repair, baseline.
//! - `lint.rs`: dangerous and locking changes, each with a rule id and an acknowledgement.
//! - `rehearse.rs` (+ `schema.rs`, `diagnose.rs`, `corrupt.rs`): apply, re-apply and compare
//!   on a throwaway branch; find (and count) the rows that break a migration; damage data by
//!   named recipes first.
//! - `refactor/`: named database refactorings written as expand/contract migrations, and the
//!   transitions in flight (`.lakebase/transitions.json`).

pub mod checksum;
pub mod corrupt;
pub mod db;
pub mod diagnose;
pub mod history;
pub mod lint;
pub mod placeholders;
pub mod plan;
pub mod refactor;
pub mod rehearse;
pub mod run;
pub mod schema;
pub mod script;
pub mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use script::Version;

/// How the runner behaves; the CLI fills it from flags, lakelet.toml's `[migrations]` and
/// `FLYWAY_PLACEHOLDERS_*`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The schema holding the history table (Flyway's default schema).
    pub schema: String,
    pub table: String,
    /// Placeholder values, including the `flyway:` built-ins.
    pub placeholders: BTreeMap<String, String>,
    /// Apply versions older than the newest applied one instead of refusing.
    pub out_of_order: bool,
    /// How long to wait for another runner's lock.
    pub lock_timeout: Duration,
    /// Recorded as `installed_by` (default: the session's user).
    pub installed_by: Option<String>,
    /// Stop after this version.
    pub target: Option<Version>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            schema: "public".into(),
            table: "flyway_schema_history".into(),
            placeholders: BTreeMap::new(),
            out_of_order: false,
            lock_timeout: Duration::from_secs(60),
            installed_by: None,
            target: None,
        }
    }
}

impl Settings {
    /// Adds Flyway's built-in placeholders for a session on `db`.
    pub fn with_builtins(mut self, db: &db::Db) -> anyhow::Result<Settings> {
        if self.installed_by.is_none() {
            // Resolved once here, so the runner does not ask again.
            self.installed_by = db.value("select current_user")?;
        }
        let user = self.installed_by.clone().unwrap_or_default();
        let database = db.value("select current_database()")?.unwrap_or_default();
        let now = db
            .value("select to_char(now(), 'YYYY-MM-DD HH24:MI:SS')")?
            .unwrap_or_default();
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for (k, v) in [
            ("flyway:defaultSchema", self.schema.clone()),
            ("flyway:user", user),
            ("flyway:database", database),
            ("flyway:timestamp", now),
            ("flyway:workingDirectory", cwd),
            ("flyway:table", self.table.clone()),
        ] {
            self.placeholders.entry(k.to_string()).or_insert(v);
        }
        Ok(self)
    }
}
