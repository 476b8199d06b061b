//! The four ways a diff is printed. `markdown` is the PR comment a DBA reviews; `sql` is a
//! script `psql -f` (or `lakelet migrate`) can run; `json` carries everything for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::Kind;
use super::plan::{Action, Change};
use super::Report;

/// The migration as a script, in transactions: each run of statements that can share one is
/// a `BEGIN … COMMIT` group, so a failure leaves the schema as the last group left it, never
/// half a group. Statements that cannot run in a transaction block (CONCURRENTLY, enum
/// values a later group uses) stand between the groups, and the file carries `-- lakelet:
/// no-transaction` so the migration runner runs it statement by statement.
pub fn sql(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "-- lakelet diff: {} → {}", r.base, r.target);
    if r.plan.script.is_empty() {
        let _ = writeln!(s, "-- no changes");
        return s;
    }
    let _ = writeln!(
        s,
        "-- {} changes, {} statements; hazards are listed by `lakelet diff --format markdown`.",
        r.plan.changes.len(),
        r.plan.script.len()
    );
    let _ = writeln!(
        s,
        "-- Run it with psql -f (not -1): each BEGIN … COMMIT group commits on its own, and\n\
         -- statements marked (on its own) run between them. On an error, the groups\n\
         -- before it are applied: `lakelet diff` of the database against the old schema\n\
         -- writes the SQL that undoes them. Saved as a migration, `lakelet migrate\n\
         -- rehearse --branch BASE` runs it on a throwaway branch first.\n\
         -- lakelet:no-transaction"
    );
    let _ = writeln!(s, "\nSET check_function_bodies = off;\n");
    let mut open = false;
    for st in &r.plan.script {
        if st.transactional && !open {
            let _ = writeln!(s, "BEGIN;\n");
            open = true;
        } else if !st.transactional && open {
            let _ = writeln!(s, "COMMIT;\n");
            open = false;
        }
        if !st.transactional {
            let _ = writeln!(s, "-- (on its own, outside a transaction group)");
        }
        let _ = writeln!(s, "{};\n", st.sql.trim_end().trim_end_matches(';'));
    }
    if open {
        let _ = writeln!(s, "COMMIT;");
    }
    s
}

fn symbol(a: Action) -> &'static str {
    match a {
        Action::Add => "+",
        Action::Drop => "-",
        Action::Alter => "~",
        Action::Replace => "±",
        Action::Rename => "→",
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Add => "added",
        Action::Drop => "dropped",
        Action::Alter => "altered",
        Action::Replace => "replaced",
        Action::Rename => "renamed",
    }
}

fn label(c: &Change) -> String {
    format!("{} {}", c.kind.noun(), c.object)
}

/// One line per change, details and hazards indented under it.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    if r.is_empty() {
        let _ = writeln!(s, "{} and {} have the same schema", r.base, r.target);
        return s;
    }
    let _ = writeln!(s, "{} → {}: {}", r.base, r.target, summary(r));
    for c in &r.plan.changes {
        let indent = if c.parent.is_some() { "  " } else { "" };
        let _ = writeln!(s, "{indent}{} {}", symbol(c.action), label(c));
        for d in &c.details {
            let _ = writeln!(s, "{indent}    {d}");
        }
        for h in &c.hazards {
            let _ = writeln!(s, "{indent}    ! {}: {}", h.code, h.message);
        }
    }
    s
}

fn counts(r: &Report) -> (BTreeMap<&'static str, usize>, BTreeMap<&'static str, usize>) {
    let mut actions = BTreeMap::new();
    let mut hazards = BTreeMap::new();
    for c in &r.plan.changes {
        let a = match c.action {
            Action::Add => "added",
            Action::Drop => "dropped",
            Action::Alter => "altered",
            Action::Replace => "replaced",
            Action::Rename => "renamed",
        };
        *actions.entry(a).or_insert(0) += 1;
        for h in &c.hazards {
            if h.code != "note" {
                *hazards.entry(h.code).or_insert(0) += 1;
            }
        }
    }
    (actions, hazards)
}

