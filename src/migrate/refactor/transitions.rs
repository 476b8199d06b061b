//! `.lakebase/transitions.json`: the transitions in flight, version controlled beside the
//! migrations so every clone and CI run sees the same ones. Checked against the shipped
//! draft-07 schema on every read and write: a hand edit that breaks it is named, never
//! silently dropped.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::super::db::{quote_literal, Db};
use super::Plan;

pub const FILE: &str = ".lakebase/transitions.json";
const SCHEMA: &str = include_str!("transitions.schema.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transitions {
    pub version: u32,
    pub transitions: Vec<Transition>,
}

impl Default for Transitions {
    fn default() -> Self {
        Transitions {
            version: 1,
            transitions: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    pub id: String,
    pub refactoring: String,
    pub table: String,
    pub columns: Vec<String>,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339: the contract is refused before it.
    pub contract_after: String,
    /// Who wrote it (the acting principal), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The expand migrations' file names.
    pub expand: Vec<String>,
    /// The staged contract, relative to the project directory.
    pub contract_staged: String,
    /// The contract migration's file name, once `lakelet refactor contract` wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_migration: Option<String>,
    /// What must have no readers left before the contract: (table, column; "" for the
    /// table itself).
    pub old_shape: Vec<OldShape>,
    /// `expanding` until the contract migration is written, then `contracting`.
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OldShape {
    pub table: String,
    #[serde(default)]
    pub column: String,
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| crate::util::draft7(SCHEMA))
}

fn check(v: &serde_json::Value, path: &Path) -> Result<()> {
    let errors: Vec<String> = crate::util::violations(validator(), v)
        .into_iter()
        .map(|e| format!("  {e}"))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{} does not match its schema:\n{}\nFix the file (it is version controlled: `git \
             diff` shows what changed)",
            path.display(),
            errors.join("\n")
        );
    }
    Ok(())
}

pub fn path(project: &Path) -> PathBuf {
    project.join(FILE)
}

/// The transitions of the project (none when the file does not exist yet).
pub fn load(project: &Path) -> Result<Transitions> {
    let p = path(project);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Transitions::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
    check(&v, &p)?;
    serde_json::from_value(v).with_context(|| format!("reading {}", p.display()))
}

pub fn save(project: &Path, t: &Transitions) -> Result<()> {
    let p = path(project);
    let v = serde_json::to_value(t)?;
    check(&v, &p)?;
    std::fs::create_dir_all(p.parent().expect("a file"))?;
    let text = serde_json::to_string_pretty(&v)? + "\n";
    crate::util::write_atomically(&p, text.as_bytes(), 0o644)
}

impl Transitions {
    pub fn get(&self, id: &str) -> Result<&Transition> {
        self.transitions.iter().find(|t| t.id == id).ok_or_else(|| {
            anyhow::anyhow!("no transition {id:?} in {FILE} (`lakelet refactor status` lists them)")
        })
    }

    /// Refuses an id already recorded (checked before anything is written, and again when
    /// the record is added).
    pub fn check_new(&self, id: &str) -> Result<()> {
        if self.transitions.iter().any(|t| t.id == id) {
            bail!("a transition {id:?} is already recorded in {FILE}; give this one another --id");
        }
        Ok(())
    }

    /// A new transition from a plan whose files were written as `expand`.
    pub fn add(
        &mut self,
        plan: &Plan,
        expand: Vec<String>,
        staged: String,
        started: String,
        contract_after: String,
        by: Option<String>,
    ) -> Result<()> {
        self.check_new(&plan.id)?;
        self.transitions.push(Transition {
            id: plan.id.clone(),
            refactoring: plan.refactoring.to_string(),
            table: plan.table.clone(),
            columns: plan.columns.clone(),
            started,
            contract_after,
            by,
            expand,
            contract_staged: staged,
            contract_migration: None,
            old_shape: plan
                .old_shape
                .iter()
                .map(|(t, c)| OldShape {
                    table: t.clone(),
                    column: c.clone(),
                })
                .collect(),
            state: "expanding".into(),
        });
        Ok(())
    }
}

impl Transition {
    /// Whether the transition period is over (its contract may be written and applied).
    pub fn due(&self, now_ns: i64) -> Result<bool> {
        let after = crate::storage::parse_time(&self.contract_after).map_err(anyhow::Error::msg)?;
        Ok(now_ns >= after)
    }
}

