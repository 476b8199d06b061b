//! `lakelet refactor …`: the catalog, the transitions in flight, and writing a refactoring's
//! migrations. The work is `crate::migrate::refactor`'s; this resolves the branch to check
//! against, the project's directories and the dates, writes the files, and prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::print;
use crate::api::lakebase::client::TargetKind;
use crate::migrate::db::Db;
use crate::migrate::refactor::{self, transitions, Request, CATALOG};
use crate::migrate::script;

#[derive(Subcommand)]
pub enum RefactorCmd {
    /// The catalog: every refactoring and its mechanics.
    List,
    /// The transitions in flight (.lakebase/transitions.json); with --branch, which of their
    /// migrations that branch has applied and who still reads the old shape there.
    Status {
        #[arg(long)]
        branch: Option<String>,
    },
    /// Write a transition's contract migration into the migrations directory: refused before
    /// its date, and while --branch still has readers of the old shape.
    Contract {
        id: String,
        /// The branch whose readers are checked (the tier the contract will run on).
        #[arg(long)]
        branch: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Split Column: one text column into several (--into, --using), kept in sync until the contract.
    #[command(name = "split-column")]
    SplitColumn(Opts),
    /// Merge Columns: several columns into one (--into, --using), kept in sync until the contract.
    #[command(name = "merge-columns")]
    MergeColumns(Opts),
    /// Rename Column: the column under a new name (--to), both names in sync until the contract.
    #[command(name = "rename-column")]
    RenameColumn(Opts),
    /// Rename Table: the table under a new name (--to), an updatable view under the old one until the contract.
    #[command(name = "rename-table")]
    RenameTable(Opts),
    /// Move Column: a column to a table whose --via column points at this one (--to), both in sync until the contract.
    #[command(name = "move-column")]
    MoveColumn(Opts),
    /// Replace Type: a column of a new type (--type, --to), converted both ways until the contract.
    #[command(name = "replace-type")]
    ReplaceType(Opts),
    /// Introduce Not-Null: a NOT VALID check, NULLs backfilled (--default), SET NOT NULL at the contract.
    #[command(name = "introduce-not-null")]
    IntroduceNotNull(Opts),
    /// Introduce Default Value: one phase, ALTER COLUMN … SET DEFAULT (--default).
    #[command(name = "introduce-default")]
    IntroduceDefault(Opts),
    /// Add Foreign Key: NOT VALID now (--references TABLE(COLUMN)), VALIDATE at the contract.
    #[command(name = "add-foreign-key")]
    AddForeignKey(Opts),
    /// Introduce Lookup Table: the distinct values in a table of their own (--to), an id column referencing it.
    #[command(name = "introduce-lookup-table")]
    IntroduceLookupTable(Opts),
    /// Drop Column: deprecated now, dropped at the contract.
    #[command(name = "drop-column")]
    DropColumn(Opts),
}

// The flags every refactoring takes; each uses the ones its mechanics need and refuses a
// missing one by name (`lakelet refactor list` shows which).
#[derive(Args)]
pub struct Opts {
    /// [SCHEMA.]TABLE.COLUMN (TABLE for rename-table, TABLE.A,B for merge-columns).
    #[arg(value_name = "TABLE.COLUMN")]
    subject: String,
    /// The branch the refactoring is checked against (tables, types, every row).
    #[arg(long)]
    branch: String,
    /// New columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    into: Vec<String>,
    /// SQL over the old shape computing the new, one per new column (repeat the flag, or one
    /// comma-separated list).
    #[arg(long)]
    using: Vec<String>,
    /// SQL over the new shape giving back the old, for writers of the new shape during the
    /// transition.
    #[arg(long)]
    reverse: Vec<String>,
    /// New name (rename-*, replace-type's new column, move-column's and
    /// introduce-lookup-table's table).
    #[arg(long)]
    to: Option<String>,
    /// New type(s) (replace-type; the new columns' types otherwise, default: what --using
    /// gives).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    #[arg(long)]
    default: Option<String>,
    /// TABLE(COLUMN) (add-foreign-key).
    #[arg(long)]
    references: Option<String>,
    /// The column of --to pointing at the table's primary key (move-column).
    #[arg(long)]
    via: Option<String>,
    /// The transition's id (default: the refactoring and its target).
    #[arg(long)]
    id: Option<String>,
    /// How long readers of the old shape get before the contract may run.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    transition: Duration,
    /// The migrations directory (default: lakelet.toml's [migrations] dir, else ./migrations).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value = "postgres")]
    database: String,
    /// Print what would be written; write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl RefactorCmd {
    fn opts(self) -> Option<(&'static str, Opts)> {
        Some(match self {
            RefactorCmd::SplitColumn(o) => ("split-column", o),
            RefactorCmd::MergeColumns(o) => ("merge-columns", o),
            RefactorCmd::RenameColumn(o) => ("rename-column", o),
            RefactorCmd::RenameTable(o) => ("rename-table", o),
            RefactorCmd::MoveColumn(o) => ("move-column", o),
            RefactorCmd::ReplaceType(o) => ("replace-type", o),
            RefactorCmd::IntroduceNotNull(o) => ("introduce-not-null", o),
            RefactorCmd::IntroduceDefault(o) => ("introduce-default", o),
            RefactorCmd::AddForeignKey(o) => ("add-foreign-key", o),
            RefactorCmd::IntroduceLookupTable(o) => ("introduce-lookup-table", o),
            RefactorCmd::DropColumn(o) => ("drop-column", o),
            _ => return None,
        })
    }
}

/// Where lakelet.toml is (else the working directory), and the migrations directory.
fn dirs(dir: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    let (migrations, _) = super::migrate::configured(dir)?;
    let project = transitions::project_of(&migrations);
    Ok((project, migrations))
}

fn connect(
    dd: &Path,
    target: Option<TargetKind>,
    project: Option<&str>,
    branch: &str,
    database: &str,
) -> Result<Db> {
    let api = super::config::branches(dd, target, project)?;
    let url = super::connect::target_info(dd, &api, branch, database, false)?.url;
    Db::connect(&url)
}

#[derive(Serialize)]
struct Written {
    id: String,
    refactoring: String,
    files: Vec<String>,
    contract_staged: Option<String>,
    contract_after: Option<String>,
    notes: Vec<String>,
    dry_run: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sql: Vec<refactor::Migration>,
}

pub fn run(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    cmd: RefactorCmd,
) -> Result<()> {
    match cmd {
        RefactorCmd::List => {
            #[derive(Serialize)]
            struct Entry {
                id: &'static str,
                name: &'static str,
                mechanics: &'static [&'static str],
            }
            let all: Vec<Entry> = CATALOG
                .iter()
                .map(|r| Entry {
                    id: r.id,
                    name: r.name,
                    mechanics: r.mechanics,
                })
                .collect();
            print(json, &all, |all| {
                all.iter()
                    .map(|e| format!("{} ({})\n  - {}", e.id, e.name, e.mechanics.join("\n  - ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        RefactorCmd::Status { branch } => status(dd, json, target, project_flag, branch),
        RefactorCmd::Contract { id, branch, dir } => {
            contract(dd, json, target, project_flag, &id, &branch, dir)
        }
        other => {
            let (kind, o) = other.opts().expect("a refactoring");
            write(dd, json, target, project_flag, kind, o)
        }
    }
}

fn write(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    kind: &str,
    o: Opts,
) -> Result<()> {
    if let Some(id) = &o.id {
        if id.is_empty()
            || id.len() > 63
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("--id {id:?}: use 1-63 lowercase letters, digits and underscores");
        }
    }
    let (project, migrations) = dirs(o.dir.clone())?;
    let scripts = script::load(&migrations)?;
    let now = crate::util::now_nanos();
    let contract_after = crate::storage::format_time(now + o.transition.as_nanos() as i64);
    let req = Request {
        kind: kind.to_string(),
        target: o.subject.clone(),
        into: o.into.clone(),
        using: o.using.clone(),
        reverse: o.reverse.clone(),
        to: o.to.clone(),
        types: o.types.clone(),
        default: o.default.clone(),
        references: o.references.clone(),
        via: o.via.clone(),
        id: o.id.clone(),
        contract_after: contract_after.clone(),
    };
    let mut all = transitions::load(&project)?;
    let db = connect(dd, target, project_flag, &o.branch, &o.database)?;
    let plan = refactor::plan(&db, &req).with_context(|| format!("{kind} {}", o.subject))?;
    if plan.contract.is_some() {
        // Refuse a second transition under the same id before writing anything.
        all.check_new(&plan.id)?;
    }
    let files: Vec<(String, String)> = (refactor::next_version(&scripts)..)
        .zip(&plan.expand)
        .map(|(v, m)| (format!("V{v}__{}.sql", m.description), m.text.clone()))
        .collect();
    for (name, _) in &files {
        if migrations.join(name).exists() {
            bail!(
                "{} already exists; nothing was written",
                migrations.join(name).display()
            );
        }
    }
    let staged = plan
        .contract
        .as_ref()
        .map(|_| format!(".lakebase/transitions/{}.contract.sql", plan.id));
    let out = Written {
        id: plan.id.clone(),
        refactoring: kind.to_string(),
        files: files.iter().map(|(n, _)| n.clone()).collect(),
        contract_staged: staged.clone(),
        contract_after: plan.contract.as_ref().map(|_| contract_after.clone()),
        notes: plan.notes.clone(),
        dry_run: o.dry_run,
        sql: if o.dry_run {
            plan.expand
                .iter()
                .chain(plan.contract.iter())
                .cloned()
                .collect()
        } else {
            vec![]
        },
    };
    if !o.dry_run {
        // All or nothing: the files this command wrote are removed again if a later write
        // fails (the transitions file is written last, atomically).
        let mut written: Vec<PathBuf> = vec![];
        let r = (|| -> Result<()> {
            for (name, text) in &files {
                let p = migrations.join(name);
                crate::util::write_atomically(&p, text.as_bytes(), 0o644)?;
                written.push(p);
            }
            if let (Some(c), Some(staged)) = (&plan.contract, &staged) {
                let p = project.join(staged);
                std::fs::create_dir_all(p.parent().expect("a file"))?;
                if p.exists() {
                    bail!("{} already exists; nothing was written", p.display());
                }
                crate::util::write_atomically(&p, c.text.as_bytes(), 0o644)?;
                written.push(p);
                let by = crate::api::client::acting_principal()?.map(|(n, _)| n);
                all.add(
                    &plan,
                    out.files.clone(),
                    staged.clone(),
                    crate::storage::format_time(now),
                    contract_after.clone(),
                    by,
                )?;
                transitions::save(&project, &all)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    }
    print(json, &out, |w| {
        let mut s = String::new();
        for m in &w.sql {
            s += &format!("-- {}.sql\n{}\n", m.description, m.text);
        }
        let verb = if w.dry_run { "would write" } else { "wrote" };
        for f in &w.files {
            s += &format!("{verb} {}\n", migrations.join(f).display());
        }
        if let (Some(c), Some(after)) = (&w.contract_staged, &w.contract_after) {
            s += &format!(
                "{verb} the contract to {c}; `lakelet refactor contract {}` moves it into the \
                 migrations after {after}\n",
                w.id
            );
        }
        for n in &w.notes {
            s += &format!("note: {n}\n");
        }
        s += "rehearse it: lakelet migrate rehearse --branch BRANCH";
        s
    });
    Ok(())
}

#[derive(Serialize)]
struct Status {
    transition: transitions::Transition,
    due: bool,
    /// With --branch: the transition's migrations that branch has applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readers: Option<Vec<String>>,
}

fn status(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    branch: Option<String>,
) -> Result<()> {
    let (migrations, settings) = super::migrate::configured(None)?;
    let project = transitions::project_of(&migrations);
    let history = format!(
        "{}.{}",
        crate::migrate::db::quote_ident(&settings.schema),
        crate::migrate::db::quote_ident(&settings.table)
    );
    let all = transitions::load(&project)?;
    let db = match &branch {
        Some(b) => Some(connect(dd, target, project_flag, b, "postgres")?),
        None => None,
    };
    let now = crate::util::now_nanos();
    let mut out = vec![];
    for t in all.transitions {
        let (applied, readers) = match &db {
            Some(db) => {
                let names: Vec<String> = db
                    .query(&format!("select script from {history} where success"), &[])
                    .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                    .unwrap_or_default();
                let mine = t
                    .expand
                    .iter()
                    .chain(t.contract_migration.iter())
                    .filter(|f| names.contains(f))
                    .cloned()
                    .collect();
                (Some(mine), Some(transitions::readers(db, &t)?))
            }
            None => (None, None),
        };
        out.push(Status {
            due: t.due(now)?,
            transition: t,
            applied,
            readers,
        });
    }
    print(json, &out, |all| {
        if all.is_empty() {
            return "no transitions in flight".into();
        }
        all.iter()
            .map(|s| {
                let t = &s.transition;
                let mut line = format!(
                    "{} ({} {}{}): {}, contract {} {}",
                    t.id,
                    t.refactoring,
                    t.table,
                    if t.columns.is_empty() {
                        String::new()
                    } else {
                        format!(".{}", t.columns.join(","))
                    },
                    t.state,
                    if s.due { "due since" } else { "not before" },
                    t.contract_after
                );
                if let Some(a) = &s.applied {
                    line += &format!(
                        "\n  applied: {}",
                        if a.is_empty() {
                            "none".into()
                        } else {
                            a.join(", ")
                        }
                    );
                }
                if let Some(r) = &s.readers {
                    line += &format!(
                        "\n  readers of the old shape: {}",
                        if r.is_empty() {
                            "none".into()
                        } else {
                            r.join("; ")
                        }
                    );
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn contract(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    id: &str,
    branch: &str,
    dir: Option<PathBuf>,
) -> Result<()> {
    let (project, migrations) = dirs(dir)?;
    let mut all = transitions::load(&project)?;
    let t = all.get(id)?.clone();
    if let Some(m) = &t.contract_migration {
        bail!("transition {id}'s contract is already written as {m}");
    }
    let text = std::fs::read_to_string(project.join(&t.contract_staged))
        .with_context(|| format!("reading the staged contract {}", t.contract_staged))?;
    let db = connect(dd, target, project_flag, branch, "postgres")?;
    if let Some((_, why)) =
        transitions::contract_refusal(&project, &text, Some(&db), crate::util::now_nanos())?
    {
        bail!("not contracting: {why}");
    }
    let scripts = script::load(&migrations)?;
    let name = format!("V{}__{id}_contract.sql", refactor::next_version(&scripts));
    crate::util::write_atomically(&migrations.join(&name), text.as_bytes(), 0o644)?;
    let entry = all
        .transitions
        .iter_mut()
        .find(|x| x.id == id)
        .expect("found above");
    entry.contract_migration = Some(name.clone());
    entry.state = "contracting".into();
    transitions::save(&project, &all)?;
    let out = serde_json::json!({ "id": id, "file": name });
    print(json, &out, |_| {
        format!("wrote {}", migrations.join(&name).display())
    });
    Ok(())
}
