//! The SQL that creates, drops and describes one object, from its catalog entry.
//!
//! Creation statements come in three groups so the plan can interleave them: `main` runs at
//! the object's place in dependency order, `post` after every object exists (validating
//! constraints, attaching sequences, replica identity), and `meta` (owner, comment, grants)
//! right after `main` (see `meta.rs`).

use super::{Hazard, Stmt};
use crate::diff::catalog::Catalog;
use crate::diff::model::{Kind, Object};
use crate::migrate::db::quote_literal;

#[derive(Default)]
pub struct Create {
    pub main: Vec<Stmt>,
    pub post: Vec<Stmt>,
    pub hazards: Vec<Hazard>,
}

/// How `o` (read from `cat`, the target) is created. `fresh_parent` says its table is created
/// in the same migration: no rows yet, so the online forms (CONCURRENTLY, NOT VALID) would
/// only cost time.
pub fn create(o: &Object, cat: &Catalog, fresh_parent: bool) -> Create {
    let mut c = Create::default();
    let name = &o.key.name;
    match o.key.kind {
        Kind::Schema => c.main.push(Stmt::tx(format!("CREATE SCHEMA {name}"))),
        Kind::Extension => c.main.push(Stmt::tx(format!(
            "CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {} VERSION {}",
            o.prop("in_schema"),
            quote_literal(o.prop("version"))
        ))),
        Kind::Collation => {
            let mut opts = vec![];
            match o.prop("provider") {
                "i" => {
                    opts.push("provider = icu".to_string());
                    opts.push(format!("locale = {}", quote_literal(o.prop("locale"))));
                    if !o.prop("rules").is_empty() {
                        opts.push(format!("rules = {}", quote_literal(o.prop("rules"))));
                    }
                }
                _ => {
                    opts.push("provider = libc".to_string());
                    opts.push(format!(
                        "lc_collate = {}",
                        quote_literal(o.prop("lc_collate"))
                    ));
                    opts.push(format!("lc_ctype = {}", quote_literal(o.prop("lc_ctype"))));
                }
            }
            if o.prop("deterministic") == "false" {
                opts.push("deterministic = false".into());
            }
            c.main.push(Stmt::tx(format!(
                "CREATE COLLATION {name} ({})",
                opts.join(", ")
            )));
        }
        Kind::Enum => c.main.push(Stmt::tx(format!(
            "CREATE TYPE {name} AS ENUM ({})",
            labels(o)
                .iter()
                .map(|l| quote_literal(l))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Kind::Domain => {
            let mut s = format!("CREATE DOMAIN {name} AS {}", o.prop("base"));
            if !o.prop("collation").is_empty() {
                s.push_str(&format!(" COLLATE {}", o.prop("collation")));
            }
            if !o.prop("default").is_empty() {
                s.push_str(&format!(" DEFAULT {}", o.prop("default")));
            }
            if o.prop("not_null") == "true" {
                s.push_str(" NOT NULL");
            }
            let mut later = vec![];
            for (cname, def) in domain_constraints(o) {
                // CREATE DOMAIN has no NOT VALID; such a constraint is added after.
                if def.ends_with(" NOT VALID") {
                    later.push(Stmt::tx(format!(
                        "ALTER DOMAIN {name} ADD CONSTRAINT {cname} {def}"
                    )));
                } else {
                    s.push_str(&format!(" CONSTRAINT {cname} {def}"));
                }
            }
            c.main.push(Stmt::tx(s));
            c.main.extend(later);
        }
        Kind::Composite => c.main.push(Stmt::tx(format!(
            "CREATE TYPE {name} AS ({})",
            o.prop("attributes").lines().collect::<Vec<_>>().join(", ")
        ))),
        Kind::Range => {
            let mut opts = vec![format!("subtype = {}", o.prop("subtype"))];
            for k in [
                "subtype_opclass",
                "collation",
                "canonical",
                "subtype_diff",
                "multirange_type_name",
            ] {
                if !o.prop(k).is_empty() {
                    opts.push(format!("{k} = {}", o.prop(k)));
                }
            }
            c.main.push(Stmt::tx(format!(
                "CREATE TYPE {name} AS RANGE ({})",
                opts.join(", ")
            )));
        }
        Kind::Sequence => {
            c.main.push(Stmt::tx(format!(
                "CREATE SEQUENCE {name} {}",
                sequence_options(o)
            )));
            if !o.prop("owned_by").is_empty() {
                c.post.push(Stmt::tx(format!(
                    "ALTER SEQUENCE {name} OWNED BY {}",
                    o.prop("owned_by")
                )));
            }
        }
        Kind::Function | Kind::Procedure => c.main.push(Stmt::tx(o.prop("definition").to_string())),
        Kind::Table => create_table(o, cat, &mut c),
        Kind::Column
            if !fresh_parent
                && o.prop("not_null") == "true"
                && volatile_default(o.prop("default"))
                && o.prop("identity").is_empty()
                && o.prop("generated").is_empty() =>
        {
            not_null_online(o, &mut c)
        }
        Kind::Column => {
            let table = parent(o);
            c.main.push(Stmt::tx(format!(
                "ALTER TABLE {table} ADD COLUMN {}",
                column_def(o)
            )));
            c.main.extend(column_settings(None, o));
            if !fresh_parent {
                if o.prop("not_null") == "true"
                    && o.prop("default").is_empty()
                    && o.prop("identity").is_empty()
                    && o.prop("generated").is_empty()
                {
                    c.hazards.push(Hazard::new(
                        "may-fail",
                        "NOT NULL without a default fails if the table has rows; add it nullable, backfill, then set NOT NULL",
                    ));
                }
                if !o.prop("generated").is_empty()
                    || !o.prop("identity").is_empty()
                    || volatile_default(o.prop("default"))
                {
                    c.hazards.push(Hazard::new(
                        "rewrites-table",
                        "the new column's values are computed for every row: the table is rewritten under ACCESS EXCLUSIVE",
                    ));
                } else {
                    c.hazards
                        .push(Hazard::access_exclusive("briefly, no rewrite"));
                }
            }
        }
        Kind::Constraint => create_constraint(o, fresh_parent, &mut c),
        Kind::Index => {
            // A partitioned table's index prints as ON ONLY (the form pg_dump attaches
            // partitions' indexes to); created plainly, it cascades to the partitions.
            let def = o.prop("definition").replacen(" ON ONLY ", " ON ", 1);
            let concurrent = !fresh_parent && o.extra("on_partitioned").is_empty();
            if o.prop("invalid") == "true" {
                c.hazards.push(Hazard::new(
                    "manual",
                    "this index is INVALID on the target (a failed CREATE INDEX CONCURRENTLY); the SQL builds it valid, or drop it on the target",
                ));
            }
            if concurrent {
                c.main.push(Stmt::no_tx(concurrently(&def)));
                c.hazards.push(Hazard::new(
                    "builds-index",
                    "built CONCURRENTLY: no write lock, outside a transaction; a failure leaves an INVALID index to drop",
                ));
            } else {
                c.main.push(Stmt::tx(def));
                if !fresh_parent {
                    c.hazards.push(Hazard::new(
                        "builds-index",
                        "a partitioned table's index cannot be built CONCURRENTLY: writes wait while it builds",
                    ));
                }
            }
        }
        Kind::View => c.main.push(Stmt::tx(format!(
            "CREATE VIEW {name}{} AS\n{}",
            with_options(o.prop("options")),
            o.prop("definition")
        ))),
        Kind::MatView => {
            c.main.push(Stmt::tx(format!(
                "CREATE MATERIALIZED VIEW {name}{} AS\n{}\nWITH DATA",
                with_options(o.prop("options")),
                o.prop("definition")
            )));
            c.hazards.push(Hazard::new(
                "runs-query",
                "the materialized view's query runs in full to fill it",
            ));
        }
        Kind::Trigger => {
            c.main.push(Stmt::tx(o.prop("definition").to_string()));
            if let Some(s) = trigger_enable(o) {
                c.main.push(s);
            }
        }
        Kind::EventTrigger => {
            let mut s = format!("CREATE EVENT TRIGGER {name} ON {}", o.prop("event"));
            let tags: Vec<String> = o.prop("tags").lines().map(quote_literal).collect();
            if !tags.is_empty() {
                s.push_str(&format!(" WHEN TAG IN ({})", tags.join(", ")));
            }
            s.push_str(&format!(" EXECUTE FUNCTION {}()", o.prop("function")));
            c.main.push(Stmt::tx(s));
            if let Some(s) = event_trigger_enable(o) {
                c.main.push(s);
            }
        }
        Kind::Policy => {
            let mut s = format!(
                "CREATE POLICY {} ON {} AS {} FOR {}",
                o.local,
                parent(o),
                o.prop("permissive"),
                o.prop("command")
            );
            if !o.prop("roles").is_empty() {
                s.push_str(&format!(" TO {}", o.prop("roles")));
            }
            if !o.prop("using").is_empty() {
                s.push_str(&format!(" USING ({})", o.prop("using")));
            }
            if !o.prop("with_check").is_empty() {
                s.push_str(&format!(" WITH CHECK ({})", o.prop("with_check")));
            }
            c.main.push(Stmt::tx(s));
        }
        // Grants only: see `meta`.
        Kind::DefaultPrivileges => {}
    }
    c
}

/// A NOT NULL column whose default must be computed per row, added to a table that has rows,
/// the online way: added nullable (no rewrite), its default set for new rows, existing rows
/// backfilled by an UPDATE (row locks, not an ACCESS EXCLUSIVE rewrite), then NOT NULL proved
/// by a CHECK validated without blocking writes, so SET NOT NULL needs no scan.
fn not_null_online(o: &Object, c: &mut Create) {
    let table = parent(o);
    let col = &o.local;
    let mut bare = o.clone();
    bare.props.remove("default");
    bare.props.remove("not_null");
    let default = o.prop("default");
    c.main.push(Stmt::tx(format!(
        "ALTER TABLE {table} ADD COLUMN {}",
        column_def(&bare)
    )));
    c.main.extend(column_settings(None, o));
    c.main.push(Stmt::tx(format!(
        "ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {default}"
    )));
    c.main.push(Stmt::no_tx(format!(
        "UPDATE {table} SET {col} = DEFAULT WHERE {col} IS NULL"
    )));
    let (main, post) = set_not_null_online(table, col);
    c.main.push(main);
    c.post.extend(post);
    c.hazards.push(Hazard::new(
        "backfills",
        "added online: nullable, then an UPDATE fills every existing row from the default (row locks, WAL and dead tuples, no ACCESS EXCLUSIVE rewrite), then NOT NULL is proved by a CHECK validated under SHARE UPDATE EXCLUSIVE",
    ));
}

/// SET NOT NULL without its scan under ACCESS EXCLUSIVE: a NOT VALID CHECK (brief lock, in
/// `main`), validated on its own under SHARE UPDATE EXCLUSIVE, lets SET NOT NULL skip the scan;
/// the check then goes (`post`).
pub fn set_not_null_online(table: &str, col: &str) -> (Stmt, Vec<Stmt>) {
    let check =
        crate::migrate::db::quote_ident(&format!("{}_not_null_lakelet", col.trim_matches('"')));
    (
        Stmt::tx(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID"
        )),
        vec![
            Stmt::no_tx(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}")),
            Stmt::tx(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"
            )),
            Stmt::tx(format!("ALTER TABLE {table} DROP CONSTRAINT {check}")),
        ],
    )
}

fn create_table(o: &Object, cat: &Catalog, c: &mut Create) {
    let name = &o.key.name;
    let unlogged = if o.prop("unlogged") == "true" {
        "UNLOGGED "
    } else {
        ""
    };
    let mut s = if !o.prop("partition_of").is_empty() {
        format!(
            "CREATE {unlogged}TABLE {name} PARTITION OF {} {}",
            o.prop("partition_of"),
            o.prop("partition_bound")
        )
    } else {
        // An inheriting table declares only its own columns; the rest come from its parents.
        let cols: Vec<String> = cat
            .children(&o.key)
            .filter(|x| x.key.kind == Kind::Column && x.extra("not_local").is_empty())
            .map(|x| format!("    {}", column_def(x)))
            .collect();
        let mut s = format!("CREATE {unlogged}TABLE {name} (\n{}\n)", cols.join(",\n"));
        if !o.prop("inherits").is_empty() {
            s.push_str(&format!(" INHERITS ({})", o.prop("inherits")));
        }
        s
    };
    if !o.prop("partition_by").is_empty() {
        s.push_str(&format!(" PARTITION BY {}", o.prop("partition_by")));
    }
    s.push_str(&with_options(o.prop("options")));
    c.main.push(Stmt::tx(s));
    for col in cat
        .children(&o.key)
        .filter(|x| x.key.kind == Kind::Column && x.extra("not_local").is_empty())
    {
        c.main.extend(column_settings(None, col));
    }
    if o.prop("row_security") == "true" {
        c.main.push(Stmt::tx(format!(
            "ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"
        )));
    }
    if o.prop("force_row_security") == "true" {
        c.main.push(Stmt::tx(format!(
            "ALTER TABLE {name} FORCE ROW LEVEL SECURITY"
        )));
    }
    if !o.prop("replica_identity").is_empty() {
        c.post.push(replica_identity(o));
    }
}

pub fn replica_identity(o: &Object) -> Stmt {
    // The index name keeps its case: only the keywords are written here.
    let v = match o.prop("replica_identity") {
        "" => "DEFAULT".to_string(),
        "full" => "FULL".to_string(),
        "nothing" => "NOTHING".to_string(),
        v => format!(
            "USING INDEX {}",
            v.strip_prefix("using index ").unwrap_or(v)
        ),
    };
    Stmt::tx(format!("ALTER TABLE {} REPLICA IDENTITY {v}", o.key.name))
}

fn create_constraint(o: &Object, fresh_parent: bool, c: &mut Create) {
    let table = parent(o);
    let name = &o.local;
    let def = o.prop("definition");
    let not_valid = o.prop("not_valid") == "true";
    let partitioned = o.extra("on_partitioned") == "true";
    let add = |def: &str| format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}");
    match o.prop("type") {
        "p" | "u" if !fresh_parent && !partitioned && !o.extra("index").is_empty() => {
            // Build the index without blocking writes, then attach it as the constraint.
            c.main.push(Stmt::no_tx(concurrently(o.extra("index"))));
            let using = if o.prop("type") == "p" {
                "PRIMARY KEY"
            } else {
                "UNIQUE"
            };
            let mut s =
                format!("ALTER TABLE {table} ADD CONSTRAINT {name} {using} USING INDEX {name}");
            if def.contains(" DEFERRABLE") {
                s.push_str(if def.contains("INITIALLY DEFERRED") {
                    " DEFERRABLE INITIALLY DEFERRED"
                } else {
                    " DEFERRABLE"
                });
            }
            c.main.push(Stmt::tx(s));
            c.hazards.push(Hazard::new(
                "builds-index",
                "its index is built CONCURRENTLY first (outside a transaction), then attached under a brief ACCESS EXCLUSIVE lock",
            ));
            if o.prop("type") == "p" {
                c.hazards.push(Hazard::new(
                    "validates",
                    "PRIMARY KEY sets its columns NOT NULL, which scans the table if they are nullable",
                ));
            }
        }
        // Postgres 15 refuses NOT VALID foreign keys on partitioned tables.
        "f" | "c" if !(fresh_parent || partitioned && o.prop("type") == "f") => {
            c.main.push(Stmt::tx(format!("{} NOT VALID", add(def))));
            if not_valid {
                c.hazards.push(Hazard::new(
                    "not-validated",
                    "added NOT VALID, as on the target: existing rows are not checked",
                ));
            } else {
                c.post.push(Stmt::no_tx(format!(
                    "ALTER TABLE {table} VALIDATE CONSTRAINT {name}"
                )));
                c.hazards.push(Hazard::new(
                    "validates",
                    "added NOT VALID (brief lock), then VALIDATE scans the table under SHARE UPDATE EXCLUSIVE, which lets reads and writes go on",
                ));
            }
            if o.prop("type") == "f" {
                c.hazards.push(Hazard::new(
                    "locks-other-table",
                    "a foreign key takes SHARE ROW EXCLUSIVE on the referenced table too",
                ));
            }
        }
        _ => {
            let mut s = add(def);
            if not_valid {
                s.push_str(" NOT VALID");
            }
            c.main.push(Stmt::tx(s));
            if !fresh_parent {
                c.hazards.push(Hazard::access_exclusive(
                    "the constraint is checked (or its index built) while writes wait",
                ));
            }
        }
    }
}

