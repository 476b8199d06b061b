//! Lint for migration scripts: statements that pass on an empty development database but
//! lock, rewrite or break a busy production one (Postgres 12+ semantics).
//!
//! The linter reads the tokens [`split`] produces, so text in comments, strings and dollar
//! quotes is never taken for a statement, except the body of a DO block (and of a routine the
//! file defines and calls), whose SQL statements run in the migration. A table created earlier in the same file is exempt
//! from the locking and rewrite rules: no other session can see it yet, and it is empty.
//! A finding is acknowledged, not removed, by `-- lakelet:allow RULE[,RULE…] [reason]` just
//! before its statement or `-- lakelet:allow-file RULE[,RULE…] [reason]` anywhere in the file.

use super::sql::{file_directives, split, SplitError, Statement};

/// A lint rule: the id that `allow` names and a one-line summary of why it exists.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
}

const fn rule(id: &'static str, summary: &'static str) -> Rule {
    Rule { id, summary }
}

/// Every rule, in id order. Each summary says what goes wrong in production; the `prefer-`
/// ones are advice on column types, costly to change once a table is big.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    rule("add-column-not-null-without-default",
         "ADD COLUMN … NOT NULL without a DEFAULT fails on any table that has rows"),
    rule("add-column-volatile-default",
         "ADD COLUMN computed per row (volatile DEFAULT, serial, identity, stored generated) \
          rewrites the table under ACCESS EXCLUSIVE"),
    rule("add-unique-without-index",
         "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE"),
    rule("alter-column-type",
         "ALTER COLUMN … TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE"),
    rule("concurrently-in-transaction",
         "CREATE / DROP INDEX and REINDEX … CONCURRENTLY fail in a transaction (a DO block, \
          BEGIN … COMMIT, or a file mixing them with other statements, which the runner refuses)"),
    rule("constraint-without-not-valid",
         "ADD CHECK / FOREIGN KEY without NOT VALID checks every row while blocking writes"),
    rule("create-index-without-concurrently",
         "CREATE INDEX without CONCURRENTLY blocks writes for the whole build"),
    rule("delete-without-where",
         "DELETE without WHERE deletes every row of the table, locking them all"),
    rule("drop-cascade",
         "DROP … CASCADE also drops, unlisted, whatever depends on the object (columns, tables, \
          views, keys)"),
    rule("drop-column", "DROP COLUMN destroys data and breaks code still using the column"),
    rule("drop-constraint",
         "DROP CONSTRAINT removes a guarantee code relies on (a primary key: foreign keys and \
          replica identity too)"),
    rule("drop-index-without-concurrently",
         "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table"),
    rule("drop-table", "DROP TABLE destroys data and breaks code still using the table"),
    rule("enum-add-value-in-transaction",
         "ALTER TYPE … ADD VALUE in a transaction: the value is unusable until it commits"),
    rule("enum-rename-value", "ALTER TYPE … RENAME VALUE breaks code still using the old label"),
    rule("lock-table",
         "LOCK TABLE holds a lock that blocks reads or writes until the transaction ends"),
    rule("missing-lock-timeout",
         "a lock wait on an existing table without lock_timeout queues all its queries behind it"),
    rule("prefer-bigint-identity",
         "an int / serial key runs out at 2^31 and widening it rewrites the table: use bigint \
          GENERATED AS IDENTITY"),
    rule("prefer-text",
         "varchar(n) puts the limit in the type, changed only by ALTER TYPE: use text with a CHECK"),
    rule("prefer-text-over-char", "char(n) blank-pads and saves nothing: use text"),
    rule("prefer-timestamptz",
         "timestamp without time zone means a different instant for each TimeZone: use \
          timestamptz"),
    rule("reindex-without-concurrently",
         "REINDEX without CONCURRENTLY blocks writes, and reads using the index"),
    rule("rename-column", "RENAME COLUMN breaks code still using the old name"),
    rule("rename-table", "RENAME TO breaks code still using the old name"),
    rule("set-logged-unlogged",
         "SET LOGGED / UNLOGGED rewrites the table under ACCESS EXCLUSIVE"),
    rule("set-not-null",
         "SET NOT NULL scans the table under ACCESS EXCLUSIVE without a valid IS NOT NULL check"),
    rule("syntax-error",
         "a statement Postgres rejects (a light structural check); cannot be acknowledged"),
    rule("truncate", "TRUNCATE deletes every row"),
    rule("unknown-rule", "an allow / allow-file names no such rule, so it acknowledges nothing"),
    rule("update-without-where",
         "UPDATE without WHERE rewrites every row in one transaction, locking them all and \
          doubling the table"),
    rule("vacuum-full-or-cluster", "VACUUM FULL / CLUSTER rewrite tables under ACCESS EXCLUSIVE"),
    rule("validate-in-same-transaction",
         "VALIDATE in the transaction of its ADD … NOT VALID holds the ADD's lock while it scans"),
];

/// One problem in a script.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub rule: &'static str,
    /// The statement's line.
    pub line: usize,
    /// [`Statement::excerpt`] (for `unknown-rule`, the directive's line).
    pub statement: String,
    /// What is dangerous here, naming the table, column or index.
    pub message: String,
    /// The safe (online) way to do it.
    pub fix: String,
    /// `Some(reason)` when an `allow` names the rule (`""` when it gives no reason).
    pub acknowledged: Option<String>,
}