/// Who still reads the old shape on `db`: views and materialized views depending on the
/// column (or the table), and functions whose bodies name it — lakelet's own sync functions
/// for this transition aside.
pub fn readers(db: &Db, t: &Transition) -> Result<Vec<String>> {
    let own = super::sync::sync_name(&t.id);
    let mut out = vec![];
    for s in &t.old_shape {
        if db
            .value(&format!(
                "select to_regclass({})::text",
                quote_literal(&s.table)
            ))?
            .is_none()
        {
            continue; // already gone
        }
        let (views, word) = if s.column.is_empty() {
            // Rename Table: the old name is our view; its readers depend on the view.
            (
                db.query(
                    "select distinct v.oid::regclass::text from pg_depend d \
                     join pg_rewrite r on r.oid = d.objid join pg_class v on v.oid = r.ev_class \
                     where d.refobjid = $1::text::regclass and v.oid <> $1::text::regclass",
                    &[&s.table],
                )?,
                s.table
                    .rsplit('.')
                    .next()
                    .unwrap_or(&s.table)
                    .trim_matches('"')
                    .to_string(),
            )
        } else {
            (
                db.query(
                    "select distinct v.oid::regclass::text from pg_depend d \
                     join pg_rewrite r on r.oid = d.objid join pg_class v on v.oid = r.ev_class \
                     join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid \
                     where d.refobjid = $1::text::regclass and a.attname = $2 and v.oid <> $1::text::regclass",
                    &[&s.table, &s.column],
                )?,
                s.column.clone(),
            )
        };
        for v in views {
            let name: String = v.get(0);
            out.push(format!("view {name} reads {}", shape(s)));
        }
        let funcs = db.query(
            "select p.oid::regprocedure::text from pg_proc p \
             join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname not in ('pg_catalog', 'information_schema') \
               and p.prosrc ~* ('\\m' || $1 || '\\M') and p.proname not like $2 || '%'",
            &[&word, &own],
        )?;
        for f in funcs {
            let name: String = f.get(0);
            out.push(format!("function {name} names {}", shape(s)));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn shape(s: &OldShape) -> String {
    if s.column.is_empty() {
        format!("the old name {}", s.table)
    } else {
        format!("{}.{}", s.table, s.column)
    }
}

/// The project a migrations directory belongs to: the nearest ancestor holding lakelet.toml
/// or `.lakebase/` (else the directory's parent).
pub fn project_of(migrations: &Path) -> PathBuf {
    let abs = std::path::absolute(migrations).unwrap_or_else(|_| migrations.to_path_buf());
    abs.ancestors()
        .find(|d| d.join("lakelet.toml").is_file() || d.join(".lakebase").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| abs.parent().unwrap_or(&abs).to_path_buf())
}

/// Lint's finding for a contract migration (a file carrying `-- lakelet:contract ID`) that
/// may not run yet: before its transition's date (`contract-too-early`), or while the old
/// shape still has readers on `db` (`contract-with-readers`). Never acknowledgeable: the
/// transition record is where the date is changed, in review.
pub fn lint_contract(
    project: &Path,
    text: &str,
    db: Option<&Db>,
) -> Result<Option<crate::migrate::lint::Finding>> {
    let now = crate::util::now_nanos();
    let Some((rule, message)) = contract_refusal(project, text, db, now)? else {
        return Ok(None);
    };
    let line = text
        .lines()
        .position(|l| l.contains("lakelet:contract"))
        .map_or(1, |i| i + 1);
    Ok(Some(crate::migrate::lint::Finding {
        rule,
        line,
        statement: "-- lakelet:contract …".to_string(),
        message,
        fix: "Wait for the transition's end (`lakelet refactor status`), move the old shape's \
              readers, then `lakelet refactor contract ID`"
            .into(),
        acknowledged: None,
    }))
}

/// Lint's view: why the contract migration in `text` (a file carrying `-- lakelet:contract
/// ID`) may not be applied yet, if it may not. `db` adds the readers check.
pub fn contract_refusal(
    project: &Path,
    text: &str,
    db: Option<&Db>,
    now_ns: i64,
) -> Result<Option<(&'static str, String)>> {
    let Ok(directives) = super::super::sql::file_directives(text) else {
        return Ok(None);
    };
    let Some(id) = directives
        .iter()
        .find_map(|d| d.strip_prefix("contract ").map(str::trim))
    else {
        return Ok(None);
    };
    let all = load(project)?;
    let Ok(t) = all.get(id) else {
        return Ok(Some((
            "contract-too-early",
            format!(
                "it contracts transition {id:?}, which {FILE} does not record: write contracts \
                 with `lakelet refactor contract ID`"
            ),
        )));
    };
    if !t.due(now_ns)? {
        return Ok(Some((
            "contract-too-early",
            format!(
                "transition {id} lets old readers work until {}; its contract may not run \
                 before then",
                t.contract_after
            ),
        )));
    }
    if let Some(db) = db {
        let r = readers(db, t)?;
        if !r.is_empty() {
            return Ok(Some((
                "contract-with-readers",
                format!(
                    "transition {id}: the old shape still has readers: {}; move them first",
                    r.join("; ")
                ),
            )));
        }
    }
    Ok(None)
}
