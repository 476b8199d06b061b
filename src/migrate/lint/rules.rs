//! The rules, statement by statement, with what each file has done so far (tables it
//! created, whether lock_timeout is set).
//!
//! The SQL inside a DO block is checked too, as if it were statements of the file (a DO runs
//! during the migration). A `CREATE FUNCTION` / `CREATE PROCEDURE` body is not: defining a
//! routine runs nothing, and a routine that updates every row or drops a table is often
//! exactly what the application wants to call later (a trigger function writing `NEW.x := …`
//! or `UPDATE counters …` runs per row at the caller's time, not the migration's), so
//! checking its body at its definition would flag safe migrations. The body is checked where
//! this file runs the routine itself: `CALL p(…)`, or `SELECT f(…)` / `PERFORM f(…)` of a
//! routine it defined.

use std::collections::{HashMap, HashSet};

use super::super::sql::{Statement, Tok};
use super::syntax::*;
use super::tokens::*;
use super::types::*;
use super::{hit, Finding};

/// What the file has done so far.
#[derive(Default)]
pub(super) struct State {
    /// Tables created earlier in this file: invisible to other sessions and empty.
    created: HashSet<String>,
    /// Indexes built on such tables.
    new_indexes: HashSet<String>,
    /// `(table, constraint)` added NOT VALID here → its column if it is `CHECK (c IS NOT NULL)`.
    not_valid: HashMap<(String, String), Option<String>>,
    /// `(table, column)` with a validated `CHECK (column IS NOT NULL)`.
    not_null: HashSet<(String, String)>,
    /// `(table, constraint)` validated here but added by an earlier migration.
    validated: Vec<(String, String)>,
    /// Types created earlier in this file.
    created_types: HashSet<String>,
    /// Functions and procedures defined in this file → the SQL statements of their bodies.
    routines: HashMap<String, Vec<Statement>>,
    /// The file runs outside a transaction (`-- lakelet:no-transaction`, or every statement
    /// in it must, as the runner decides in `run::prepare`).
    no_transaction: bool,
    /// Inside an explicit `BEGIN` … `COMMIT` of the script.
    block: bool,
    lock_timeout: bool,
    lock_reported: bool,
}

pub(super) const EXPAND: &str = "Expand/contract instead: add the new";
pub(super) const NO_TX: &str =
    "in a migration of its own marked `-- lakelet:no-transaction` (it cannot \
                     run in a transaction)";

impl State {
    pub(super) fn new(no_transaction: bool) -> State {
        State {
            no_transaction,
            ..State::default()
        }
    }

    /// The statement's findings, and the file's missing lock_timeout at its first lock. A
    /// statement Postgres would reject gets only its `syntax-error`.
    pub(super) fn statement(&mut self, s: &Statement) -> Vec<Finding> {
        if let Some(f) = syntax_error(s) {
            return vec![f];
        }
        let mut hits = vec![];
        self.run(s, false, 0, &mut hits);
        let t = &s.tokens;
        if s.starts_with(&["BEGIN"]) || s.starts_with(&["START", "TRANSACTION"]) {
            self.block = true;
        } else if any_at(t, 0, "COMMIT END ROLLBACK ABORT") {
            // `ROLLBACK TO SAVEPOINT` and `COMMIT AND CHAIN` stay in a transaction.
            let chain = seq(&top(t), &["AND", "CHAIN"]) && !seq(&top(t), &["NO", "CHAIN"]);
            self.block = chain || is_at(t, 1, "TO") || is_at(t, 2, "TO");
        }
        hits
    }

    /// Checks a statement, then the SQL statements of the body it runs (a DO block's, or that
    /// of a routine this file defined and calls), which report at the statement's line.
    fn run(&mut self, s: &Statement, in_body: bool, depth: usize, hits: &mut Vec<Finding>) {
        self.concurrently(s, in_body, hits);
        let locked = self.dispatch(s, hits);
        // A DO block or routine runs in a transaction, where SET LOCAL lasts.
        let autocommit = self.no_transaction && !self.block && !in_body;
        if let Some(set) = lock_timeout_change(s, autocommit) {
            self.lock_timeout = set;
        }
        if let Some(what) = locked.filter(|_| !self.lock_timeout && !self.lock_reported) {
            self.lock_reported = true;
            let message = format!(
                "this statement locks {what} and no `SET lock_timeout` comes before it: while it \
                 waits behind a long-running transaction, every later query on {what} queues too"
            );
            let fix = "Put `SET lock_timeout = '5s';` at the top of the file, so the migration \
                       gives up (and can be retried) instead of blocking traffic while it waits.";
            hits.insert(0, hit("missing-lock-timeout", message, fix));
        }
        // A routine calling itself is checked once.
        if depth < 2 {
            for inner in self.body_run_by(s) {
                self.run(&inner, true, depth + 1, hits);
            }
        }
    }