impl Finding {
    /// Advice (`prefer-*`: a column type that will hurt later) is reported, never blocking:
    /// a linter that fails every `id int` is a linter people switch off.
    pub fn is_advice(&self) -> bool {
        self.rule.starts_with("prefer-")
    }

    /// Whether it fails `migrate lint` and a PR's CI run: not acknowledged, not advice.
    pub fn blocks(&self) -> bool {
        self.acknowledged.is_none() && !self.is_advice()
    }
}

/// Lints a migration script. Fails only when the script cannot be split into statements.
pub fn lint(text: &str) -> Result<Vec<Finding>, SplitError> {
    let file = file_directives(text)?;
    let file_allows = Allow::all(&file, "allow-file");
    let statements = split(text)?;
    // As `run::prepare` decides: a file runs outside a transaction when it says so, or when
    // every statement in it must (CREATE INDEX CONCURRENTLY alone in its migration). An
    // `executeInTransaction=false` in the file's .conf is not seen here.
    let outside = |s: &Statement| s.non_transactional().is_some();
    let no_transaction = file.iter().any(|d| d == "no-transaction")
        || (!statements.is_empty() && statements.iter().all(outside));
    let mut state = State::new(no_transaction);
    let mut out = vec![];
    for s in statements {
        let local = Allow::all(&s.directives, "allow");
        for mut f in state.statement(&s) {
            let mut all = local.iter().chain(&file_allows);
            // A statement that cannot run is not a risk one can accept.
            let ackable = f.rule != "syntax-error";
            f.acknowledged = all
                .find(|a| ackable && a.rules.iter().any(|r| r == f.rule))
                .map(|a| a.reason.clone());
            (f.line, f.statement) = (s.line, s.excerpt());
            out.push(f);
        }
    }
    out.extend(unknown_rules(text, &file));
    out.sort_by_key(|f| f.line);
    Ok(out)
}

/// An `allow` / `allow-file` directive: the rule ids it names and the reason it gives.
struct Allow {
    rules: Vec<String>,
    reason: String,
}

impl Allow {
    fn all(directives: &[String], word: &str) -> Vec<Allow> {
        directives
            .iter()
            .filter_map(|d| Allow::parse(d, word))
            .collect()
    }

    /// `WORD RULE[,RULE…] [reason…]`; `a, b` with a space after the comma works too.
    fn parse(d: &str, word: &str) -> Option<Allow> {
        let mut words = d.split_whitespace();
        if words.next()? != word {
            return None;
        }
        let (mut rules, mut reason, mut more) = (vec![], vec![], true);
        for w in words {
            if more {
                more = w.ends_with(',');
                rules.extend(w.split(',').filter(|r| !r.is_empty()).map(String::from));
            } else {
                reason.push(w);
            }
        }
        let reason = reason.join(" ");
        Some(Allow { rules, reason })
    }
}

/// A misspelt `allow` would silently acknowledge nothing, and the finding it was meant for
/// would look as if nobody had justified it; report the typo instead.
fn unknown_rules(text: &str, directives: &[String]) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut from, mut out) = (0, vec![]);
    for d in directives {
        // Directives come in file order: look for each from where the previous one was.
        let first = d.lines().next().unwrap_or_default();
        let at = lines[from..]
            .iter()
            .position(|l| l.contains(first))
            .map(|p| from + p);
        from = at.map_or(from, |a| a + 1);
        let Some(allow) = Allow::parse(d, "allow").or_else(|| Allow::parse(d, "allow-file")) else {
            continue;
        };
        let known = |r: &String| RULES.iter().any(|k| k.id == r);
        let mut bad: Vec<String> = allow.rules.into_iter().filter(|r| !known(r)).collect();
        if d.split_whitespace().nth(1).is_none() {
            bad.push(String::new());
        }
        for r in bad {
            let fix = match closest(&r) {
                Some(id) => format!("Name an existing rule id: did you mean `{id}`?"),
                None => "Name an existing rule id (see lint::RULES).".to_string(),
            };
            let message = format!("`{d}` names no rule `{r}`, so it acknowledges nothing");
            let mut f = hit("unknown-rule", message, fix);
            f.line = at.map_or(1, |a| a + 1);
            f.statement = at.map_or(d.as_str(), |a| lines[a]).trim().to_string();
            out.push(f);
        }
    }
    out
}

/// The rule id nearest to a misspelt one (edit distance at most 3).
fn closest(typo: &str) -> Option<&'static str> {
    let dist = |b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in typo.chars().enumerate() {
            let mut diag = std::mem::replace(&mut row[0], i + 1);
            for j in 0..b.len() {
                let up = row[j + 1];
                row[j + 1] = (diag + usize::from(ca != b[j])).min(row[j] + 1).min(up + 1);
                diag = up;
            }
        }
        row[b.len()]
    };
    let best = RULES.iter().map(|r| (dist(r.id), r.id)).min()?;
    (best.0 <= 3).then_some(best.1)
}

/// A finding for the current statement; [`lint`] fills in where it is and whether it is
/// acknowledged.
fn hit(rule: &'static str, message: String, fix: impl Into<String>) -> Finding {
    let (line, statement, fix, acknowledged) = (0, String::new(), fix.into(), None);
    Finding {
        rule,
        line,
        statement,
        message,
        fix,
        acknowledged,
    }
}

/// A possibly schema-qualified name: `key` is its last part as Postgres folds it (what we
/// compare: `s.t`, `t` and `"t"` are one table), `shown` the whole name for messages.
mod rules;
mod syntax;
#[cfg(test)]
mod tests;
mod tokens;
mod types;

use rules::State;
