//! The SQL shapes the refactorings share. Every one is re-runnable: a rehearsal applies each
//! file twice and requires the second run to change nothing.

use super::ident as quote_ident;
use super::{Migration, Table};

/// Rows per backfill batch: small enough that a batch's row locks are brief, large enough
/// that the loop's overhead does not matter. Pages, not rows: a batch is a TID range scan
/// (no index needed), about 64 × 8 KiB of the table.
const PAGES_PER_BATCH: u32 = 64;

/// The comment block every generated file starts with.
pub fn header(id: &str, what: &str, phase: &str, contract_after: &str) -> String {
    let mut s = format!("-- lakelet refactor {what}\n-- transition {id}: {phase}");
    if !contract_after.is_empty() {
        s += &format!("; contract after {contract_after} (`lakelet refactor status`)");
    }
    s += "\n";
    if phase == "contract" {
        // The directive lint reads: a contract migration is refused before its date.
        s += &format!("-- lakelet:contract {id}\n");
    }
    s
}

/// The sync trigger's function and trigger names.
pub fn sync_name(id: &str) -> String {
    format!("lakelet_sync_{id}")
}

/// `SELECT e1, e2 INTO NEW.a, NEW.b FROM (SELECT NEW.*) AS t;` — the expressions see the
/// row under the table's own name, exactly as they were probed.
pub fn assign(t: &Table, exprs: &[String], cols: &[String]) -> String {
    let into: Vec<String> = cols
        .iter()
        .map(|c| format!("NEW.{}", quote_ident(c)))
        .collect();
    format!(
        "SELECT {} INTO {} FROM (SELECT NEW.*) AS {};",
        exprs.join(", "),
        into.join(", "),
        quote_ident(&t.name)
    )
}

fn row(prefix: &str, cols: &[String]) -> String {
    let c: Vec<String> = cols
        .iter()
        .map(|c| format!("{prefix}.{}", quote_ident(c)))
        .collect();
    format!("ROW({})", c.join(", "))
}

/// A BEFORE INSERT OR UPDATE trigger keeping `old` and `new` columns in step for the
/// transition: a write of the old shape (or a backfill touching the row) recomputes the new
/// columns with `forward`; a write of only the new shape recomputes the old ones with
/// `reverse`, when there is one (else the new values are kept as written).
pub fn sync_trigger(
    t: &Table,
    id: &str,
    old: &[String],
    new: &[String],
    forward: &str,
    reverse: Option<&str>,
) -> String {
    let name = sync_name(id);
    // Writers of only the new shape get the old one back with `reverse`; without one,
    // their values are kept as written.
    let back = match reverse {
        Some(r) => format!("{r}\n    "),
        None => "-- no reverse: kept as written\n    ".to_string(),
    };
    let reverse_arms = if old.is_empty() {
        // No two shapes (introduce-not-null's filler): every write runs `forward`.
        String::new()
    } else {
        format!(
            "  IF TG_OP = 'UPDATE' AND {nn} IS DISTINCT FROM {on} AND {no} IS NOT DISTINCT FROM {oo} THEN\n\
             \x20   -- a writer of the new shape only\n\
             \x20   {back}RETURN NEW;\n\
             \x20 END IF;\n\
             \x20 IF TG_OP = 'INSERT' AND {no} IS NULL AND NOT {nn} IS NULL THEN\n\
             \x20   {back}RETURN NEW;\n\
             \x20 END IF;\n",
            nn = row("NEW", new),
            on = row("OLD", new),
            no = row("NEW", old),
            oo = row("OLD", old),
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $sync$\n\
         BEGIN\n\
         {reverse_arms}\
         \x20 {forward}\n\
         \x20 RETURN NEW;\n\
         END $sync$;\n\
         DROP TRIGGER IF EXISTS {f} ON {tbl};\n\
         CREATE TRIGGER {f} BEFORE INSERT OR UPDATE ON {tbl}\n\
         \x20 FOR EACH ROW EXECUTE FUNCTION {f}();\n",
        f = quote_ident(&name),
        tbl = t.qualified,
    )
}

/// Drops the sync trigger and its function (contract).
pub fn drop_sync(t: &Table, id: &str) -> String {
    let f = quote_ident(&sync_name(id));
    format!(
        "DROP TRIGGER IF EXISTS {f} ON {tbl};\nDROP FUNCTION IF EXISTS {f}();\n",
        tbl = t.qualified
    )
}

/// `ALTER TABLE … ADD COLUMN IF NOT EXISTS …` for nullable columns without defaults: a
/// catalog change, no rewrite.
pub fn add_columns(t: &Table, cols: &[(String, String)]) -> String {
    let adds: Vec<String> = cols
        .iter()
        .map(|(c, ty)| format!("ADD COLUMN IF NOT EXISTS {} {ty}", quote_ident(c)))
        .collect();
    format!("ALTER TABLE {} {};\n", t.qualified, adds.join(",\n  "))
}

/// The batched backfill: touches every existing row (`SET col = col`) a range of pages at a
/// time, committing after each batch, so the sync trigger computes the new shape without
/// one long transaction holding every row lock. Re-runnable: a second run recomputes the
/// same values.
pub fn backfill(id: &str, t: &Table, touch: &str, extra: &str) -> Migration {
    let c = quote_ident(touch);
    let text = format!(
        "-- lakelet:no-transaction\n\
         -- Each batch commits: a failure leaves the batches before it applied, and running the\n\
         -- file again finishes the job.\n\
         SET lock_timeout = '5s';\n\
         DO $backfill$\n\
         DECLARE\n\
         \x20 last_page bigint := pg_relation_size('{tl}') / current_setting('block_size')::int;\n\
         \x20 page bigint := 0;\n\
         BEGIN\n\
         \x20 WHILE page <= last_page LOOP\n\
         \x20   UPDATE {tbl} SET {c} = {c}\n\
         \x20    WHERE ctid >= format('(%s,0)', page)::tid AND ctid < format('(%s,0)', page + {n})::tid;\n\
         \x20   COMMIT;\n\
         \x20   page := page + {n};\n\
         \x20 END LOOP;\n\
         END $backfill$;\n\
         {extra}",
        tl = t.qualified.replace('\'', "''"),
        tbl = t.qualified,
        n = PAGES_PER_BATCH,
    );
    Migration {
        description: format!("{id}_backfill"),
        text,
    }
}

/// `SET lock_timeout`: every generated file that takes a lock on an existing table waits at
/// most this long, and fails instead of queueing the application behind it.
pub const LOCK_TIMEOUT: &str = "SET lock_timeout = '5s';\n";