    /// The statements of the body that `s` runs: a DO block's (PL/pgSQL unless it says
    /// otherwise), or those of routines this file defined that it calls.
    fn body_run_by(&self, s: &Statement) -> Vec<Statement> {
        let t = &s.tokens;
        if s.starts_with(&["DO"]) {
            return routine_body(s, "plpgsql");
        }
        if !any_at(t, 0, "SELECT CALL PERFORM") {
            return vec![];
        }
        let called = t.windows(2).filter(|w| w[1] == Tok::Sym('('));
        called
            .filter_map(|w| self.routines.get(&w[0].ident()?))
            .flatten()
            .cloned()
            .collect()
    }

    /// CREATE INDEX / DROP INDEX / REINDEX … CONCURRENTLY cannot run in a transaction block:
    /// inside a DO block or routine, inside the script's own BEGIN … COMMIT, or in a file the
    /// runner runs in a transaction. The runner runs a file outside one when it says
    /// `-- lakelet:no-transaction` or when all its statements must run outside (and refuses a
    /// file that mixes those with others), so that is what is checked.
    fn concurrently(&self, s: &Statement, in_body: bool, hits: &mut Vec<Finding>) {
        let what = match s.non_transactional() {
            Some(_) if !s.has("CONCURRENTLY") => return,
            Some(_) if s.starts_with(&["REINDEX"]) => "REINDEX CONCURRENTLY",
            Some(w) => w,
            None => return,
        };
        let (message, fix) = if in_body {
            (
                format!(
                    "{what} inside a DO block or a function always fails: their statements run \
                     in a transaction, and {what} cannot"
                ),
                format!("Run it as a statement of its own, {NO_TX}."),
            )
        } else if self.block {
            (
                format!(
                    "{what} inside the script's BEGIN … COMMIT fails: it cannot run in a \
                     transaction block"
                ),
                "Take it out of the BEGIN … COMMIT (the file must be `-- lakelet:no-transaction`)."
                    .to_string(),
            )
        } else if !self.no_transaction {
            (
                format!(
                    "{what} cannot run inside a transaction, and this file has statements that \
                     run in one, so the runner refuses the file"
                ),
                "Move it to a migration of its own (a file of such statements only runs outside \
                 a transaction), or mark this file `-- lakelet:no-transaction` (each statement \
                 then commits on its own: a failure leaves the file half applied)."
                    .to_string(),
            )
        } else {
            return;
        };
        hits.push(hit("concurrently-in-transaction", message, fix));
    }

    /// Runs the checks for the statement; returns the existing table it locks in a way that
    /// conflicts with ordinary reads or writes, if it does.
    fn dispatch(&mut self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        let t = &s.tokens;
        let k = |kws: &[&str]| s.starts_with(kws);
        let create_table = (1..4).find(|&i| is_at(t, i, "TABLE")).filter(|&i| {
            k(&["CREATE"]) && (1..i).all(|j| any_at(t, j, "GLOBAL LOCAL TEMP TEMPORARY UNLOGGED"))
        });
        let routine = if k(&["CREATE", "OR", "REPLACE"]) {
            3
        } else {
            1
        };
        let routine = Some(routine + 1)
            .filter(|_| k(&["CREATE"]) && any_at(t, routine, "FUNCTION PROCEDURE"));
        if k(&["ALTER", "TABLE"]) {
            self.alter_table(t, hits)
        } else if k(&["ALTER", "TYPE"]) {
            self.alter_type(t, hits);
            None
        } else if let Some(at) = create_table {
            self.created.insert(name_at(t, at + 1)?.0.key);
            columns(t, at, hits);
            // PARTITION OF takes ACCESS EXCLUSIVE on the parent.
            let parent = (1..t.len()).find(|&i| t[i].is("OF") && t[i - 1].is("PARTITION"));
            parent
                .and_then(|i| name_at(t, i + 1))
                .map(|(n, _)| n.shown)
                .or_else(|| self.referenced(t))
        } else if k(&["CREATE", "TYPE"]) {
            self.created_types.insert(name_at(t, 2)?.0.key);
            None
        } else if let Some(at) = routine {
            let body = routine_body(s, "sql");
            self.routines.insert(name_at(t, at)?.0.key, body);
            None
        } else if k(&["CREATE", "INDEX"]) || k(&["CREATE", "UNIQUE", "INDEX"]) {
            self.create_index(s, hits)
        } else if k(&["DROP", "INDEX"]) {
            let cascade = self.drop_cascade(t, hits);
            self.drop_index(s, hits).or(cascade)
        } else if k(&["DROP", "TABLE"]) || k(&["TRUNCATE"]) {
            self.drop_or_truncate(s, hits)
        } else if k(&["DROP"]) {
            self.drop_cascade(t, hits)
        } else if k(&["UPDATE"]) || k(&["DELETE", "FROM"]) {
            self.every_row(t, hits);
            None
        } else if k(&["LOCK"]) {
            self.lock_table(t, hits)
        } else if k(&["VACUUM"]) || k(&["CLUSTER"]) {
            self.rewrite(t, hits)
        } else if k(&["REINDEX"]) {
            self.reindex(s, hits)
        } else {
            None
        }
    }

