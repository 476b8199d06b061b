//! In-place changes of user-defined types: enum values, domains, composite attributes.

use super::alter::InPlace;
use super::ddl;
use super::{Hazard, Stmt};
use crate::diff::model::Object;
use crate::migrate::db::quote_literal;

pub(super) fn enum_values(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let (bl, tl) = (ddl::labels(b), ddl::labels(t));
    let name = &t.key.name;
    // Same count, some labels different in place: renames.
    if bl.len() == tl.len() {
        let renames: Vec<(&String, &String)> = bl.iter().zip(&tl).filter(|(x, y)| x != y).collect();
        if renames
            .iter()
            .all(|(x, y)| !tl.contains(x) && !bl.contains(y))
        {
            for (x, y) in renames {
                a.main.push(Stmt::tx(format!(
                    "ALTER TYPE {name} RENAME VALUE {} TO {}",
                    quote_literal(x),
                    quote_literal(y)
                )));
            }
            return Ok(());
        }
    }
    // Only additions, the old labels keeping their order: ADD VALUE in place.
    let kept: Vec<&String> = tl.iter().filter(|l| bl.contains(l)).collect();
    if kept.len() != bl.len() || kept.iter().zip(&bl).any(|(x, y)| *x != y) {
        return Err(
            "enum values are removed or reordered, which Postgres cannot do in place".into(),
        );
    }
    for (i, l) in tl.iter().enumerate() {
        if bl.contains(l) {
            continue;
        }
        let place = if i == 0 {
            format!(" BEFORE {}", quote_literal(&tl[1]))
        } else {
            format!(" AFTER {}", quote_literal(&tl[i - 1]))
        };
        // Outside a transaction block: committed before any later group uses the value.
        a.main.push(Stmt::no_tx(format!(
            "ALTER TYPE {name} ADD VALUE {}{place}",
            quote_literal(l)
        )));
    }
    a.hazards.push(Hazard::new(
        "note",
        "a value added by ALTER TYPE … ADD VALUE cannot be used until its transaction commits",
    ));
    Ok(())
}

pub(super) fn domain(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let name = &t.key.name;
    if b.prop("base") != t.prop("base") || b.prop("collation") != t.prop("collation") {
        return Err("its base type or collation changes".into());
    }
    if b.prop("default") != t.prop("default") {
        a.main.push(Stmt::tx(match t.prop("default") {
            "" => format!("ALTER DOMAIN {name} DROP DEFAULT"),
            d => format!("ALTER DOMAIN {name} SET DEFAULT {d}"),
        }));
    }
    if b.prop("not_null") != t.prop("not_null") {
        if t.prop("not_null") == "true" {
            a.main
                .push(Stmt::tx(format!("ALTER DOMAIN {name} SET NOT NULL")));
            a.hazards.push(Hazard::new(
                "validates",
                "SET NOT NULL on a domain checks every column that uses it",
            ));
        } else {
            a.main
                .push(Stmt::tx(format!("ALTER DOMAIN {name} DROP NOT NULL")));
        }
    }
    let (bc, tc) = (ddl::domain_constraints(b), ddl::domain_constraints(t));
    let strip = |d: &str| d.trim_end_matches(" NOT VALID").to_string();
    for (n, d) in &bc {
        match tc.iter().find(|(m, _)| m == n) {
            Some((_, e)) if strip(d) == strip(e) => {
                if d.ends_with(" NOT VALID") && !e.ends_with(" NOT VALID") {
                    a.post.push(Stmt::no_tx(format!(
                        "ALTER DOMAIN {name} VALIDATE CONSTRAINT {n}"
                    )));
                } else if !d.ends_with(" NOT VALID") && e.ends_with(" NOT VALID") {
                    a.main
                        .push(Stmt::tx(format!("ALTER DOMAIN {name} DROP CONSTRAINT {n}")));
                    a.main.push(Stmt::tx(format!(
                        "ALTER DOMAIN {name} ADD CONSTRAINT {n} {e}"
                    )));
                }
            }
            _ => a
                .main
                .push(Stmt::tx(format!("ALTER DOMAIN {name} DROP CONSTRAINT {n}"))),
        }
    }
    for (n, e) in &tc {
        let same = bc.iter().any(|(m, d)| m == n && strip(d) == strip(e));
        if same {
            continue;
        }
        let def = strip(e);
        a.main.push(Stmt::tx(format!(
            "ALTER DOMAIN {name} ADD CONSTRAINT {n} {def} NOT VALID"
        )));
        if !e.ends_with(" NOT VALID") {
            a.post.push(Stmt::no_tx(format!(
                "ALTER DOMAIN {name} VALIDATE CONSTRAINT {n}"
            )));
            a.hazards.push(Hazard::new(
                "validates",
                "the new domain constraint is added NOT VALID, then VALIDATE checks every column that uses the domain",
            ));
        }
    }
    Ok(())
}

pub(super) fn composite(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let split = |o: &Object| -> Vec<(String, String)> {
        o.prop("attributes")
            .lines()
            .map(|l| {
                let (n, ty) = l.split_once(' ').unwrap_or((l, ""));
                (n.to_string(), ty.to_string())
            })
            .collect()
    };
    let (ba, ta) = (split(b), split(t));
    let kept_b: Vec<&String> = ba
        .iter()
        .map(|x| &x.0)
        .filter(|n| ta.iter().any(|y| &y.0 == *n))
        .collect();
    let kept_t: Vec<&String> = ta
        .iter()
        .map(|x| &x.0)
        .filter(|n| ba.iter().any(|y| &y.0 == *n))
        .collect();
    // New attributes can only go at the end; the kept ones must keep their order.
    let first_new = ta.iter().position(|x| !ba.iter().any(|y| y.0 == x.0));
    let last_kept = ta.iter().rposition(|x| ba.iter().any(|y| y.0 == x.0));
    if kept_b != kept_t || matches!((first_new, last_kept), (Some(f), Some(l)) if f < l) {
        return Err("attributes are reordered or inserted before existing ones".into());
    }
    let name = &t.key.name;
    for (n, _) in ba.iter().filter(|x| !ta.iter().any(|y| y.0 == x.0)) {
        a.main
            .push(Stmt::tx(format!("ALTER TYPE {name} DROP ATTRIBUTE {n}")));
    }
    for (n, ty) in &ta {
        match ba.iter().find(|y| &y.0 == n) {
            // Postgres refuses ALTER ATTRIBUTE … TYPE while a column uses the type; the
            // plan replaces the type and converts those columns instead.
            Some((_, old)) if old != ty => {
                return Err(format!("attribute {n} changes type"));
            }
            Some(_) => {}
            None => a.main.push(Stmt::tx(format!(
                "ALTER TYPE {name} ADD ATTRIBUTE {n} {ty}"
            ))),
        }
    }
    Ok(())
}
