//! Executing scripts and changing the history: `migrate`, `undo`, `repair`, `baseline`.
//!
//! Every command that writes takes the history table's advisory lock first and re-reads the
//! history under it, so two runners never apply the same migration. A transactional script
//! runs with its history row in one transaction: it is applied and recorded, or neither. A
//! non-transactional one runs statement by statement, and a failure is recorded (success =
//! false) with the statement that failed, since what ran before it cannot be undone.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::db::{Db, DbError};
use super::history::{self, Lock, NewRow, Table};
use super::plan::{Plan, State};
use super::script::{Kind, Script, Version};
use super::sql::{self, Statement};
use super::Settings;

/// A script ready to run: placeholders replaced, split, its transaction mode decided.
pub struct Prepared<'a> {
    pub script: &'a Script,
    pub sql: String,
    pub statements: Vec<Statement>,
    pub transactional: bool,
}

/// Prepares `s`, refusing scripts that cannot run as written: an unknown placeholder, an
/// unterminated string, or statements that cannot share a transaction mixed with ones that
/// must, when the file does not say `no-transaction`.
pub fn prepare<'a>(s: &'a Script, settings: &Settings) -> Result<Prepared<'a>> {
    let mut values = settings.placeholders.clone();
    values.insert("flyway:filename".into(), s.script.clone());
    let sql = super::placeholders::replace(&s.text, &values, &s.script)?;
    let statements =
        sql::split(&sql).map_err(|e| anyhow::anyhow!("{}:{}: {}", s.script, e.line, e.message))?;
    let non_tx: Vec<&Statement> = statements
        .iter()
        .filter(|st| st.non_transactional().is_some())
        .collect();
    let transactional = if s.no_transaction {
        false
    } else if non_tx.is_empty() {
        true
    } else if non_tx.len() == statements.len() {
        false
    } else {
        let st = non_tx[0];
        bail!(
            "{}:{}: {} cannot run inside a transaction, and the file also has statements that \
             should (a failure would leave it half applied). Move it to its own migration, or \
             declare the file non-transactional with `-- lakelet:no-transaction` (or \
             executeInTransaction=false in {}.conf)",
            s.script,
            st.line,
            st.non_transactional().expect("filtered"),
            s.script
        );
    };
    Ok(Prepared {
        script: s,
        sql,
        statements,
        transactional,
    })
}

/// One applied migration.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub version: Option<String>,
    pub description: String,
    pub script: String,
    pub transactional: bool,
    pub statements: usize,
    pub rows_affected: u64,
    pub execution_time_ms: i32,
}

/// A migration that failed: which statement, what Postgres said, and what was left behind.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub version: Option<String>,
    pub description: String,
    pub script: String,
    /// 0-based index of the failing statement, and its line in the file.
    pub statement: usize,
    pub line: usize,
    pub sql: String,
    pub sqlstate: String,
    pub error: String,
    /// Transactional: everything was rolled back and nothing recorded. Otherwise the
    /// statements before this one stay applied and the history records the failure.
    pub rolled_back: bool,
    /// Postgres's CONTEXT: the statement inside a DO block or function that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Rows that make the statement fail (rehearse finds them; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaking: Option<super::diagnose::Breaking>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "migration {} failed at {}:{} (statement {}: {})\n{}\n{}",
            label(&self.version, &self.description),
            self.script,
            self.line,
            self.statement + 1,
            self.sql,
            self.error,
            if self.rolled_back {
                "The migration was rolled back: the schema and the history are as they were."
                    .to_string()
            } else {
                "The statements before it stay applied (the file is non-transactional); the \
                     history records the failure. Undo them by hand, then run `lakelet \
                     migrate repair`."
                    .to_string()
            }
        )
    }
}