    /// UPDATE or DELETE with no WHERE of its own (a subquery's does not count): every row of
    /// an existing table, in one transaction. Every row is locked against its writers until
    /// the migration commits, an UPDATE leaves a dead copy of each (the table doubles), and a
    /// DELETE of a whole table is rarely what a schema change meant.
    fn every_row(&self, t: &[Tok], hits: &mut Vec<Finding>) {
        let delete = t[0].is("DELETE");
        let Some((table, _)) = name_at(t, if delete { 2 } else { 1 }) else {
            return;
        };
        if self.created.contains(&table.key) || top(t).iter().any(|x| x.is("WHERE")) {
            return;
        }
        let tb = &table.shown;
        hits.push(if delete {
            let message = format!(
                "DELETE FROM {tb} without WHERE deletes every row, in one transaction that locks \
                 them all"
            );
            let fix = format!(
                "Say which rows (`WHERE …`). If the table really is to be emptied, move readers \
                 and writers off it first; acknowledge with `-- lakelet:allow \
                 delete-without-where reason` once {tb}'s rows are known to be disposable."
            );
            hit("delete-without-where", message, fix)
        } else {
            let message = format!(
                "UPDATE {tb} without WHERE rewrites every row in one transaction: each row stays \
                 locked against its writers until the migration commits, and the table grows by \
                 a dead copy of every row"
            );
            let fix = format!(
                "Backfill in batches (`UPDATE {tb} … WHERE id > $last AND id <= $last + 10000`, \
                 committed one by one, in a `-- lakelet:no-transaction` migration), restricted to \
                 the rows still to do (`WHERE new_col IS NULL`), so it can be re-run; or \
                 acknowledge with `-- lakelet:allow update-without-where reason` for a small table."
            );
            hit("update-without-where", message, fix)
        });
    }

    /// An existing table a FOREIGN KEY here references: adding the key takes SHARE ROW
    /// EXCLUSIVE on it, which waits for and then blocks its writers.
    fn referenced(&self, t: &[Tok]) -> Option<String> {
        (0..t.len())
            .filter(|&i| t[i].is("REFERENCES"))
            .filter_map(|i| name_at(t, i + 1))
            .find(|(n, _)| !self.created.contains(&n.key))
            .map(|(n, _)| n.shown)
    }

    /// ALTER TABLE: every comma-separated action is checked; a table created in this file
    /// (empty, invisible to others) gets no findings.
    fn alter_table(&mut self, t: &[Tok], hits: &mut Vec<Finding>) -> Option<String> {
        let (table, at) = name_at(t, 2)?;
        let (mut found, mut locks) = (vec![], false);
        for a in split_top(&t[at..]) {
            // VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE: reads and writes go on.
            locks |= !is_at(a, 0, "VALIDATE");
            self.action(&table, a, &mut found);
        }
        if self.created.contains(&table.key) {
            // Column type advice holds for a new table too.
            hits.extend(found.into_iter().filter(|f| f.rule.starts_with("prefer-")));
            return self.referenced(t);
        }
        hits.extend(found);
        locks.then_some(table.shown).or_else(|| self.referenced(t))
    }

    /// One action of an ALTER TABLE. Dropping or renaming breaks the application version
    /// still running during the rollout (it uses the old schema); the rest lock or rewrite.
    fn action(&mut self, t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
        let (tb, at0) = (&t.shown, |k| is_at(a, 0, k));
        if at0("ADD") && any_at(a, 1, "CONSTRAINT CHECK FOREIGN UNIQUE PRIMARY EXCLUDE") {
            self.add_constraint(t, a, hits);
        } else if at0("ADD") {
            add_column(t, a, hits);
        } else if at0("DROP") && !is_at(a, 1, "CONSTRAINT") {
            let Some((c, _)) = name_at(a, 1) else { return };
            let cascade = when(
                a.iter().any(|x| x.is("CASCADE")),
                " (with CASCADE, all that uses it)",
            );
            let message = format!(
                "dropping column {tb}.{} destroys its data{cascade} and breaks every reader or \
                 writer still using it",
                c.key
            );
            let fix = format!(
                "{EXPAND} schema first, move every reader and writer off the column, and drop it \
                 in a later migration, once no deployed version uses it."
            );
            hits.push(hit("drop-column", message, fix));
        } else if at0("ALTER") && !is_at(a, 1, "CONSTRAINT") {
            self.alter_column(t, a, hits);
        } else if starts(a, &["RENAME", "TO"]) {
            let Some(to) = a.get(2).and_then(Tok::ident) else {
                return;
            };
            if self.created.contains(&t.key) {
                self.created.insert(to.clone());
            }
            let message =
                format!("renaming table {tb} to {to} breaks every query still using the old name");
            let fix = format!(
                "{EXPAND} table, keep both in sync (or leave a view named {} over it), backfill, \
                 move readers and writers, and drop the old name after the transition.",
                t.key
            );
            hits.push(hit("rename-table", message, fix));
        } else if at0("RENAME") && !is_at(a, 1, "CONSTRAINT") {
            let Some((c, at)) = name_at(a, 1) else { return };
            let to = a.get(at + 1).and_then(Tok::ident).unwrap_or_default();
            let message = format!(
                "renaming column {tb}.{} to {to} breaks every query still using the old name",
                c.key
            );
            let fix = format!(
                "{EXPAND} column, keep both in sync with a trigger, backfill it, move readers and \
                 writers to it, and drop {} after the transition.",
                c.key
            );
            hits.push(hit("rename-column", message, fix));
        } else if starts(a, &["DROP", "CONSTRAINT"]) {
            drop_constraint(t, a, hits);
        } else if starts(a, &["SET", "LOGGED"]) || starts(a, &["SET", "UNLOGGED"]) {
            let logged = a[1].is("LOGGED");
            let what = if logged {
                format!("SET LOGGED writes all of {tb} anew (and into the WAL)")
            } else {
                format!(
                    "SET UNLOGGED writes all of {tb} anew, after which a crash empties it and \
                     replicas do not have it"
                )
            };
            let message = format!("{what}, under an ACCESS EXCLUSIVE lock: no reads or writes");
            let fix = "Create a new table with the persistence wanted, copy the rows in batches \
                       while a trigger keeps it in sync, then swap the names; or run it in a \
                       maintenance window and acknowledge with `-- lakelet:allow \
                       set-logged-unlogged reason`.";
            hits.push(hit("set-logged-unlogged", message, fix));
        } else if starts(a, &["VALIDATE", "CONSTRAINT"]) {
            self.validate(t, a, hits);
        }
    }

