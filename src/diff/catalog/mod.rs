//! Reading one database's schema from its catalogs.
//!
//! Every object kind has one query (no per-object round trips, so 1,000 tables cost the same
//! dozen queries as ten). Definitions come from Postgres' own deparsers (`pg_get_viewdef`,
//! `pg_get_constraintdef`, `pg_get_functiondef`, …): the two sides run the same server, so
//! equal objects print equal text. Objects that belong to an extension are skipped; the
//! extension itself (with its version) stands for them.
//!
//! - `relations.rs`: tables, columns, constraints, indexes, sequences, views, triggers,
//!   policies.
//! - `types.rs`: schemas, extensions, collations, enums, domains, composite and range types,
//!   functions, event triggers, default privileges.
//! - here: the pieces every query shares, comments and pg_depend.

mod relations;
mod types;

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};

use super::model::{Addr, Key, Kind, Object};
use crate::migrate::db::Db;

/// One database's schema.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub objects: BTreeMap<Key, Object>,
    /// `server_version_num`, for messages and for version-specific SQL.
    pub server_version: u32,
    /// The role the catalog was read as: objects it owns need no `OWNER TO` when created by
    /// the same role.
    pub user: String,
}

impl Catalog {
    pub fn get(&self, k: &Key) -> Option<&Object> {
        self.objects.get(k)
    }

    /// Children (columns, constraints, …) of `parent`, columns in their table order.
    pub fn children<'a>(&'a self, parent: &'a Key) -> impl Iterator<Item = &'a Object> + 'a {
        let mut v: Vec<&Object> = self
            .objects
            .values()
            .filter(|o| o.parent.as_ref() == Some(parent))
            .collect();
        v.sort_by(|a, b| {
            (a.key.kind, a.position, &a.key.name).cmp(&(b.key.kind, b.position, &b.key.name))
        });
        v.into_iter()
    }
}

/// Reads the schema of the database `db` is connected to.
pub fn read(db: &Db) -> Result<Catalog> {
    let version: u32 = db
        .value("select current_setting('server_version_num')")
        .map_err(|e| anyhow::anyhow!("reading the server version of {}: {e}", db.label))?
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    if version < 120000 {
        anyhow::bail!(
            "{} runs Postgres {}; the diff reads catalogs of Postgres 12 or newer",
            db.label,
            version / 10000
        );
    }
    // With an empty search_path the deparsers qualify every name (`public.orders`,
    // `'ok'::public.mood`): the text means the same on both sides and in the script,
    // whatever search_path runs it.
    db.exec("SET search_path = ''")
        .map_err(|e| anyhow::anyhow!("preparing the session on {}: {e}", db.label))?;
    let mut objects = vec![];
    types::read(db, version, &mut objects)?;
    relations::read(db, &mut objects)?;
    let user = db
        .value("select quote_ident(current_user)")
        .map_err(|e| anyhow::anyhow!("reading current_user on {}: {e}", db.label))?
        .unwrap_or_default();
    let mut cat = Catalog {
        objects: BTreeMap::new(),
        server_version: version,
        user,
    };
    for o in objects {
        cat.objects.insert(o.key.clone(), o);
    }
    resolve(db, &mut cat)?;
    Ok(cat)
}

