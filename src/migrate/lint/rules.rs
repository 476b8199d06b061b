//! The rules, statement by statement, with what each file has done so far (tables it
//! created, whether lock_timeout is set).

use std::collections::{HashMap, HashSet};

use super::super::sql::{Statement, Tok};
use super::tokens::*;
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
    no_transaction: bool,
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

    /// The statement's findings, and the file's missing lock_timeout at its first lock.
    pub(super) fn statement(&mut self, s: &Statement) -> Vec<Finding> {
        let mut hits = vec![];
        let locked = self.dispatch(s, &mut hits);
        if let Some(set) = lock_timeout_change(s, self.no_transaction) {
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
        hits
    }

    /// Runs the checks for the statement; returns the existing table it locks in a way that
    /// conflicts with ordinary reads or writes, if it does.
    fn dispatch(&mut self, s: &Statement, hits: &mut Vec<Finding>) -> Option<String> {
        let t = &s.tokens;
        let k = |kws: &[&str]| s.starts_with(kws);
        let create_table = (1..4).find(|&i| is_at(t, i, "TABLE")).filter(|&i| {
            k(&["CREATE"]) && (1..i).all(|j| any_at(t, j, "GLOBAL LOCAL TEMP TEMPORARY UNLOGGED"))
        });
        if k(&["ALTER", "TABLE"]) {
            self.alter_table(t, hits)
        } else if let Some(at) = create_table {
            self.created.insert(name_at(t, at + 1)?.0.key);
            // PARTITION OF takes ACCESS EXCLUSIVE on the parent.
            let parent = (1..t.len()).find(|&i| t[i].is("OF") && t[i - 1].is("PARTITION"));
            parent
                .and_then(|i| name_at(t, i + 1))
                .map(|(n, _)| n.shown)
                .or_else(|| self.referenced(t))
        } else if k(&["CREATE", "INDEX"]) || k(&["CREATE", "UNIQUE", "INDEX"]) {
            self.create_index(s, hits)
        } else if k(&["DROP", "INDEX"]) {
            self.drop_index(s, hits)
        } else if k(&["DROP", "TABLE"]) || k(&["TRUNCATE"]) {
            self.drop_or_truncate(s, hits)
        } else if k(&["UPDATE"]) || k(&["DELETE", "FROM"]) {
            self.every_row(t, hits);
            None
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
        } else if starts(a, &["VALIDATE", "CONSTRAINT"]) {
            self.validate(t, a, hits);
        }
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
        if !self.no_transaction {
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
    if let Some(why) = per_row_value(def, &flat) {
        let message =
            format!("adding {tb}.{c}: {why}, so {tb} is rewritten under an ACCESS EXCLUSIVE lock");
        let fix = format!(
            "Add the column without it, then `ALTER COLUMN {c} SET DEFAULT …` (new rows only) and \
             backfill existing rows in batches (a generated column: a plain one set by a trigger)."
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
    if seq(flat, &["GENERATED", "ALWAYS", "AS"]) && seq(flat, &["STORED"]) {
        return Some("a stored generated column is computed for every existing row".into());
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