    /// ALTER TYPE … ADD VALUE in a transaction (the value is unusable until it commits) and
    /// ALTER TYPE … RENAME VALUE (code still uses the old label).
    fn alter_type(&self, t: &[Tok], hits: &mut Vec<Finding>) {
        let Some((ty, at)) = name_at(t, 2) else {
            return;
        };
        let rest = &t[at..];
        let label = |i: usize| match rest.get(i) {
            Some(Tok::Str(v)) => format!("'{v}'"),
            _ => "the label".into(),
        };
        let tn = &ty.shown;
        if starts(rest, &["ADD", "VALUE"]) && (!self.no_transaction || self.block) {
            let v = label(2 + 3 * usize::from(is_at(rest, 2, "IF")));
            let message = format!(
                "enum value {v} is added to {tn} inside the migration's transaction: it cannot be \
                 used (inserted, compared, cast to) until that transaction commits, so a later \
                 statement of this file that uses it fails"
            );
            let fix = format!(
                "Add the value in a migration of its own marked `-- lakelet:no-transaction` and \
                 use it from the next one on; or, if nothing in this file uses {v}, acknowledge \
                 with `-- lakelet:allow enum-add-value-in-transaction reason`."
            );
            hits.push(hit("enum-add-value-in-transaction", message, fix));
        } else if starts(rest, &["RENAME", "VALUE"]) && !self.created_types.contains(&ty.key) {
            let (from, to) = (label(2), label(4));
            let message = format!(
                "renaming value {from} of enum {tn} to {to} breaks every query, and every \
                 application constant, still using {from}"
            );
            let fix = format!(
                "Add {to} as a new value (ALTER TYPE {tn} ADD VALUE), move the rows (in batches) \
                 and the code to it, and leave {from} unused: enum values cannot be dropped."
            );
            hits.push(hit("enum-rename-value", message, fix));
        }
    }

    /// `DROP … CASCADE` of anything but a table (whose `drop-table` says so): it silently
    /// drops whatever depends on the object too.
    fn drop_cascade(&self, t: &[Tok], hits: &mut Vec<Finding>) -> Option<String> {
        if !top(t).iter().any(|x| x.is("CASCADE")) {
            return None;
        }
        let end = t.iter().position(|x| x.is("CASCADE"))?;
        let mut i = 1;
        while any_at(
            t,
            i,
            "MATERIALIZED FOREIGN TEXT SEARCH EVENT ACCESS PROCEDURAL DATA OWNED",
        ) {
            i += 1;
        }
        i += 1;
        i += usize::from(any_at(t, i, "CONCURRENTLY WRAPPER CLASS FAMILY"));
        let kind: Vec<String> = t[1..i.min(end)].iter().map(shown).collect();
        let kind = kind.join(" ").to_uppercase();
        let mut all = names(t.get(i..end).unwrap_or_default());
        let new = |n: &Name| {
            let k = &n.key;
            self.created.contains(k)
                || self.created_types.contains(k)
                || self.routines.contains_key(k)
        };
        if !all.is_empty() && all.iter().all(new) {
            return None;
        }
        all.retain(|n| !new(n));
        let list = join(all).unwrap_or_default();
        let what = match kind.rsplit(' ').next().unwrap_or_default() {
            "SCHEMA" => "every object in the schema, tables with their data included",
            "TYPE" | "DOMAIN" => "every column of that type, with its data, and what uses it",
            "FUNCTION" | "PROCEDURE" | "ROUTINE" | "AGGREGATE" => {
                "the triggers, defaults, views and constraints that call it"
            }
            "EXTENSION" => "every column, index and function using what the extension provides",
            _ => "the views, constraints and other objects built on it",
        };
        let message = format!(
            "DROP {kind} {list} CASCADE also drops, without naming them, whatever depends on it: \
             {what}"
        );
        let fix = format!(
            "Drop the dependent objects explicitly first, each one reviewed, then DROP {kind} \
             {list} without CASCADE, so Postgres refuses if something still depends on it."
        );
        hits.push(hit("drop-cascade", message, fix));
        Some(format!("{list} and what depends on it"))
    }