fn summary(r: &Report) -> String {
    let (actions, hazards) = counts(r);
    let a: Vec<String> = actions.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut s = format!("{} changes ({})", r.plan.changes.len(), a.join(", "));
    if !hazards.is_empty() {
        let h: Vec<String> = hazards.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = write!(s, "; hazards: {}", h.join(", "));
    }
    s
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The PR comment: summary, hazards first (they are what a reviewer must decide on), the
/// changes grouped by the object they belong to, lint findings, then the SQL folded away.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Schema diff: `{}` → `{}`\n", r.base, r.target);
    if r.is_empty() {
        let _ = writeln!(s, "No schema changes.");
    } else {
        let _ = writeln!(s, "**{}**\n", summary(r));
        let hazardous: Vec<&Change> = r
            .plan
            .changes
            .iter()
            .filter(|c| c.hazards.iter().any(|h| h.code != "note"))
            .collect();
        if !hazardous.is_empty() {
            let _ = writeln!(s, "#### Hazards\n");
            let _ = writeln!(s, "| object | hazard | what happens |");
            let _ = writeln!(s, "| --- | --- | --- |");
            for c in hazardous {
                for h in c.hazards.iter().filter(|h| h.code != "note") {
                    let _ = writeln!(
                        s,
                        "| {} `{}` | **{}** | {} |",
                        c.kind.noun(),
                        cell(&c.object),
                        h.code,
                        cell(&h.message)
                    );
                }
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "#### Changes\n");
        let mut group: Option<String> = None;
        for c in &r.plan.changes {
            let g = c.parent.clone().unwrap_or_else(|| c.object.clone());
            if c.parent.is_none() {
                group = Some(g.clone());
                let _ = writeln!(
                    s,
                    "- {} **{}** `{}`",
                    verb(c.action),
                    c.kind.noun(),
                    c.object
                );
            } else {
                if group.as_deref() != Some(g.as_str()) {
                    group = Some(g.clone());
                    let _ = writeln!(s, "- **{}** `{g}`", Kind::Table.noun());
                }
                let local = c.object.strip_prefix(&format!("{g}.")).unwrap_or(&c.object);
                let _ = writeln!(s, "  - {} {} `{local}`", verb(c.action), c.kind.noun());
            }
            let indent = if c.parent.is_some() { "    " } else { "  " };
            for d in &c.details {
                let _ = writeln!(s, "{indent}- {}", cell(d));
            }
        }
        let _ = writeln!(s);
    }
    if !r.lint.is_empty() {
        let open: usize = r
            .lint
            .iter()
            .map(|f| f.findings.iter().filter(|x| x.blocks()).count())
            .sum();
        let _ = writeln!(s, "#### Lint of the migrations ({open} to fix)\n");
        for f in &r.lint {
            if f.findings.is_empty() {
                let _ = writeln!(s, "- `{}`: clean", f.file);
                continue;
            }
            for x in &f.findings {
                match &x.acknowledged {
                    Some(why) => {
                        let _ = writeln!(
                            s,
                            "- `{}:{}` `{}` acknowledged{}",
                            f.file,
                            x.line,
                            x.rule,
                            if why.is_empty() {
                                String::new()
                            } else {
                                format!(": {why}")
                            }
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "- `{}:{}` **`{}`**: {}. Fix: {}",
                            f.file,
                            x.line,
                            x.rule,
                            cell(x.message.trim_end_matches('.')),
                            cell(&x.fix)
                        );
                    }
                }
            }
        }
        let _ = writeln!(s);
    }
    if !r.plan.script.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>Migration SQL ({} statements)</summary>\n\n```sql\n{}```\n</details>",
            r.plan.script.len(),
            sql(r)
        );
    }
    s
}

pub fn json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    let (actions, hazards) = counts(r);
    v["summary"] = serde_json::json!({
        "changes": r.plan.changes.len(),
        "actions": actions,
        "hazards": hazards,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
