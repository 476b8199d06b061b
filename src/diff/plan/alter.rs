//! Changing an object in place, when Postgres has an ALTER for the difference.
//!
//! `alter` returns `Err(reason)` when the only way from one definition to the other is to drop
//! and create the object again; the plan then rebuilds it (and whatever depends on it).

use super::alter_types;
use super::ddl::{self, parent};
use super::{Hazard, Stmt};
use crate::diff::model::{Kind, Object};
use crate::migrate::db::quote_literal;

#[derive(Default)]
pub struct InPlace {
    /// Before anything is dropped (detach a default, let go of a sequence).
    pub pre: Vec<Stmt>,
    /// At the object's place in dependency order.
    pub main: Vec<Stmt>,
    /// After every object exists (validations).
    pub post: Vec<Stmt>,
    pub hazards: Vec<Hazard>,
    /// The change makes Postgres refuse while views, policies or rules use the object (a
    /// column's type): they are rebuilt around it.
    pub disturbs: bool,
}

type R = Result<InPlace, String>;

pub fn alter(b: &Object, t: &Object) -> R {
    let mut a = InPlace::default();
    let name = &t.key.name;
    let changed = |k: &str| b.prop(k) != t.prop(k);
    match t.key.kind {
        Kind::Extension => {
            if changed("version") {
                a.main.push(Stmt::tx(format!(
                    "ALTER EXTENSION {name} UPDATE TO {}",
                    quote_literal(t.prop("version"))
                )));
            }
            if changed("in_schema") {
                a.main.push(Stmt::tx(format!(
                    "ALTER EXTENSION {name} SET SCHEMA {}",
                    t.prop("in_schema")
                )));
            }
        }
        Kind::Enum => alter_types::enum_values(b, t, &mut a)?,
        Kind::Domain => alter_types::domain(b, t, &mut a)?,
        Kind::Composite => alter_types::composite(b, t, &mut a)?,
        Kind::Sequence => {
            let opts_changed = ["type", "start", "increment", "min", "max", "cache", "cycle"]
                .iter()
                .any(|k| changed(k));
            if opts_changed {
                let mut s = format!("ALTER SEQUENCE {name} {}", ddl::sequence_options(t));
                restart(b, t, &mut s, &mut a);
                a.main.push(Stmt::tx(s));
            }
            if changed("owned_by") {
                if !b.prop("owned_by").is_empty() {
                    // Let go first: dropping the old column would take the sequence with it.
                    a.pre
                        .push(Stmt::tx(format!("ALTER SEQUENCE {name} OWNED BY NONE")));
                }
                if !t.prop("owned_by").is_empty() {
                    a.post.push(Stmt::tx(format!(
                        "ALTER SEQUENCE {name} OWNED BY {}",
                        t.prop("owned_by")
                    )));
                }
            }
        }
        Kind::Function | Kind::Procedure => {
            if changed("result") || changed("arguments") {
                return Err("its result type or argument names/defaults change, which CREATE OR REPLACE cannot do".into());
            }
            a.main.push(Stmt::tx(t.prop("definition").to_string()));
        }
        Kind::Table => table(b, t, &mut a)?,
        Kind::Column => column(b, t, &mut a)?,
        Kind::Constraint => {
            if changed("definition") || changed("type") {
                return Err("its definition changes".into());
            }
            if b.prop("not_valid") == "true" && t.prop("not_valid").is_empty() {
                a.post.push(Stmt::no_tx(format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    parent(t),
                    t.local
                )));
                a.hazards.push(Hazard::new(
                    "validates",
                    "VALIDATE scans the table under SHARE UPDATE EXCLUSIVE (reads and writes go on)",
                ));
            } else {
                return Err(
                    "a validated constraint can only become NOT VALID by being added again".into(),
                );
            }
        }
        Kind::Index => {
            return Err(if changed("invalid") {
                "it is INVALID on the base: it is built again".into()
            } else {
                "its definition changes".into()
            })
        }
        Kind::View => view(b, t, &mut a)?,
        Kind::MatView => {
            if changed("definition") || changed("columns") {
                return Err("a materialized view's query cannot be replaced in place".into());
            }
            options(b, t, &format!("ALTER MATERIALIZED VIEW {name}"), &mut a);
        }
        Kind::Trigger => {
            if changed("definition") {
                return Err("its definition changes".into());
            }
            a.main.push(ddl::trigger_enable(t).unwrap_or_else(|| {
                Stmt::tx(format!(
                    "ALTER TABLE {} ENABLE TRIGGER {}",
                    parent(t),
                    t.local
                ))
            }));
        }
        Kind::EventTrigger => {
            if changed("event") || changed("function") || changed("tags") {
                return Err("its event, tags or function change".into());
            }
            a.main.push(
                ddl::event_trigger_enable(t)
                    .unwrap_or_else(|| Stmt::tx(format!("ALTER EVENT TRIGGER {name} ENABLE"))),
            );
        }
        Kind::Policy => {
            if changed("command") || changed("permissive") {
                return Err("its command or PERMISSIVE/RESTRICTIVE changes".into());
            }
            if (changed("using") && t.prop("using").is_empty())
                || (changed("with_check") && t.prop("with_check").is_empty())
            {
                return Err("ALTER POLICY cannot remove a USING or WITH CHECK clause".into());
            }
            let mut s = format!("ALTER POLICY {} ON {}", t.local, parent(t));
            if changed("roles") {
                s.push_str(&format!(
                    " TO {}",
                    if t.prop("roles").is_empty() {
                        "PUBLIC"
                    } else {
                        t.prop("roles")
                    }
                ));
            }
            if changed("using") {
                s.push_str(&format!(" USING ({})", t.prop("using")));
            }
            if changed("with_check") {
                s.push_str(&format!(" WITH CHECK ({})", t.prop("with_check")));
            }
            a.main.push(Stmt::tx(s));
        }
        Kind::Collation | Kind::Range => {
            return Err(format!("a {} cannot be altered", t.key.kind.noun()))
        }
        Kind::Schema | Kind::DefaultPrivileges => {}
    }
    Ok(a)
}