    /// LOCK TABLE in a mode that ordinary reads or writes wait for, held until the
    /// transaction ends.
    fn lock_table(&self, t: &[Tok], hits: &mut Vec<Finding>) -> Option<String> {
        let from = 1 + usize::from(is_at(t, 1, "TABLE"));
        let end = (from..t.len()).find(|&i| any_at(t, i, "IN NOWAIT"));
        let end = end.unwrap_or(t.len());
        let mode = if is_at(t, end, "IN") {
            let to = (end..t.len())
                .find(|&i| is_at(t, i, "MODE"))
                .unwrap_or(t.len());
            let words: Vec<String> = t[end + 1..to].iter().map(shown).collect();
            words.join(" ").to_uppercase()
        } else {
            "ACCESS EXCLUSIVE".into()
        };
        let blocks = match mode.as_str() {
            "ACCESS EXCLUSIVE" => "every query on it, reads included,",
            "EXCLUSIVE" => "every write to it (and SELECT … FOR UPDATE / FOR SHARE)",
            "SHARE" | "SHARE ROW EXCLUSIVE" => "every INSERT, UPDATE and DELETE on it",
            // ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE, SHARE UPDATE EXCLUSIVE: no ordinary
            // read or write waits for them.
            _ => return None,
        };
        let mut old = names(&t[from..end]);
        old.retain(|n| !self.created.contains(&n.key));
        let list = join(old)?;
        let message = format!(
            "LOCK TABLE {list} IN {mode} MODE blocks {blocks} until the migration's transaction \
             ends"
        );
        let fix = "Leave the locking to the statements that need it: each takes the weakest \
                   lock it can, for as short as it can. If the migration must hold this lock, \
                   keep what follows it short and acknowledge with `-- lakelet:allow lock-table \
                   reason`.";
        hits.push(hit("lock-table", message, fix));
        // NOWAIT fails at once instead of waiting.
        (!t.iter().any(|x| x.is("NOWAIT"))).then_some(list)
    }

    /// ADD [CONSTRAINT n] CHECK / FOREIGN KEY / UNIQUE / PRIMARY KEY: each checks or indexes
    /// every existing row while holding its lock, unless split into an online step first.
    fn add_constraint(&mut self, t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
        let named = is_at(a, 1, "CONSTRAINT");
        let k = if named { 3 } else { 1 };
        let name = a.get(2).filter(|_| named).and_then(Tok::ident);
        let (flat, tb) = (top(a), &t.shown);
        if any_at(a, k, "CHECK FOREIGN") {
            let col = not_null_check(a.get(k + 1..).unwrap_or_default());
            if seq(&flat, &["NOT", "VALID"]) {
                let auto = col.as_ref().map(|c| format!("{}_{c}_check", t.key));
                if let Some(n) = name.or(auto) {
                    self.not_valid.insert((t.key.clone(), n), col);
                }
                return;
            }
            self.not_null.extend(col.map(|c| (t.key.clone(), c)));
            let n = name.unwrap_or_else(|| "<name>".into());
            let (kind, lock) = if is_at(a, k, "CHECK") {
                ("CHECK", "an ACCESS EXCLUSIVE lock on it")
            } else {
                (
                    "FOREIGN KEY",
                    "SHARE ROW EXCLUSIVE on it and the referenced table",
                )
            };
            let message = format!(
                "adding {kind} constraint {n} to {tb} checks every row while holding {lock}"
            );
            let fix = format!(
                "Add it with NOT VALID (only new rows are checked), then `ALTER TABLE {tb} \
                 VALIDATE CONSTRAINT {n}` in a later migration: its lock blocks no reads or writes."
            );
            hits.push(hit("constraint-without-not-valid", message, fix));
        } else if any_at(a, k, "UNIQUE PRIMARY") && !uses_index(&flat) {
            let kind = when(is_at(a, k, "PRIMARY"), "PRIMARY KEY");
            let kind = if kind.is_empty() { "UNIQUE" } else { kind };
            let message = format!(
                "adding a {kind} constraint to {tb} builds its index under an ACCESS EXCLUSIVE \
                 lock: no reads or writes until it is built"
            );
            let fix = format!(
                "`CREATE UNIQUE INDEX CONCURRENTLY i ON {tb} (…)` {NO_TX}, then `ALTER TABLE \
                 {tb} ADD CONSTRAINT n {kind} USING INDEX i` (primary key columns: NOT NULL first)."
            );
            hits.push(hit("add-unique-without-index", message, fix));
        }
    }