/// What removes `o`. Columns, constraints, triggers and policies name their table.
pub fn drop(o: &Object) -> Stmt {
    let name = &o.key.name;
    match o.key.kind {
        Kind::Column => Stmt::tx(format!("ALTER TABLE {} DROP COLUMN {}", parent(o), o.local)),
        Kind::Constraint => Stmt::tx(format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            parent(o),
            o.local
        )),
        Kind::Trigger => Stmt::tx(format!("DROP TRIGGER {} ON {}", o.local, parent(o))),
        Kind::Policy => Stmt::tx(format!("DROP POLICY {} ON {}", o.local, parent(o))),
        Kind::Index if o.extra("on_partitioned").is_empty() => {
            Stmt::no_tx(format!("DROP INDEX CONCURRENTLY {name}"))
        }
        Kind::DefaultPrivileges => Stmt::tx(String::new()),
        k => Stmt::tx(format!("DROP {} {name}", k.keyword())),
    }
}

pub fn parent(o: &Object) -> &str {
    o.parent.as_ref().map(|p| p.name.as_str()).unwrap_or("")
}

/// `name type [COLLATE c] [GENERATED …] [DEFAULT …] [NOT NULL]`.
pub fn column_def(o: &Object) -> String {
    let mut s = format!("{} {}", o.local, o.prop("type"));
    if !o.prop("compression").is_empty() {
        s.push_str(&format!(" COMPRESSION {}", o.prop("compression")));
    }
    if !o.prop("collation").is_empty() {
        s.push_str(&format!(" COLLATE {}", o.prop("collation")));
    }
    if !o.prop("generated").is_empty() {
        s.push_str(&format!(
            " GENERATED ALWAYS AS ({}) STORED",
            o.prop("generated")
        ));
    }
    if !o.prop("identity").is_empty() {
        s.push_str(&format!(
            " GENERATED {} AS IDENTITY ({})",
            o.prop("identity"),
            o.prop("identity_options")
        ));
    }
    if !o.prop("default").is_empty() {
        s.push_str(&format!(" DEFAULT {}", o.prop("default")));
    }
    if o.prop("not_null") == "true" {
        s.push_str(" NOT NULL");
    }
    s
}