fn label(v: &Option<String>, d: &str) -> String {
    match v {
        Some(v) => format!("{v} - {d}"),
        None => format!("(repeatable) {d}"),
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub database: String,
    pub schema_version_before: Option<String>,
    pub schema_version_after: Option<String>,
    pub applied: Vec<Ran>,
    pub failed: Option<Failure>,
    pub dry_run: bool,
    /// With --dry-run: the SQL that would run, per migration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_run: Vec<WouldRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WouldRun {
    pub version: Option<String>,
    pub description: String,
    pub script: String,
    pub transactional: bool,
    pub sql: String,
}

pub struct Runner<'a> {
    pub db: &'a Db,
    pub table: Table,
    pub settings: &'a Settings,
    pub scripts: &'a [Script],
    pub installed_by: String,
}

impl<'a> Runner<'a> {
    pub fn new(db: &'a Db, settings: &'a Settings, scripts: &'a [Script]) -> Result<Runner<'a>> {
        let installed_by = match &settings.installed_by {
            Some(u) => u.clone(),
            None => db.value("select current_user")?.unwrap_or_default(),
        };
        Ok(Runner {
            db,
            table: Table {
                schema: settings.schema.clone(),
                name: settings.table.clone(),
            },
            settings,
            scripts,
            installed_by,
        })
    }

    pub fn history(&self) -> Result<Vec<history::Applied>> {
        Ok(self.table.read(self.db)?)
    }

    /// The files and `applied` matched, with this runner's settings.
    pub fn plan<'p>(&'p self, applied: &'p [history::Applied]) -> Plan<'p> {
        Plan {
            scripts: self.scripts,
            applied,
            out_of_order: self.settings.out_of_order,
        }
    }

    fn lock(&self) -> Result<Lock<'a>> {
        Lock::acquire(self.db, &self.table, self.settings.lock_timeout)
    }

    /// Creates the history table under the lock if it does not exist yet.
    fn ensure_table(&self) -> Result<()> {
        if self.table.exists(self.db)? {
            return Ok(());
        }
        self.db.exec("begin")?;
        let r = self.table.create(self.db, &self.installed_by);
        match r {
            Ok(()) => self.db.exec("commit")?,
            Err(e) => {
                let _ = self.db.exec("rollback");
                return Err(e).with_context(|| {
                    format!("creating the history table {}", self.table.qualified())
                });
            }
        }
        Ok(())
    }