    /// ALTER [COLUMN] c TYPE … / SET NOT NULL.
    fn alter_column(&mut self, t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
        let Some((c, at)) = name_at(a, 1) else { return };
        let (rest, tb, c) = (&a[at..], &t.shown, c.key);
        if starts(rest, &["TYPE"]) || starts(rest, &["SET", "DATA", "TYPE"]) {
            let message = format!(
                "changing the type of {tb}.{c} rewrites {tb} and its indexes under an ACCESS \
                 EXCLUSIVE lock (only a few binary-coercible changes, like varchar to text, do not)"
            );
            let fix = format!(
                "{EXPAND} column with the new type, keep it in sync with a trigger, backfill it \
                 in batches, move readers to it, and drop {c} after the transition."
            );
            hits.push(hit("alter-column-type", message, fix));
        } else if starts(rest, &["SET", "NOT", "NULL"]) {
            // A check validated here by a name such as `t_c_not_null` is taken to be for c.
            let named = |(table, n): &(String, String)| {
                *table == t.key && format!("_{n}_").contains(&format!("_{c}_"))
            };
            if self.not_null.contains(&(t.key.clone(), c.clone()))
                || self.validated.iter().any(named)
            {
                return;
            }
            let message = format!(
                "SET NOT NULL on {tb}.{c} scans all of {tb} under an ACCESS EXCLUSIVE lock"
            );
            let fix = format!(
                "Add `CONSTRAINT {c}_not_null CHECK ({c} IS NOT NULL) NOT VALID`, VALIDATE it \
                 in a later migration, then SET NOT NULL: PG 12+ uses the valid check, no scan."
            );
            hits.push(hit("set-not-null", message, fix));
        }
    }

    /// VALIDATE CONSTRAINT n scans without blocking writers, unless the ADD that created the
    /// constraint still holds its lock in the same transaction.
    fn validate(&mut self, t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
        let Some(n) = a.get(2).and_then(Tok::ident) else {
            return;
        };
        let Some(col) = self.not_valid.remove(&(t.key.clone(), n.clone())) else {
            self.validated.push((t.key.clone(), n));
            return;
        };
        self.not_null.extend(col.map(|c| (t.key.clone(), c)));
        if !self.no_transaction || self.block {
            let message = format!(
                "constraint {n} is added NOT VALID and validated in one transaction: the ADD's \
                 lock on {} is held while VALIDATE scans it, so NOT VALID gains nothing",
                t.shown
            );
            let fix = "Move the VALIDATE CONSTRAINT to a later migration (or mark this file \
                       `-- lakelet:no-transaction`).";
            hits.push(hit("validate-in-same-transaction", message, fix));
        }
    }

    /// CREATE INDEX without CONCURRENTLY holds SHARE on the table: writes wait for the build.
    fn create_index(&mut self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        let t = &s.tokens;
        let on = t.iter().position(|x| x.is("ON"))?;
        let (table, _) = name_at(t, on + 1)?;
        let index = Some(on - 1).filter(|&p| !any_at(t, p, "INDEX CONCURRENTLY EXISTS"));
        let index = index.and_then(|p| t[p].ident());
        if self.created.contains(&table.key) {
            self.new_indexes.extend(index);
            return None;
        } else if s.has("CONCURRENTLY") {
            return None;
        }
        let index = index.unwrap_or_else(|| "an index".into());
        let message = format!(
            "building {index} on {0} without CONCURRENTLY holds a SHARE lock on {0}: every \
             INSERT, UPDATE and DELETE waits until the build finishes",
            table.shown
        );
        let fix = format!(
            "Use CREATE INDEX CONCURRENTLY {NO_TX}; if it fails, drop the INVALID index it \
             leaves and retry."
        );
        hits.push(hit("create-index-without-concurrently", message, fix));
        Some(table.shown)
    }

    /// DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the index's table.
    fn drop_index(&mut self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        if s.has("CONCURRENTLY") {
            return None;
        }
        let mut old = names(&s.tokens[2..]);
        old.retain(|n| !self.new_indexes.contains(&n.key));
        let list = join(old)?;
        let message = format!(
            "DROP INDEX {list} takes an ACCESS EXCLUSIVE lock on its table: queries on it wait \
             until the drop completes"
        );
        let fix = format!("Use DROP INDEX CONCURRENTLY {NO_TX}.");
        hits.push(hit("drop-index-without-concurrently", message, fix));
        Some(format!("the table of index {list}"))
    }

