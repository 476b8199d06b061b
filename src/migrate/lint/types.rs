//! Advice on column types: each works, but costs a table rewrite (or an outage) to change
//! once the table is big. Reported, never blocking (see `Finding::is_advice`).

use super::super::sql::Tok;
use super::tokens::*;
use super::{hit, Finding};

/// CREATE TABLE t (…): advice on each column's type (see [`type_advice`]); a one-column
/// table-level PRIMARY KEY counts for its column.
pub(super) fn columns(t: &[Tok], at: usize, hits: &mut Vec<Finding>) {
    let Some((table, open)) = name_at(t, at + 1) else {
        return;
    };
    // PARTITION OF and OF type take their types elsewhere; `(a, b) AS …` names only.
    if t.get(open) != Some(&Tok::Sym('(')) {
        return;
    }
    let Some(close) = closing(t, open).filter(|&c| !is_at(t, c + 1, "AS")) else {
        return;
    };
    let constraint =
        |e: &[Tok]| any_at(e, 0, "CONSTRAINT CHECK UNIQUE PRIMARY FOREIGN EXCLUDE LIKE");
    let elements = split_top(&t[open + 1..close]);
    let key = elements.iter().filter(|e| constraint(e)).find_map(|e| {
        let p = (0..e.len()).find(|&i| starts(&e[i..], &["PRIMARY", "KEY"]))?;
        match e.get(p + 2..p + 5)? {
            [Tok::Sym('('), c, Tok::Sym(')')] => c.ident(),
            _ => None,
        }
    });
    for e in elements.iter().filter(|e| !constraint(e)) {
        let Some((c, at)) = name_at(e, 0) else {
            continue;
        };
        let pk = key.as_ref() == Some(&c.key);
        hits.extend(type_advice(&table.shown, &c.key, &e[at..], pk));
    }
}

/// Advice on a new column's type, `def` being its definition after the name: at most one
/// finding per column. Each type here works, but costs a table rewrite (or an outage) to
/// change once the table is big.
pub(super) fn type_advice(tb: &str, c: &str, def: &[Tok], table_pk: bool) -> Option<Finding> {
    let i = if def.get(1) == Some(&Tok::Sym('.')) && def[0].is("pg_catalog") {
        2
    } else {
        0
    };
    // `"char"` (quoted) is a one-byte internal type, not char(n).
    let Some(Tok::Word(ty)) = def.get(i) else {
        return None;
    };
    let ty = ty.to_ascii_lowercase();
    let rest = &def[i + 1..];
    let size = |r: &[Tok]| match r {
        [Tok::Sym('('), Tok::Num(n), Tok::Sym(')'), ..] => Some(n.clone()),
        _ => None,
    };
    let is = |names: &str| names.split(' ').any(|n| n == ty);
    let pk = table_pk || seq(&top(def), &["PRIMARY", "KEY"]);
    if is("serial serial4 smallserial serial2") || (pk && is("int integer int4 smallint int2")) {
        let limit = if is("smallserial serial2 smallint int2") {
            "32,767"
        } else {
            "2,147,483,647"
        };
        let what = if pk { "primary key" } else { "column" };
        let message = format!(
            "{what} {tb}.{c} is {ty}: its values run out at {limit}, and widening it then \
             rewrites {tb} (and every column referencing it) under an ACCESS EXCLUSIVE lock"
        );
        let fix = format!(
            "Declare it `{c} bigint GENERATED ALWAYS AS IDENTITY` (BY DEFAULT if rows come with \
             their own ids): it does not run out, and unlike serial its sequence belongs to the \
             column."
        );
        return Some(hit("prefer-bigint-identity", message, fix));
    }
    let varying = ty == "character" && is_at(rest, 0, "VARYING");
    if ty == "varchar" || varying {
        // Without a length it is text already.
        let n = size(&rest[usize::from(varying)..])?;
        let message = format!(
            "{tb}.{c} is {}({n}): the limit is part of the type, so changing it is an ALTER \
             COLUMN TYPE (lowering it checks, and may rewrite, {tb} under an ACCESS EXCLUSIVE \
             lock); text is stored the same way",
            if varying {
                "character varying"
            } else {
                "varchar"
            }
        );
        let fix = format!(
            "Declare it `{c} text CHECK (length({c}) <= {n})`: a constraint can be replaced \
             online (a new one NOT VALID, then VALIDATE)."
        );
        return Some(hit("prefer-text", message, fix));
    }
    if is("char character bpchar") {
        let n = size(rest).unwrap_or_else(|| "1".into());
        let message = format!(
            "{tb}.{c} is {ty}({n}): values are blank-padded to {n} characters, the padding is \
             ignored by some comparisons and not by others (or by clients), and it saves no space \
             over text"
        );
        let fix = format!(
            "Declare it `{c} text` (with `CHECK (length({c}) = {n})` if the length is fixed)."
        );
        return Some(hit("prefer-text-over-char", message, fix));
    }
    if ty == "timestamp" {
        let after = if size(rest).is_some() {
            &rest[3..]
        } else {
            rest
        };
        if starts(after, &["WITH", "TIME", "ZONE"]) {
            return None;
        }
        let message = format!(
            "{tb}.{c} is timestamp without time zone: it stores a wall-clock reading with no \
             zone, so the instant it means depends on each writer's and reader's TimeZone, and \
             around DST changes some values are ambiguous"
        );
        let fix = format!(
            "Declare it `{c} timestamptz` (timestamp with time zone): it stores an instant and \
             shows it in each session's zone; converting later rewrites {tb}."
        );
        return Some(hit("prefer-timestamptz", message, fix));
    }
    None
}