/// `SET STORAGE`, `SET STATISTICS` and `SET COMPRESSION` that take column `t` from `b` (or,
/// for a new column, from its type's defaults). None of them rewrites the table: storage and
/// compression apply to values written from now on.
pub fn column_settings(b: Option<&Object>, t: &Object) -> Vec<Stmt> {
    let was = |k: &str| b.map_or("", |b| b.prop(k));
    let alter = |s: String| {
        Stmt::tx(format!(
            "ALTER TABLE {} ALTER COLUMN {} {s}",
            parent(t),
            t.local
        ))
    };
    let mut out = vec![];
    if was("storage") != t.prop("storage") {
        let to = match t.prop("storage") {
            "" => t.extra("type_storage"),
            s => s,
        };
        if !to.is_empty() {
            out.push(alter(format!("SET STORAGE {to}")));
        }
    }
    if was("statistics") != t.prop("statistics") {
        let to = match t.prop("statistics") {
            "" => "-1",
            s => s,
        };
        out.push(alter(format!("SET STATISTICS {to}")));
    }
    // A new column gets its compression in its definition.
    if b.is_some() && was("compression") != t.prop("compression") {
        let to = match t.prop("compression") {
            "" => "default",
            s => s,
        };
        out.push(alter(format!("SET COMPRESSION {to}")));
    }
    out
}