    /// DROP TABLE and TRUNCATE: the data is gone, and code still using it breaks.
    fn drop_or_truncate(&mut self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        let t = &s.tokens;
        let drop = t[0].is("DROP");
        let all = names(&t[1 + usize::from(is_at(t, 1, "TABLE"))..]);
        let (new, old): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|n| self.created.contains(&n.key));
        if drop {
            self.created.retain(|c| !new.iter().any(|n| n.key == *c));
        }
        let list = join(old)?;
        let cascade = s.has("CASCADE");
        hits.push(if drop {
            let cascade = when(
                cascade,
                " (CASCADE also drops the views and keys that use it)",
            );
            let message = format!(
                "DROP TABLE {list} destroys the data{cascade}; anything still reading or writing \
                 it breaks"
            );
            let fix = format!(
                "{EXPAND} table, keep it in sync and backfilled, move every reader and writer to \
                 it, and drop {list} in a later migration, once no deployed version uses it."
            );
            hit("drop-table", message, fix)
        } else {
            let cascade = when(
                cascade,
                " (and, with CASCADE, of every table referencing it)",
            );
            let message =
                format!("TRUNCATE {list} deletes every row{cascade} under ACCESS EXCLUSIVE");
            let fix = "Delete the rows in batches (DELETE by key range), which takes only row \
                       locks, or acknowledge it with `-- lakelet:allow truncate <reason>`.";
            hit("truncate", message, fix)
        });
        Some(list)
    }

    /// VACUUM FULL and CLUSTER write a new copy of the table under ACCESS EXCLUSIVE.
    fn rewrite(&self, t: &[Tok], hits: &mut Vec<Finding>) -> Option<String> {
        let vacuum = t[0].is("VACUUM");
        let off = |x: &Tok| x.is("false") || x.is("off") || *x == Tok::Num("0".into());
        let full = t.iter().position(|x| x.is("FULL"));
        let full = matches!(full, Some(p) if !t.get(p + 1).is_some_and(off));
        if vacuum && !full {
            return None;
        }
        let mut i = after_options(t, 1);
        while any_at(t, i, "FULL FREEZE VERBOSE ANALYZE ANALYSE") {
            i += 1;
        }
        let tables = names(&t[i..]);
        if !tables.is_empty() && tables.iter().all(|n| self.created.contains(&n.key)) {
            return None;
        }
        let list = join(tables).unwrap_or_else(|| "every table it applies to".into());
        let verb = if vacuum { "VACUUM FULL" } else { "CLUSTER" };
        let message = format!("{verb} rewrites {list} under ACCESS EXCLUSIVE: no reads or writes");
        let fix = "Rebuild online with pg_repack or pg_squeeze, or run plain VACUUM, which makes \
                   the space reusable without locking out queries.";
        hits.push(hit("vacuum-full-or-cluster", message, fix));
        Some(list)
    }

    /// REINDEX without CONCURRENTLY blocks writes to the table and reads that use the index.
    fn reindex(&self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        let t = &s.tokens;
        let i = after_options(t, 1);
        let kind = t.get(i)?.ident()?.to_uppercase();
        let (name, _) = name_at(t, i + 1)?;
        let new = kind == "TABLE" && self.created.contains(&name.key);
        if new || s.has("CONCURRENTLY") || kind == "SYSTEM" {
            return None;
        }
        let message = format!(
            "REINDEX {kind} {} without CONCURRENTLY blocks writes to its tables, and reads that \
             use the index, until it finishes",
            name.shown
        );
        let fix = format!("Use REINDEX {kind} CONCURRENTLY (PG 12+) {NO_TX}.");
        hits.push(hit("reindex-without-concurrently", message, fix));
        Some(name.shown)
    }
}

/// ADD [COLUMN] c …: a catalog-only change on PG 11+, unless existing rows need a value
/// computed per row, a value they cannot get, or a constraint checked against them.
pub(super) fn add_column(t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
    let Some((c, at)) = name_at(a, 1) else { return };
    let (def, tb, c) = (&a[at..], &t.shown, c.key);
    let flat = top(def);
    let has = |k: &str| flat.iter().any(|x| x.is(k));
    let filled = has("DEFAULT") || has("GENERATED");
    let pk = seq(&flat, &["PRIMARY", "KEY"]);
    if !filled && (seq(&flat, &["NOT", "NULL"]) || pk) {
        let message = format!(
            "new column {tb}.{c} is NOT NULL without a DEFAULT: existing rows would hold NULL, so \
             the statement fails as soon as {tb} has rows"
        );
        let fix = "Give it a constant DEFAULT (PG 11+ adds it without a rewrite), or add it \
                   nullable, backfill in batches, and enforce NOT NULL later (see set-not-null).";
        hits.push(hit("add-column-not-null-without-default", message, fix));
    }
    if seq(&flat, &["GENERATED", "ALWAYS", "AS"]) && seq(&flat, &["STORED"]) {
        let message = format!(
            "new column {tb}.{c} is a stored generated column: it is computed for every row \
             already in {tb}, so {tb} is rewritten under an ACCESS EXCLUSIVE lock"
        );
        let fix = format!(
            "Add {c} as a plain nullable column, keep it filled for new and updated rows with a \
             BEFORE trigger, and backfill existing rows in batches (PG 18+: a VIRTUAL generated \
             column is computed on read, without a rewrite)."
        );
        hits.push(hit("add-column-volatile-default", message, fix));
    } else if let Some(why) = per_row_value(def, &flat) {
        let message =
            format!("adding {tb}.{c}: {why}, so {tb} is rewritten under an ACCESS EXCLUSIVE lock");
        let fix = format!(
            "Add the column without it, then `ALTER COLUMN {c} SET DEFAULT …` (new rows only) and \
             backfill existing rows in batches."
        );
        hits.push(hit("add-column-volatile-default", message, fix));
    }
    if has("REFERENCES") || has("CHECK") {
        let message = format!("REFERENCES / CHECK on new column {tb}.{c} scans {tb} under lock");
        let fix = "Add the column without the constraint, then ADD CONSTRAINT … NOT VALID and \
                   VALIDATE it in a later migration.";
        hits.push(hit("constraint-without-not-valid", message, fix));
    }
    if has("UNIQUE") || (pk && filled) {
        let message =
            format!("UNIQUE / PRIMARY KEY on new column {tb}.{c} builds an index under lock");
        let fix = format!(
            "Add the column plain, `CREATE UNIQUE INDEX CONCURRENTLY` on it {NO_TX}, then ADD \
             CONSTRAINT … USING INDEX."
        );
        hits.push(hit("add-unique-without-index", message, fix));
    }
    hits.extend(type_advice(tb, &c, def, false));
}

