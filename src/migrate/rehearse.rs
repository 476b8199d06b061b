//! `rehearse`: the idempotency rule made executable, on a branch nobody else sees.
//!
//! Fork a throwaway branch of the target, then for each pending migration: apply it (with its
//! history row, as `migrate` would), take a schema fingerprint, run its SQL a second time, and
//! compare. The second run must succeed and change nothing. Each migration is re-run right
//! after its own first run, not after all of them: re-running V1 after V5 dropped what V1
//! made would fail correct migrations. A failing first run stops the rehearsal (later
//! migrations build on it) and names the rows that break it. The branch is deleted at the end,
//! whatever happened; it also carries a one-hour expiry, so a killed rehearsal cleans up too.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use serde::Serialize;

use super::corrupt::{self, Corrupted, Corruption};
use super::db::Db;
use super::diagnose;
use super::run::{prepare, Failure, Ran, Runner};
use super::schema;
use super::script::Script;
use super::Settings;
use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;

pub struct Options {
    /// Damage these columns on the throwaway branch before applying anything.
    pub corrupt: Vec<Corruption>,
    pub seed: u32,
    /// Keep the branch for inspection instead of deleting it.
    pub keep: bool,
    /// Show this many breaking rows (every one is counted).
    pub row_limit: usize,
    /// The branch name's prefix (`rehearse`; a principal's own prefix where the policy's
    /// feature names require one).
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub branch: String,
    pub kept: bool,
    pub corrupted: Vec<Corrupted>,
    pub migrations: Vec<Step>,
    /// Every pending migration applied, and each second run succeeded without a change.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub version: Option<String>,
    pub description: String,
    pub script: String,
    pub first_run: Option<Ran>,
    pub failed: Option<Failure>,
    /// The rows that break the failed first run, by the corruption recipe that damaged each
    /// (`undamaged` for rows no recipe touched).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub breaking_by_recipe: BTreeMap<String, u64>,
    pub second_run: Option<SecondRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecondRun {
    /// What Postgres said, when the second run failed.
    pub error: Option<String>,
    /// Schema objects the second run added (+), dropped (-) or changed (~).
    pub changed: Vec<String>,
    pub rows_affected: u64,
    pub execution_time_ms: i32,
    pub idempotent: bool,
}

/// Deletes the throwaway branch when dropped, unless kept.
struct Sandbox<'a> {
    api: &'a Branches,
    name: String,
    keep: bool,
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.api.delete(&self.name, true) {
                eprintln!(
                    "could not delete the rehearsal branch '{}' ({e:#}); it expires within the hour",
                    self.name
                );
            }
        }
    }
}