/// Comments and dependencies arrive as addresses; map them onto identities.
fn resolve(db: &Db, cat: &mut Catalog) -> Result<()> {
    let mut by_addr: HashMap<Addr, Key> = HashMap::new();
    for o in cat.objects.values() {
        for a in &o.addrs {
            by_addr.insert(a.clone(), o.key.clone());
        }
    }
    let find = |class: &str, oid: u32, sub: i32| -> Option<&Key> {
        by_addr
            .get(&(class.to_string(), oid, sub))
            .or_else(|| by_addr.get(&(class.to_string(), oid, 0)))
    };

    // A comment lands on the object at its exact address; a comment on a view's column or
    // on a constraint's index is kept by the view or constraint under its SQL name.
    for r in rows(
        db,
        "select d.classoid::regclass::text, d.objoid::text, d.objsubid::text, d.description,
                case when d.classoid = 'pg_class'::regclass and d.objsubid > 0 then
                  (select format('COLUMN %I.%I.%I', n.nspname, c.relname, a.attname)
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                     join pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid
                    where c.oid = d.objoid) end,
                case when d.classoid = 'pg_class'::regclass and d.objsubid = 0 then
                  (select format('INDEX %I.%I', n.nspname, c.relname)
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                    where c.oid = d.objoid and c.relkind in ('i', 'I')) end
           from pg_description d where d.objoid >= 16384",
    )? {
        let (class, oid, sub) = (r.s(0), r.n(1), r.i(2));
        let exact = by_addr.get(&(class.clone(), oid, sub)).cloned();
        let whole = by_addr.get(&(class.clone(), oid, 0)).cloned();
        match (exact, whole) {
            (Some(k), _) => {
                let Some(o) = cat.objects.get_mut(&k) else {
                    continue;
                };
                if k.kind == Kind::Constraint && o.addrs.first() != Some(&(class, oid, sub)) {
                    if let Some(idx) = r.o(5) {
                        o.sub_comments.insert(idx, r.s(3));
                    }
                } else {
                    o.comment = r.o(3);
                }
            }
            (None, Some(k)) if matches!(k.kind, Kind::View | Kind::MatView) => {
                if let (Some(o), Some(col)) = (cat.objects.get_mut(&k), r.o(4)) {
                    o.sub_comments.insert(col, r.s(3));
                }
            }
            _ => {}
        }
    }

    let mut edges = vec![];
    for r in rows(
        db,
        "select d.classid::regclass::text, d.objid::text, d.objsubid::text,
                d.refclassid::regclass::text, d.refobjid::text, d.refobjsubid::text, d.deptype
           from pg_depend d
          where d.deptype in ('n', 'a') and d.objid >= 16384 and d.refobjid >= 16384",
    )? {
        let (Some(from), Some(to)) = (find(&r.s(0), r.n(1), r.i(2)), find(&r.s(3), r.n(4), r.i(5)))
        else {
            continue;
        };
        // A sequence OWNED BY a column is created before the table and attached after it;
        // that link is not an ordering constraint (it would make a cycle with the default).
        if from.kind == Kind::Sequence && to.kind == Kind::Column {
            continue;
        }
        if from != to {
            edges.push((from.clone(), to.clone()));
        }
    }
    for (from, to) in edges {
        if let Some(o) = cat.objects.get_mut(&from) {
            o.deps.insert(to);
        }
    }
    // The parent and the schema, whatever pg_depend recorded.
    let keys: Vec<Key> = cat.objects.keys().cloned().collect();
    for k in keys {
        let o = &cat.objects[&k];
        let mut extra = vec![];
        if let Some(p) = &o.parent {
            extra.push(p.clone());
        }
        if let Some(s) = o.extra.get("schema") {
            extra.push(Key::new(Kind::Schema, s.clone()));
        }
        let o = cat.objects.get_mut(&k).unwrap();
        for e in extra {
            if e != k {
                o.deps.insert(e);
            }
        }
    }
    // Keep only dependencies on objects this catalog knows.
    let known: std::collections::HashSet<Key> = cat.objects.keys().cloned().collect();
    for o in cat.objects.values_mut() {
        o.deps.retain(|d| known.contains(d));
    }
    Ok(())
}

/// A catalog row as text: every query casts its columns to text, so one reader serves all.
pub(crate) struct Row(Vec<Option<String>>);

impl Row {
    pub fn s(&self, i: usize) -> String {
        self.0.get(i).cloned().flatten().unwrap_or_default()
    }
    pub fn o(&self, i: usize) -> Option<String> {
        self.0.get(i).cloned().flatten().filter(|s| !s.is_empty())
    }
    /// A boolean column (`::text` prints `true`, the simple protocol `t`).
    pub fn b(&self, i: usize) -> bool {
        matches!(self.s(i).as_str(), "t" | "true")
    }
    pub fn n(&self, i: usize) -> u32 {
        self.s(i).parse().unwrap_or(0)
    }
    pub fn i(&self, i: usize) -> i32 {
        self.s(i).parse().unwrap_or(0)
    }
    /// A JSON array column (`json_agg`, `array_to_json`); empty when NULL.
    pub fn list(&self, i: usize) -> Vec<serde_json::Value> {
        self.o(i)
            .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(&s).ok())
            .unwrap_or_default()
    }
    /// A JSON array of strings, joined (`reloptions`, roles).
    pub fn strings(&self, i: usize) -> Vec<String> {
        self.list(i)
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            })
            .collect()
    }
    /// An ACL column (see `acl`): one grant per line.
    pub fn acl(&self, i: usize) -> std::collections::BTreeSet<String> {
        self.s(i)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

pub(crate) fn rows(db: &Db, sql: &str) -> Result<Vec<Row>> {
    let out = db
        .run(sql)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading the catalogs of {}", db.label))?;
    Ok(out.rows.into_iter().map(Row).collect())
}

/// The condition that keeps system schemas out.
/// The user's schemas: not the system's, and not `_lakelet` (the agents' guard, which
/// lakelet installs on every compute).
pub(crate) const USER_NS: &str =
    "n.nspname !~ '^pg_' and n.nspname not in ('information_schema', '_lakelet')";

/// The condition that keeps objects an extension owns out.
pub(crate) fn not_ext(catalog: &str, oid: &str) -> String {
    format!(
        "not exists (select 1 from pg_depend ext_dep where ext_dep.classid = '{catalog}'::regclass \
         and ext_dep.objid = {oid} and ext_dep.deptype = 'e')"
    )
}

/// An ACL as lines `grantee PRIVILEGE[ +]`, the owner's own rights left out (they follow
/// ownership). `kind` is `acldefault`'s letter; NULL means the default for that kind.
pub(crate) fn acl(column: &str, kind: char, owner: &str) -> String {
    format!(
        "(select string_agg(x, E'\\n' order by x) from (select \
           case when a.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(a.grantee)) end \
           || ' ' || a.privilege_type || case when a.is_grantable then ' +' else '' end as x \
         from aclexplode(coalesce({column}, acldefault('{kind}', {owner}))) a \
         where a.grantee <> {owner}) s)"
    )
}

pub(crate) fn addr(class: &str, oid: u32, sub: i32) -> Addr {
    (class.to_string(), oid, sub)
}