/// Why each existing row of a new column needs its own computed value, if it does.
pub(super) fn per_row_value(def: &[Tok], flat: &[&Tok]) -> Option<String> {
    const VOLATILE: &str = "random random_normal gen_random_uuid uuid_generate_v1 \
        uuid_generate_v1mc uuid_generate_v4 uuidv4 uuidv7 clock_timestamp timeofday nextval";
    let ty = def.first().and_then(Tok::ident).unwrap_or_default();
    if [
        "serial",
        "serial4",
        "serial8",
        "bigserial",
        "serial2",
        "smallserial",
    ]
    .contains(&&*ty)
    {
        return Some(format!(
            "type {ty} means DEFAULT nextval(…), a new value for every existing row"
        ));
    }
    if seq(flat, &["GENERATED"]) && seq(flat, &["IDENTITY"]) {
        return Some("an identity column draws a sequence value for every existing row".into());
    }
    let d = def.iter().position(|x| x.is("DEFAULT"))?;
    let call = def[d + 1..]
        .windows(2)
        .find(|w| w[1] == Tok::Sym('(') && any_at(w, 0, VOLATILE))?;
    let f = call[0].ident()?;
    Some(format!(
        "its DEFAULT calls the volatile function {f}() once per existing row"
    ))
}

/// The column of a `(c IS NOT NULL)` check expression.
pub(super) fn not_null_check(t: &[Tok]) -> Option<String> {
    let [Tok::Sym('('), c, is, not, null, Tok::Sym(')'), ..] = t else {
        return None;
    };
    if is.is("IS") && not.is("NOT") && null.is("NULL") {
        c.ident()
    } else {
        None
    }
}

/// `USING INDEX i` attaches an existing index; `USING INDEX TABLESPACE` still builds one.
pub(super) fn uses_index(flat: &[&Tok]) -> bool {
    seq(flat, &["USING", "INDEX"]) && !seq(flat, &["INDEX", "TABLESPACE"])
}

/// Whether the statement sets (`Some(true)`) or clears (`Some(false)`) lock_timeout.
pub(super) fn lock_timeout_change(s: &Statement, no_transaction: bool) -> Option<bool> {
    let t = &s.tokens;
    if s.starts_with(&["RESET"]) {
        return any_at(t, 1, "lock_timeout ALL").then_some(false);
    }
    if s.starts_with(&["SET"]) {
        let local = is_at(t, 1, "LOCAL");
        let i = 1 + usize::from(any_at(t, 1, "LOCAL SESSION"));
        // SET LOCAL outside a transaction block lasts only for its own statement.
        let counts = is_at(t, i, "lock_timeout") && !(local && no_transaction);
        return counts.then(|| t.get(i + 2).is_some_and(nonzero));
    }
    t.windows(5).find_map(|w| match w {
        [f, Tok::Sym('('), Tok::Str(n), Tok::Sym(','), v]
            if f.is("set_config") && n.eq_ignore_ascii_case("lock_timeout") =>
        {
            Some(nonzero(v))
        }
        _ => None,
    })
}

/// Whether a lock_timeout value is a positive duration (`0` turns the timeout off).
pub(super) fn nonzero(t: &Tok) -> bool {
    let (Tok::Num(v) | Tok::Str(v)) = t else {
        return false;
    };
    let number = v.trim().trim_end_matches(char::is_alphabetic).trim();
    number.parse::<f64>().is_ok_and(|x| x > 0.0)
}

/// ALTER TABLE … DROP CONSTRAINT: the guarantee is gone for the code that relies on it.
fn drop_constraint(t: &Name, a: &[Tok], hits: &mut Vec<Finding>) {
    let Some((n, _)) = name_at(a, 2) else { return };
    let (tb, n) = (&t.shown, n.key);
    let cascade = when(
        a.iter().any(|x| x.is("CASCADE")),
        " (CASCADE also drops the foreign keys that reference it)",
    );
    let pk = when(
        n.ends_with("_pkey"),
        "; as the primary key it is also what foreign keys reference and what logical \
         replication identifies rows by (UPDATE and DELETE on a published table fail without it)",
    );
    let message = format!(
        "dropping constraint {n} from {tb} removes the guarantee it gives{cascade}: code relying \
         on it (uniqueness, ON CONFLICT, a foreign key's target, valid values) breaks, and rows \
         violating it can come in{pk}"
    );
    let fix = format!(
        "Make sure no deployed code or constraint relies on {n}; to replace it, add the new \
         constraint first (NOT VALID then VALIDATE, or USING INDEX) and drop {n} in a later \
         migration. Acknowledge with `-- lakelet:allow drop-constraint reason`."
    );
    hits.push(hit("drop-constraint", message, fix));
}