/// Rehearses the pending migrations of `scripts` on a throwaway branch of `source`.
/// `connect` gives a connection string for a branch (the CLI knows how, per target).
pub fn rehearse(
    api: &Branches,
    connect: &dyn Fn(&str) -> Result<String>,
    source: &str,
    settings: &Settings,
    scripts: &[Script],
    opts: &Options,
) -> Result<Report> {
    let name = crate::util::throwaway_name(&opts.prefix, source);
    eprintln!("forking '{name}' from '{source}'…");
    api.create(
        &name,
        BranchSpec {
            source_branch: Some(api.branch_name(source)),
            ttl: Some("3600s".into()),
            ..Default::default()
        },
    )
    .with_context(|| format!("forking a rehearsal branch from '{source}'"))?;
    let _sandbox = Sandbox {
        api,
        name: name.clone(),
        keep: opts.keep,
    };
    let db = Db::connect(&connect(&name)?)?;
    let settings = settings.clone().with_builtins(&db)?;
    let runner = Runner::new(&db, &settings, scripts)?;
    let mut report = Report {
        source: source.to_string(),
        branch: name.clone(),
        kept: opts.keep,
        corrupted: vec![],
        migrations: vec![],
        ok: true,
    };
    for (i, c) in opts.corrupt.iter().enumerate() {
        let done = corrupt::apply(&db, c, opts.seed, i)?;
        eprintln!(
            "corrupted {} rows of {}.{} ({})",
            done.rows,
            done.table,
            done.column,
            done.recipes
                .iter()
                .map(|(r, n)| format!("{n} {}", r.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        report.corrupted.push(done);
    }
    // As the merge will: the migrations run as the schema's owner where there is one.
    db.act_as_schema_owner()?;
    let applied = runner.history()?;
    // Validates the history and prepares every pending file; changes nothing.
    let pending = runner.pending(&applied)?;
    // History table first, so its creation is not counted as the first migration's change.
    if !runner.table.exists(&db)? {
        db.exec("begin")?;
        runner.table.create(&db, &runner.installed_by)?;
        db.exec("commit")?;
    }
    for p in pending {
        let s = p.script;
        eprintln!("rehearsing {}…", s.script);
        let mut step = Step {
            version: s.version.as_ref().map(|v| v.to_string()),
            description: s.description.clone(),
            script: s.script.clone(),
            first_run: None,
            failed: None,
            breaking_by_recipe: BTreeMap::new(),
            second_run: None,
        };
        match runner.apply(&p, true)? {
            Err(mut f) => {
                let b = find_breaking_rows(&db, &p, &f, opts.row_limit)?;
                step.breaking_by_recipe = by_recipe(&b, &report.corrupted);
                f.breaking = Some(b).filter(|b| b.count > 0);
                step.failed = Some(f);
                report.ok = false;
                report.migrations.push(step);
                break;
            }
            Ok(ran) => step.first_run = Some(ran),
        }
        let before = schema::fingerprint(&db, &settings.schema, &settings.table)?;
        let again = prepare(s, &settings)?;
        let second = match runner.apply(&again, false)? {
            Ok(ran) => {
                let after = schema::fingerprint(&db, &settings.schema, &settings.table)?;
                let changed = schema::changes(&before, &after);
                SecondRun {
                    error: None,
                    idempotent: changed.is_empty(),
                    changed,
                    rows_affected: ran.rows_affected,
                    execution_time_ms: ran.execution_time_ms,
                }
            }
            Err(f) => SecondRun {
                error: Some(format!("{}:{}: {}", f.script, f.line, f.error)),
                changed: vec![],
                rows_affected: 0,
                execution_time_ms: 0,
                idempotent: false,
            },
        };
        report.ok &= second.idempotent;
        step.second_run = Some(second);
        report.migrations.push(step);
    }
    Ok(report)
}

/// Puts the session just before the failing statement (re-running the ones before it in a
/// transaction, when the script is transactional), looks for the rows, and rolls back.
fn find_breaking_rows(
    db: &Db,
    p: &super::run::Prepared,
    f: &Failure,
    limit: usize,
) -> Result<diagnose::Breaking> {
    // Data errors (class 22) and constraint violations (class 23) are about rows.
    if !(f.sqlstate.starts_with("22") || f.sqlstate.starts_with("23")) {
        return Ok(Default::default());
    }
    db.exec("begin")?;
    if p.transactional {
        for st in &p.statements[..f.statement] {
            if db.run(&st.text).is_err() {
                db.exec("rollback")?;
                return Ok(Default::default());
            }
        }
    }
    let st = &p.statements[f.statement];
    let rows = diagnose::breaking_rows(db, st, f.context.as_deref(), limit);
    db.exec("rollback")?;
    Ok(rows)
}

/// Breaking rows counted by the recipe that damaged each (a row two specs damaged counts
/// for both).
fn by_recipe(b: &diagnose::Breaking, corrupted: &[Corrupted]) -> BTreeMap<String, u64> {
    let mut marks: HashMap<(&str, &str), Vec<&'static str>> = HashMap::new();
    for c in corrupted {
        for (key, r) in &c.marks {
            marks.entry((&c.table, key)).or_default().push(r.name());
        }
    }
    let mut out = BTreeMap::new();
    if corrupted.is_empty() {
        return out;
    }
    for key in &b.keys {
        match marks.get(&(b.table.as_str(), key.as_str())) {
            Some(rs) => {
                for r in rs {
                    *out.entry(r.to_string()).or_default() += 1;
                }
            }
            None => *out.entry("undamaged".to_string()).or_default() += 1,
        }
    }
    out
}