/// Postgres refuses new bounds that leave a sequence's current value outside them. Below a
/// new MINVALUE it is moved up to it (nothing has used those values); above a new MAXVALUE
/// nothing safe can be done: values already handed out may be in use.
fn restart(b: &Object, t: &Object, s: &mut String, a: &mut InPlace) {
    let num = |o: &Object, k: &str| o.prop(k).parse::<i128>().ok();
    let current = b
        .extra("last_value")
        .parse::<i128>()
        .ok()
        .or(num(b, "start"));
    let (Some(cur), Some(min), Some(max), Some(start)) =
        (current, num(t, "min"), num(t, "max"), num(t, "start"))
    else {
        return;
    };
    if cur < min {
        let to = start.max(min);
        s.push_str(&format!(" RESTART WITH {to}"));
        a.hazards.push(Hazard::new(
            "sets-sequence",
            format!("its current value {cur} is below the new MINVALUE {min}: it restarts at {to}"),
        ));
    } else if cur > max {
        a.hazards.push(Hazard::new(
            "may-fail",
            format!("its current value {cur} is above the new MAXVALUE {max}: Postgres refuses; values up to {cur} may already be in use"),
        ));
    }
}

fn table(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let name = &t.key.name;
    let changed = |k: &str| b.prop(k) != t.prop(k);
    if changed("partitioned") || changed("partition_by") || changed("inherits") {
        return Err("its partitioning or inheritance changes".into());
    }
    if changed("partition_of")
        && (!b.prop("partition_of").is_empty() && !t.prop("partition_of").is_empty())
    {
        return Err("it moves to another partitioned table".into());
    }
    if changed("partition_of") || changed("partition_bound") {
        if !b.prop("partition_of").is_empty() {
            a.main.push(Stmt::tx(format!(
                "ALTER TABLE {} DETACH PARTITION {name}",
                b.prop("partition_of")
            )));
        }
        // Attached last: the parent's new columns must be in place first (a table attaches
        // only with exactly its parent's columns).
        if !t.prop("partition_of").is_empty() {
            a.post.push(Stmt::tx(format!(
                "ALTER TABLE {} ATTACH PARTITION {name} {}",
                t.prop("partition_of"),
                t.prop("partition_bound")
            )));
            a.hazards.push(Hazard::new(
                "validates",
                "ATTACH PARTITION scans the partition to check its bound (unless a matching CHECK constraint proves it)",
            ));
        }
    }
    if changed("unlogged") {
        let how = if t.prop("unlogged") == "true" {
            "UNLOGGED"
        } else {
            "LOGGED"
        };
        a.main
            .push(Stmt::tx(format!("ALTER TABLE {name} SET {how}")));
        a.hazards.push(Hazard::new(
            "rewrites-table",
            "SET LOGGED/UNLOGGED rewrites the table under ACCESS EXCLUSIVE",
        ));
    }
    if changed("row_security") {
        let how = if t.prop("row_security") == "true" {
            "ENABLE"
        } else {
            "DISABLE"
        };
        a.main.push(Stmt::tx(format!(
            "ALTER TABLE {name} {how} ROW LEVEL SECURITY"
        )));
        if how == "ENABLE" {
            a.hazards.push(Hazard::new(
                "hides-rows",
                "with row level security on and no policy, non-owners see no rows",
            ));
        }
    }
    if changed("force_row_security") {
        let how = if t.prop("force_row_security") == "true" {
            "FORCE"
        } else {
            "NO FORCE"
        };
        a.main.push(Stmt::tx(format!(
            "ALTER TABLE {name} {how} ROW LEVEL SECURITY"
        )));
    }
    if changed("replica_identity") {
        a.post.push(ddl::replica_identity(t));
    }
    options(b, t, &format!("ALTER TABLE {name}"), a);
    Ok(())
}