    /// The pending migrations, prepared, after checking the history against the files.
    pub fn pending(&self, applied: &[history::Applied]) -> Result<Vec<Prepared<'a>>> {
        let plan = self.plan(applied);
        let problems = plan.problems(false);
        if !problems.is_empty() {
            bail!(
                "validation failed; nothing was applied:\n  {}",
                problems.join("\n  ")
            );
        }
        let target = self.settings.target.as_ref();
        // Prepare them all before running any: a broken later file stops the run up front.
        plan.pending()
            .into_iter()
            .filter(|s| match (&s.version, target) {
                (Some(v), Some(t)) => v <= t,
                _ => true,
            })
            .map(|s| {
                let s: &'a Script = self
                    .scripts
                    .iter()
                    .find(|x| std::ptr::eq(*x, s))
                    .expect("from self.scripts");
                prepare(s, self.settings)
            })
            .collect()
    }

    /// Applies every pending migration in order; stops at the first failure.
    pub fn migrate(&self, dry_run: bool) -> Result<MigrateReport> {
        let _lock = if dry_run { None } else { Some(self.lock()?) };
        if !dry_run {
            self.db.act_as_schema_owner()?;
            self.ensure_table()?;
        }
        let applied = self.history()?;
        let before = self.plan(&applied).current().map(|v| v.to_string());
        let pending = self.pending(&applied)?;
        let mut report = MigrateReport {
            database: self.db.label.clone(),
            schema_version_before: before.clone(),
            schema_version_after: before,
            applied: vec![],
            failed: None,
            dry_run,
            would_run: vec![],
        };
        for p in pending {
            if dry_run {
                report.would_run.push(WouldRun {
                    version: p.script.version.as_ref().map(|v| v.to_string()),
                    description: p.script.description.clone(),
                    script: p.script.script.clone(),
                    transactional: p.transactional,
                    sql: p.sql.clone(),
                });
                continue;
            }
            eprintln!(
                "applying {} ({}{})…",
                p.script.script,
                p.statements.len(),
                if p.transactional {
                    " statements, one transaction"
                } else {
                    " statements, no transaction"
                }
            );
            match self.apply(&p, true)? {
                Ok(ran) => report.applied.push(ran),
                Err(f) => {
                    report.failed = Some(f);
                    break;
                }
            }
        }
        if !dry_run {
            // With --out-of-order the last one applied need not be the newest.
            let now = self.history()?;
            report.schema_version_after = self.plan(&now).current().map(|v| v.to_string());
        }
        Ok(report)
    }

    /// Runs one prepared script. With `record`, its history row is written (in the same
    /// transaction when transactional). The outer error is the history write failing; the
    /// inner one the script.
    pub fn apply(&self, p: &Prepared, record: bool) -> Result<Result<Ran, Failure>> {
        let s = p.script;
        let start = Instant::now();
        let mut rows = 0u64;
        let row = |ms: i32, success: bool| NewRow {
            version: None,
            description: &s.description,
            kind: history::SQL,
            script: &s.script,
            checksum: Some(s.checksum),
            installed_by: &self.installed_by,
            execution_time_ms: ms,
            success,
        };
        let version = s.version.as_ref().map(|v| v.to_string());
        let kind = if s.kind == Kind::Undo {
            history::UNDO_SQL
        } else {
            history::SQL
        };
        let fail = |i: usize, st: &Statement, e: DbError, rolled_back: bool| Failure {
            version: version.clone(),
            description: s.description.clone(),
            script: s.script.clone(),
            statement: i,
            line: st.line,
            sql: st.excerpt(),
            sqlstate: e.code.clone(),
            error: e.to_string(),
            context: e.context.as_deref().map(str::to_string),
            rolled_back,
            breaking: None,
        };
        if p.transactional {
            self.db.exec("begin")?;
        }
        for (i, st) in p.statements.iter().enumerate() {
            match self.db.run(&st.text) {
                Ok(o) => rows += o.rows_affected,
                Err(e) => {
                    if p.transactional {
                        self.db.exec("rollback")?;
                    } else if record {
                        let ms = start.elapsed().as_millis() as i32;
                        self.table.insert(
                            self.db,
                            &NewRow {
                                version: version.as_deref(),
                                kind,
                                ..row(ms, false)
                            },
                        )?;
                    }
                    return Ok(Err(fail(i, st, e, p.transactional)));
                }
            }
        }
        let ms = start.elapsed().as_millis() as i32;
        if record {
            let r = self.table.insert(
                self.db,
                &NewRow {
                    version: version.as_deref(),
                    kind,
                    ..row(ms, true)
                },
            );
            if let Err(e) = r {
                if p.transactional {
                    let _ = self.db.exec("rollback");
                }
                bail!("recording {} in {}: {e}", s.script, self.table.qualified());
            }
        }
        if p.transactional {
            // Deferred constraints are checked here; a failure rolls everything back.
            if let Err(e) = self.db.exec("commit") {
                let last = p.statements.len().saturating_sub(1);
                return Ok(Err(fail(last, &p.statements[last], e, true)));
            }
        }
        Ok(Ok(Ran {
            version,
            description: s.description.clone(),
            script: s.script.clone(),
            transactional: p.transactional,
            statements: p.statements.len(),
            rows_affected: rows,
            execution_time_ms: ms,
        }))
    }

    /// Reverts the most recently applied versioned migration with its `U` file.
    pub fn undo(&self) -> Result<Result<Ran, Failure>> {
        let _lock = self.lock()?;
        self.db.act_as_schema_owner()?;
        let applied = self.history()?;
        let plan = self.plan(&applied);
        let problems = plan.problems(false);
        if !problems.is_empty() {
            bail!(
                "validation failed; nothing was undone:\n  {}",
                problems.join("\n  ")
            );
        }
        let Some(last) = applied
            .iter()
            .filter(|a| a.kind == history::SQL && a.success && a.version.is_some())
            .filter(|a| {
                plan.info().iter().any(|i| {
                    i.version == a.version && matches!(i.state, State::Success | State::OutOfOrder)
                })
            })
            .max_by_key(|a| a.installed_rank)
        else {
            bail!("nothing to undo: no versioned migration is applied");
        };
        let v = last.version().expect("filtered");
        let Some(u) = self
            .scripts
            .iter()
            .find(|s| s.kind == Kind::Undo && s.version.as_ref() == Some(&v))
        else {
            bail!(
                "cannot undo version {v} ({}): there is no undo file U{v}__….sql for it",
                last.script
            );
        };
        let p = prepare(u, self.settings)?;
        self.apply(&p, true)
    }

    /// Removes failed entries, realigns checksums and descriptions with the files, and marks
    /// applied migrations whose files are gone as deleted. One transaction.
    pub fn repair(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        if !self.table.exists(self.db)? {
            bail!(
                "there is no history table {} to repair; `lakelet migrate migrate` creates it",
                self.table.qualified()
            );
        }
        let applied = self.history()?;
        let plan = self.plan(&applied);
        let t = self.table.qualified();
        let mut done = vec![];
        self.db.exec("begin")?;
        let r = (|| -> Result<(), DbError> {
            for a in applied.iter().filter(|a| !a.success) {
                self.db.execute(
                    &format!("delete from {t} where installed_rank = $1"),
                    &[&a.installed_rank],
                )?;
                done.push(format!(
                    "removed the failed entry for {} ({})",
                    label(&a.version, &a.description),
                    a.script
                ));
            }
            for i in plan.info() {
                if i.state == State::Missing && i.kind == history::SQL {
                    let a = applied
                        .iter()
                        .rfind(|a| a.script == i.script && a.version == i.version && a.success)
                        .expect("info comes from a row");
                    self.table.insert(
                        self.db,
                        &NewRow {
                            version: a.version.as_deref(),
                            description: &a.description,
                            kind: history::DELETE,
                            script: &a.script,
                            checksum: a.checksum,
                            installed_by: &self.installed_by,
                            execution_time_ms: 0,
                            success: true,
                        },
                    )?;
                    done.push(format!(
                        "marked {} ({}) deleted: its file is gone",
                        label(&a.version, &a.description),
                        a.script
                    ));
                }
            }
            for a in applied
                .iter()
                .filter(|a| a.success && a.kind == history::SQL)
            {
                let Some(v) = a.version() else { continue };
                let Some(f) = self
                    .scripts
                    .iter()
                    .find(|s| s.kind == Kind::Versioned && s.version.as_ref() == Some(&v))
                else {
                    continue;
                };
                if a.checksum != Some(f.checksum) || a.description != f.description {
                    self.db.execute(
                        &format!(
                            "update {t} set checksum = $1, description = $2 where installed_rank = $3"
                        ),
                        &[&f.checksum, &f.description, &a.installed_rank],
                    )?;
                    done.push(format!(
                        "realigned {} with {}: checksum {} → {}",
                        label(&a.version, &a.description),
                        f.script,
                        a.checksum.map_or("none".into(), |c| c.to_string()),
                        f.checksum
                    ));
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => self.db.exec("commit")?,
            Err(e) => {
                let _ = self.db.exec("rollback");
                bail!("repair failed and changed nothing: {e}");
            }
        }
        Ok(done)
    }

    /// Starts a history for a database that already has a schema: a BASELINE row at
    /// `version`; migrations up to it are then never applied.
    pub fn baseline(&self, version: &Version, description: &str) -> Result<()> {
        let _lock = self.lock()?;
        self.ensure_table()?;
        let applied = self.history()?;
        let real: Vec<_> = applied
            .iter()
            .filter(|a| a.kind != history::SCHEMA)
            .collect();
        if !real.is_empty() {
            bail!(
                "{} already has {} entries (newest: {}); baseline only starts a history for a \
                 database that has none",
                self.table.qualified(),
                real.len(),
                real.last().map(|a| a.script.as_str()).unwrap_or("")
            );
        }
        let v = version.to_string();
        self.table.insert(
            self.db,
            &NewRow {
                version: Some(&v),
                description,
                kind: history::BASELINE,
                script: description,
                checksum: None,
                installed_by: &self.installed_by,
                execution_time_ms: 0,
                success: true,
            },
        )?;
        Ok(())
    }
}