pub fn sequence_options(o: &Object) -> String {
    format!(
        "AS {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {} {}",
        o.prop("type"),
        o.prop("start"),
        o.prop("increment"),
        o.prop("min"),
        o.prop("max"),
        o.prop("cache"),
        if o.prop("cycle") == "true" {
            "CYCLE"
        } else {
            "NO CYCLE"
        }
    )
}

pub fn labels(o: &Object) -> Vec<String> {
    serde_json::from_str(o.prop("labels")).unwrap_or_default()
}

/// A domain's constraints as (name, definition).
pub fn domain_constraints(o: &Object) -> Vec<(String, String)> {
    o.prop("constraints")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect()
}

pub fn with_options(opts: &str) -> String {
    if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH ({opts})")
    }
}

/// `CREATE [UNIQUE] INDEX name …` → `CREATE [UNIQUE] INDEX CONCURRENTLY name …`.
pub fn concurrently(def: &str) -> String {
    for head in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = def.strip_prefix(head) {
            return format!("{head}CONCURRENTLY {rest}");
        }
    }
    def.to_string()
}

/// `DISABLE` / `ENABLE REPLICA` / `ENABLE ALWAYS` for a trigger's `tgenabled` (or an event
/// trigger's `evtenabled`); None for the default, enabled.
fn enable_clause(o: &Object) -> Option<&'static str> {
    match o.prop("enabled") {
        "D" => Some("DISABLE"),
        "R" => Some("ENABLE REPLICA"),
        "A" => Some("ENABLE ALWAYS"),
        _ => None,
    }
}

pub fn trigger_enable(o: &Object) -> Option<Stmt> {
    let how = enable_clause(o)?;
    Some(Stmt::tx(format!(
        "ALTER TABLE {} {how} TRIGGER {}",
        parent(o),
        o.local
    )))
}

pub fn event_trigger_enable(o: &Object) -> Option<Stmt> {
    let how = enable_clause(o)?;
    Some(Stmt::tx(format!(
        "ALTER EVENT TRIGGER {} {how}",
        o.key.name
    )))
}

/// Defaults Postgres cannot fill in without computing each row (PG 11+ stores constant
/// defaults in the catalog and rewrites nothing).
fn volatile_default(d: &str) -> bool {
    let d = d.to_ascii_lowercase();
    [
        "nextval(",
        "random(",
        "gen_random_uuid(",
        "clock_timestamp(",
        "uuid_generate",
    ]
    .iter()
    .any(|f| d.contains(f))
}