/// `SET (k = v)` for options the target has, `RESET (k)` for the ones it dropped.
fn options(b: &Object, t: &Object, head: &str, a: &mut InPlace) {
    if b.prop("options") == t.prop("options") {
        return;
    }
    let keys = |s: &str| -> Vec<(String, String)> {
        s.split(", ")
            .filter(|x| !x.is_empty())
            .map(|x| {
                let (k, v) = x.split_once('=').unwrap_or((x, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let (bo, to) = (keys(b.prop("options")), keys(t.prop("options")));
    let reset: Vec<&String> = bo
        .iter()
        .filter(|(k, _)| !to.iter().any(|(j, _)| j == k))
        .map(|(k, _)| k)
        .collect();
    if !reset.is_empty() {
        let list: Vec<&str> = reset.iter().map(|s| s.as_str()).collect();
        a.main
            .push(Stmt::tx(format!("{head} RESET ({})", list.join(", "))));
    }
    let set: Vec<String> = to
        .iter()
        .filter(|kv| !bo.contains(kv))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !set.is_empty() {
        a.main
            .push(Stmt::tx(format!("{head} SET ({})", set.join(", "))));
    }
}

fn view(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let name = &t.key.name;
    if b.prop("definition") == t.prop("definition") && b.prop("columns") == t.prop("columns") {
        options(b, t, &format!("ALTER VIEW {name}"), a);
        return Ok(());
    }
    // CREATE OR REPLACE keeps grants and dependent views, but only when the old columns
    // stay as they were and new ones come after them.
    let (bc, tc): (Vec<&str>, Vec<&str>) = (
        b.prop("columns").lines().collect(),
        t.prop("columns").lines().collect(),
    );
    if tc.len() < bc.len() || tc[..bc.len()] != bc[..] {
        return Err("its columns change (not only added at the end), which CREATE OR REPLACE VIEW cannot do".into());
    }
    a.main.push(Stmt::tx(format!(
        "CREATE OR REPLACE VIEW {name}{} AS\n{}",
        ddl::with_options(t.prop("options")),
        t.prop("definition")
    )));
    if !b.prop("options").is_empty() && t.prop("options").is_empty() {
        // CREATE OR REPLACE does not drop options it is not given.
        let mut tmp = InPlace::default();
        options(b, t, &format!("ALTER VIEW {name}"), &mut tmp);
        a.main.extend(tmp.main);
    }
    Ok(())
}

fn column(b: &Object, t: &Object, a: &mut InPlace) -> Result<(), String> {
    let table = parent(t);
    let col = &t.local;
    let changed = |k: &str| b.prop(k) != t.prop(k);
    let alter = |s: String| Stmt::tx(format!("ALTER TABLE {table} ALTER COLUMN {col} {s}"));
    if changed("generated") {
        if t.prop("generated").is_empty() {
            a.main.push(alter("DROP EXPRESSION".into()));
        } else {
            return Err(
                "its generation expression changes (Postgres 15 cannot alter it in place)".into(),
            );
        }
    }
    let retype = changed("type") || changed("collation") || b.extra("retype") == "true";
    let adds_identity = b.prop("identity").is_empty() && !t.prop("identity").is_empty();
    if !b.prop("identity").is_empty() && t.prop("identity").is_empty() {
        // First (phase 1): its sequence goes with it, and a serial's sequence of the same
        // name may be created next.
        a.pre.push(alter("DROP IDENTITY".into()));
    }
    let default_changed = changed("default") || (retype && !b.prop("default").is_empty());
    if default_changed && !b.prop("default").is_empty() {
        if adds_identity {
            // serial → identity: the serial's sequence (dropped in phase 1 after this) may
            // have the name the identity's takes.
            a.pre.push(alter("DROP DEFAULT".into()));
        } else {
            a.main.push(alter("DROP DEFAULT".into()));
        }
    }
    if retype {
        let mut s = format!("TYPE {}", t.prop("type"));
        if !t.prop("collation").is_empty() {
            s.push_str(&format!(" COLLATE {}", t.prop("collation")));
        }
        let via_text = if b.extra("retype") == "true" {
            "::text"
        } else {
            ""
        };
        s.push_str(&format!(" USING {col}{via_text}::{}", t.prop("type")));
        a.main.push(alter(s));
        a.disturbs = true;
        if binary_coercible(b.prop("type"), t.prop("type")) && !changed("collation") {
            a.hazards.push(Hazard::access_exclusive(
                "the new type is binary-compatible: no rewrite, but dependent views are rebuilt",
            ));
        } else {
            a.hazards.push(Hazard::new(
                "rewrites-table",
                "ALTER COLUMN TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE; values that do not convert make it fail",
            ));
        }
    }
    if default_changed && !t.prop("default").is_empty() {
        a.main
            .push(alter(format!("SET DEFAULT {}", t.prop("default"))));
    }
    if changed("not_null") {
        if t.prop("not_null").is_empty() {
            a.main.push(alter("DROP NOT NULL".into()));
        } else if adds_identity {
            a.main.push(alter("SET NOT NULL".into()));
            a.hazards.push(Hazard::new(
                "validates",
                "SET NOT NULL scans the table under ACCESS EXCLUSIVE",
            ));
        } else {
            let (main, post) = ddl::set_not_null_online(table, col);
            a.main.push(main);
            a.post.extend(post);
            a.hazards.push(Hazard::new(
                "validates",
                "SET NOT NULL done online: a NOT VALID CHECK is validated (SHARE UPDATE EXCLUSIVE), then SET NOT NULL needs no scan; fails if NULLs exist",
            ));
        }
    }
    a.main.extend(ddl::column_settings(Some(b), t));
    if adds_identity {
        a.main.push(alter(format!(
            "ADD GENERATED {} AS IDENTITY ({})",
            t.prop("identity"),
            t.prop("identity_options")
        )));
        // START WITH is the target's; the rows already there may hold larger values.
        a.post.push(super::rebuild::continue_after_max(table, t));
        a.hazards.push(Hazard::new(
            "sets-sequence",
            "the identity's sequence is moved past the largest value in the column, so new keys do not collide with existing ones",
        ));
    } else if !t.prop("identity").is_empty() {
        if changed("identity") {
            a.main
                .push(alter(format!("SET GENERATED {}", t.prop("identity"))));
        }
        if changed("identity_options") {
            a.main.push(alter(identity_set(t.prop("identity_options"))));
        }
    }
    Ok(())
}

/// `SEQUENCE NAME s START WITH 1 INCREMENT BY 1 … [CYCLE]` → `SET START WITH 1 SET …`.
pub(super) fn identity_set(opts: &str) -> String {
    let mut rest = opts;
    if let Some(i) = rest.find(" START WITH ") {
        rest = &rest[i + 1..];
    }
    let cycle = rest.ends_with(" CYCLE");
    let rest = rest.trim_end_matches(" CYCLE");
    let mut out = vec![];
    for (kw, next) in [
        ("START WITH ", " INCREMENT BY "),
        ("INCREMENT BY ", " MINVALUE "),
        ("MINVALUE ", " MAXVALUE "),
        ("MAXVALUE ", " CACHE "),
        ("CACHE ", ""),
    ] {
        if let Some(i) = rest.find(kw) {
            let v = &rest[i + kw.len()..];
            let v = if next.is_empty() {
                v
            } else {
                &v[..v.find(next).unwrap_or(v.len())]
            };
            out.push(format!("SET {kw}{v}"));
        }
    }
    out.push(if cycle {
        "SET CYCLE".into()
    } else {
        "SET NO CYCLE".into()
    });
    out.join(" ")
}

/// Type changes Postgres makes without touching the rows (it still takes ACCESS EXCLUSIVE).
pub(super) fn binary_coercible(from: &str, to: &str) -> bool {
    let len = |s: &str, head: &str| -> Option<Option<u32>> {
        let rest = s.strip_prefix(head)?;
        if rest.is_empty() {
            return Some(None);
        }
        rest.strip_prefix('(')?
            .strip_suffix(')')?
            .parse()
            .ok()
            .map(Some)
    };
    for head in ["character varying", "bit varying"] {
        if let (Some(a), Some(b)) = (len(from, head), len(to, head)) {
            return match (a, b) {
                (_, None) => true,
                (Some(a), Some(b)) => b >= a,
                (None, Some(_)) => false,
            };
        }
    }
    matches!(
        (from, to),
        ("character varying", "text") | ("text", "character varying")
    ) || (from.starts_with("character varying(") && to == "text")
        || (from.starts_with("numeric(") && to == "numeric")
}
