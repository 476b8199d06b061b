//! From two catalogs to a list of changes and a migration script.
//!
//! 1. Classify every identity: added, dropped, altered in place (`alter.rs`), or replaced
//!    (dropped and created again, when Postgres has no ALTER for the difference).
//! 2. Propagate: whatever depends (pg_depend, on the base) on a dropped or replaced object,
//!    or on a column whose type changes, is rebuilt too, if it holds no data (views,
//!    functions, policies, triggers, …); a column whose type is replaced is converted; a
//!    default that calls a dropped function is detached first.
//! 3. Emit in four phases: (1) drop what is replaced and the dependents in the way, in reverse
//!    base order; (2) create and alter in target dependency order; (3) drop the rest
//!    (columns, tables, types, functions, schemas) in reverse base order; (4) validations and
//!    attachments that need everything in place.

pub mod alter;
mod alter_types;
pub mod ddl;
pub mod meta;
mod order;
mod rebuild;
mod renames;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::catalog::Catalog;
use super::model::{Key, Kind, Object};

/// One SQL statement of the migration.
#[derive(Debug, Clone, Serialize)]
pub struct Stmt {
    pub sql: String,
    /// False for statements that run on their own, between the script's transaction
    /// groups: those Postgres refuses inside a transaction block (CONCURRENTLY), enum values a
    /// later group uses, and the long scans of an online form (VALIDATE, a backfill), which
    /// inside a group would hold the group's ACCESS EXCLUSIVE locks while they run.
    pub transactional: bool,
}

impl Stmt {
    pub fn tx(sql: String) -> Stmt {
        Stmt {
            sql,
            transactional: true,
        }
    }
    pub fn no_tx(sql: String) -> Stmt {
        Stmt {
            sql,
            transactional: false,
        }
    }
}

/// What a change costs or risks, in words a reviewer acts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Hazard {
    /// `deletes-data`, `rewrites-table`, `access-exclusive`, `builds-index`, `validates`,
    /// `breaks-dependents`, `possible-rename`, `manual`, `may-fail`, …
    pub code: &'static str,
    pub message: String,
}

impl Hazard {
    pub fn new(code: &'static str, message: impl Into<String>) -> Hazard {
        Hazard {
            code,
            message: message.into(),
        }
    }
    pub fn access_exclusive(why: &str) -> Hazard {
        Hazard::new(
            "access-exclusive",
            format!("takes an ACCESS EXCLUSIVE lock on the table ({why})"),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Add,
    Drop,
    Alter,
    /// Dropped and created again.
    Replace,
    /// The same definition under a new name (indexes and constraints, where the catalogs
    /// prove it).
    Rename,
}

/// One object that differs, with what the migration does about it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: Kind,
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub action: Action,
    /// What differs, one line each (`type: integer → bigint`).
    pub details: Vec<String>,
    pub hazards: Vec<Hazard>,
    /// This change's statements, in script order.
    pub sql: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub script: Vec<Stmt>,
}

/// A change while the plan is being built.
pub(super) struct Work {
    action: Action,
    details: Vec<String>,
    pub(super) hazards: Vec<Hazard>,
    pre: Vec<Stmt>,
    main: Vec<Stmt>,
    post: Vec<Stmt>,
    /// Dropped in phase 1 (else phase 3 for drops).
    drop: Option<Stmt>,
    late_drop: Option<Stmt>,
}

impl Work {
    fn new(action: Action) -> Work {
        Work {
            action,
            details: vec![],
            hazards: vec![],
            pre: vec![],
            main: vec![],
            post: vec![],
            drop: None,
            late_drop: None,
        }
    }
}

/// Kinds whose drop goes first (they only get in the way); the rest are dropped last, when
/// nothing refers to them any more.
fn drops_early(k: Kind) -> bool {
    matches!(
        k,
        Kind::View
            | Kind::MatView
            | Kind::Trigger
            | Kind::Policy
            | Kind::Constraint
            | Kind::Index
            | Kind::EventTrigger
    )
}

pub fn plan(base: &Catalog, target: &Catalog) -> Plan {
    let mut keys: BTreeSet<&Key> = base.objects.keys().collect();
    keys.extend(target.objects.keys());

    let mut added: BTreeSet<Key> = BTreeSet::new();
    let mut dropped: BTreeSet<Key> = BTreeSet::new();
    let mut replaced: BTreeMap<Key, String> = BTreeMap::new();
    let mut altered: BTreeMap<Key, alter::InPlace> = BTreeMap::new();
    let mut meta_only: BTreeSet<Key> = BTreeSet::new();
    // Tables a DETACH takes out of their parent: what they inherited becomes their own, and
    // what the target lacks of it must then be dropped.
    let detached: BTreeSet<Key> = base
        .objects
        .values()
        .filter(|b| b.key.kind == Kind::Table && !b.prop("partition_of").is_empty())
        .filter(|b| {
            target
                .get(&b.key)
                .is_some_and(|t| t.prop("partition_of") != b.prop("partition_of"))
        })
        .map(|b| b.key.clone())
        .collect();
    let of_detached = |o: &Object| o.parent.as_ref().is_some_and(|p| detached.contains(p));
    for k in keys {
        // What a table inherits (a partition's columns, constraints and indexes) changes with
        // its parent: planned there, unless one side holds it as the table's own (after a
        // DETACH, before an ATTACH).
        let left_by_detach = target.get(k).is_none() && base.get(k).is_some_and(of_detached);
        if inherited_or_absent(base.get(k)) && inherited_or_absent(target.get(k)) && !left_by_detach
        {
            continue;
        }
        match (base.get(k), target.get(k)) {
            (None, Some(_)) => {
                added.insert(k.clone());
            }
            (Some(_), None) => {
                dropped.insert(k.clone());
            }
            (Some(b), Some(t)) => {
                if b.props != t.props {
                    match alter::alter(b, t) {
                        Ok(a) => {
                            altered.insert(k.clone(), a);
                        }
                        Err(why) => {
                            replaced.insert(k.clone(), why);
                        }
                    }
                } else if b.owner != t.owner
                    || b.comment != t.comment
                    || b.acl != t.acl
                    || b.sub_comments != t.sub_comments
                {
                    meta_only.insert(k.clone());
                }
            }
            (None, None) => unreachable!(),
        }
    }

    // Postgres cannot change the type of a partition key column: its table is rebuilt.
    let key_retyped: Vec<(Key, Key)> = altered
        .keys()
        .filter(|k| k.kind == Kind::Column)
        .filter_map(|k| {
            let (b, t) = (base.get(k)?, target.get(k)?);
            let table = base.get(b.parent.as_ref()?)?;
            let in_key = table
                .prop("partition_by")
                .split(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '"'))
                .any(|w| w == b.local);
            (in_key && b.prop("type") != t.prop("type")).then(|| (k.clone(), table.key.clone()))
        })
        .collect();
    for (col, table) in key_retyped {
        altered.remove(&col);
        if target.get(&table).is_some() {
            replaced.insert(
                table,
                format!("the type of its partition key column {} changes", col.name),
            );
        }
    }

    let renames = renames::renames(base, target, &mut added, &mut dropped);

    // Who uses what, on the base.
    let mut users: HashMap<&Key, Vec<&Key>> = HashMap::new();
    for o in base.objects.values() {
        for d in &o.deps {
            users.entry(d).or_default().push(&o.key);
        }
    }
    let gone_parent = |o: &Object, dropped: &BTreeSet<Key>, replaced: &BTreeMap<Key, String>| {
        o.parent
            .as_ref()
            .is_some_and(|p| dropped.contains(p) || replaced.contains_key(p))
    };

    // Propagate. `why[k]` lists what k's change forces (for its hazards).
    let mut forced: BTreeMap<Key, Vec<Key>> = BTreeMap::new();
    let mut retype: BTreeSet<Key> = BTreeSet::new();
    let mut detach: BTreeSet<Key> = BTreeSet::new();
    let mut manual: Vec<(Key, String)> = vec![];
    let mut queue: Vec<(Key, bool)> = dropped
        .iter()
        .map(|k| (k.clone(), true))
        .chain(replaced.keys().map(|k| (k.clone(), true)))
        .chain(
            altered
                .iter()
                .filter(|(_, a)| a.disturbs)
                .map(|(k, _)| (k.clone(), false)),
        )
        .collect();
    while let Some((k, removed)) = queue.pop() {
        // Views and rules depend on a table's columns, not the table: a table created again
        // takes them along too.
        if removed && k.kind == Kind::Table {
            for c in base.children(&k).filter(|c| c.key.kind == Kind::Column) {
                queue.push((c.key.clone(), true));
            }
        }
        for u in users.get(&k).cloned().unwrap_or_default() {
            if dropped.contains(u) || replaced.contains_key(u) {
                continue;
            }
            let Some(bo) = base.get(u) else { continue };
            if gone_parent(bo, &dropped, &replaced) {
                // Its table (or view) is created again: so is it, if the target keeps it.
                // Its drop comes with the table's.
                if removed
                    && u.kind != Kind::Column
                    && target.get(u).is_some_and(|t| !inherited(t))
                    && !added.contains(u)
                {
                    replaced.insert(u.clone(), format!("{k} is created again"));
                    queue.push((u.clone(), true));
                }
                continue;
            }
            let generated = u.kind == Kind::Column && !bo.prop("generated").is_empty();
            if !removed {
                // A column's type changes: Postgres rebuilds indexes and constraints itself,
                // but refuses while views, rules, policies or triggers use the column.
                if matches!(u.kind, Kind::Index | Kind::Constraint | Kind::Column) && !generated {
                    continue;
                }
            }
            if u.kind.rebuildable() || generated || u.kind == Kind::Table {
                replaced.insert(u.clone(), format!("it depends on {k}, which changes"));
                forced.entry(k.clone()).or_default().push(u.clone());
                queue.push((u.clone(), true));
            } else if u.kind == Kind::Column {
                if k.kind.is_type() && replaced.contains_key(&k) {
                    if retype.insert(u.clone()) {
                        queue.push((u.clone(), false));
                    }
                } else if matches!(k.kind, Kind::Function | Kind::Sequence | Kind::Procedure) {
                    detach.insert(u.clone());
                } else {
                    manual.push((k.clone(), format!("{u} uses it; convert or drop it first")));
                }
            }
        }
    }
    // A replaced table takes its constraints, indexes, triggers and policies with it.
    let replaced_tables: Vec<Key> = replaced
        .keys()
        .filter(|k| k.kind == Kind::Table)
        .cloned()
        .collect();
    for tk in &replaced_tables {
        for c in target.children(tk) {
            if c.key.kind != Kind::Column && !added.contains(&c.key) && !inherited(c) {
                replaced
                    .entry(c.key.clone())
                    .or_insert_with(|| format!("its table {tk} is created again"));
            }
        }
        for c in base.children(tk) {
            altered.remove(&c.key);
            meta_only.remove(&c.key);
        }
    }
    for k in replaced.keys() {
        altered.remove(k);
        meta_only.remove(k);
    }

    let rebuild = rebuild::find(base, target, &replaced);

    let mut work: BTreeMap<Key, Work> = BTreeMap::new();
    // Creations (added and replaced) use the target's definition.
    let fresh = |o: &Object, added: &BTreeSet<Key>, replaced: &BTreeMap<Key, String>| {
        o.parent
            .as_ref()
            .is_some_and(|p| added.contains(p) || replaced.contains_key(p))
    };
    for k in added.iter().chain(replaced.keys()) {
        let t = &target.objects[k];
        let mut w = Work::new(if added.contains(k) {
            Action::Add
        } else {
            Action::Replace
        });
        let inline = k.kind == Kind::Column && fresh(t, &added, &replaced);
        if !inline {
            let c = ddl::create(t, target, fresh(t, &added, &replaced));
            w.main = c.main;
            w.post = c.post;
            w.hazards = c.hazards;
        }
        if let Some(why) = replaced.get(k) {
            let b = &base.objects[k];
            w.details.push(format!("dropped and created again: {why}"));
            w.details.extend(prop_changes(b, t));
            if !gone_parent(b, &dropped, &replaced) {
                w.drop = Some(ddl::drop(b));
            } else if rebuild.parent_rebuilt(b) {
                w.drop = rebuild.old_child(b);
            }
            if matches!(k.kind, Kind::Table | Kind::Column) && !bo_generated(b) {
                w.hazards.push(Hazard::new(
                    "deletes-data",
                    "dropped and created again: its rows are lost unless copied first",
                ));
            }
            if rebuild.tables.contains(k) {
                rebuild.table(b, t, base, target, &mut w);
            } else if rebuild.old_parts.contains(k) {
                rebuild.old_part(b, &mut w);
            }
        }
        w.main.extend(meta::meta(None, t, target, base));
        // identity → serial: the new sequence starts past the rows already there.
        if k.kind == Kind::Sequence && added.contains(k) && !t.prop("owned_by").is_empty() {
            let col = Key::new(Kind::Column, t.prop("owned_by"));
            if let (Some(_), Some(tc)) = (base.get(&col), target.get(&col)) {
                w.post
                    .push(rebuild::continue_after_max(ddl::parent(tc), tc));
            }
        }
        work.insert(k.clone(), w);
    }
    for (from, to) in &renames {
        let (b, t) = (&base.objects[from], &target.objects[to]);
        let mut w = Work::new(Action::Rename);
        w.details.push(format!("renamed from {}", b.local));
        w.main.push(Stmt::tx(match to.kind {
            Kind::Index => format!("ALTER INDEX {} RENAME TO {}", from.name, t.local),
            _ => format!(
                "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                ddl::parent(t),
                b.local,
                t.local
            ),
        }));
        w.main.extend(meta::meta(Some(b), t, target, base));
        work.insert(to.clone(), w);
    }
    for (k, a) in std::mem::take(&mut altered) {
        let (b, t) = (&base.objects[&k], &target.objects[&k]);
        let mut w = Work::new(Action::Alter);
        w.details = prop_changes(b, t);
        w.pre = a.pre;
        w.main = a.main;
        w.post = a.post;
        w.hazards = a.hazards;
        w.main.extend(meta::meta(Some(b), t, target, base));
        work.insert(k, w);
    }
    for k in &meta_only {
        let (b, t) = (&base.objects[k], &target.objects[k]);
        let mut w = Work::new(Action::Alter);
        w.details = meta_changes(b, t);
        w.main = meta::meta(Some(b), t, target, base);
        work.insert(k.clone(), w);
    }
    // Columns converted to a replaced type, defaults detached from a dropped function.
    for k in retype.iter().chain(detach.iter()) {
        let (Some(b), Some(t)) = (base.get(k), target.get(k)) else {
            continue;
        };
        let mut b2 = b.clone();
        if retype.contains(k) {
            b2.extra.insert("retype", "true".into());
        }
        if detach.contains(k) {
            b2.props.remove("default");
        }
        let a = alter::alter(&b2, t).unwrap_or_default();
        let w = work.entry(k.clone()).or_insert_with(|| {
            let mut w = Work::new(Action::Alter);
            w.details = prop_changes(b, t);
            w.main.extend(meta::meta(Some(b), t, target, base));
            w
        });
        // The column's own in-place statements are superseded by the forced ones.
        w.main.retain(|s| !s.sql.starts_with("ALTER TABLE"));
        let mut main = a.main;
        main.extend(std::mem::take(&mut w.main));
        w.main = main;
        w.post = a.post;
        w.hazards.extend(a.hazards);
        if detach.contains(k) && !b.prop("default").is_empty() {
            w.pre.push(Stmt::tx(format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT",
                ddl::parent(b),
                b.local
            )));
            w.details
                .push("its default is detached while what it calls is replaced".into());
        }
        if retype.contains(k) {
            w.details
                .push("converted to the re-created type through its text form".into());
        }
    }
    for k in &dropped {
        let b = &base.objects[k];
        if rebuild.old_parts.contains(k) {
            // Its rows are copied with its parent's; it goes with the old parent.
            continue;
        }
        if gone_parent(b, &dropped, &replaced) {
            if rebuild.parent_rebuilt(b) {
                if let Some(s) = rebuild.old_child(b) {
                    let mut w = Work::new(Action::Drop);
                    w.drop = Some(s);
                    work.insert(k.clone(), w);
                }
            }
            continue;
        }
        // A sequence owned by a dropped column or table goes with it.
        if k.kind == Kind::Sequence && !b.prop("owned_by").is_empty() {
            let col = Key::new(Kind::Column, b.prop("owned_by"));
            let table = base.get(&col).and_then(|c| c.parent.clone());
            if dropped.contains(&col) || table.is_some_and(|t| dropped.contains(&t)) {
                continue;
            }
        }
        let mut w = Work::new(Action::Drop);
        let stmt = if k.kind == Kind::DefaultPrivileges {
            // First: its schema may be dropped later in the script.
            w.pre = meta::grants(&b.acl, &meta::default_acl(b), b);
            None
        } else {
            Some(ddl::drop(b))
        };
        // A generated column holds nothing that is not computed from others, and while it
        // exists the columns it reads cannot change type: it goes first.
        // A serial's sequence whose name a new identity takes goes before the identity comes.
        let name_taken = k.kind == Kind::Sequence
            && target.objects.values().any(|c| {
                c.key.kind == Kind::Column
                    && c.prop("identity_options")
                        .strip_prefix("SEQUENCE NAME ")
                        .and_then(|x| x.split(' ').next())
                        == Some(k.name.as_str())
            });
        if of_detached(b) && inherited(b) {
            // After the DETACH (phase 2) that made it the table's own.
            w.late_drop = stmt;
        } else if drops_early(k.kind) || bo_generated(b) || name_taken {
            w.drop = stmt;
        } else {
            w.late_drop = stmt;
        }
        match k.kind {
            Kind::Table => w.hazards.push(Hazard::new(
                "deletes-data",
                "the table and its rows are dropped",
            )),
            Kind::Column => w.hazards.push(Hazard::new(
                "deletes-data",
                "the column's values are dropped (ACCESS EXCLUSIVE, no rewrite)",
            )),
            Kind::MatView => {}
            Kind::Index => w.hazards.push(Hazard::new(
                "slower-queries",
                "queries that used this index fall back to other plans",
            )),
            _ => {}
        }
        work.insert(k.clone(), w);
    }

    // Replaced types that columns still use are renamed aside, not dropped: the columns are
    // converted to the new type, then the old one goes.
    for k in replaced.keys().filter(|k| k.kind.is_type()) {
        let users_of: Vec<&Key> = users
            .get(k)
            .into_iter()
            .flatten()
            .copied()
            .filter(|u| retype.contains(*u))
            .collect();
        if users_of.is_empty() {
            continue;
        }
        let b = &base.objects[k];
        let local = k.name.rsplit_once('.').map(|x| x.1).unwrap_or(&k.name);
        let aside =
            crate::migrate::db::quote_ident(&format!("{}__lakelet_old", local.trim_matches('"')));
        let schema = b.extra("schema");
        let w = work.get_mut(k).unwrap();
        w.drop = Some(Stmt::tx(format!(
            "ALTER {} {} RENAME TO {aside}",
            k.kind.keyword(),
            k.name
        )));
        w.late_drop = Some(Stmt::tx(format!(
            "DROP {} {schema}.{aside}",
            k.kind.keyword()
        )));
        w.hazards.push(Hazard::new(
            "rewrites-table",
            format!(
                "{} column(s) are converted to the new type through text, rewriting their tables; values the new type rejects make it fail",
                users_of.len()
            ),
        ));
    }

    // Hazards that name what a change forces.
    for (k, us) in &forced {
        if let Some(w) = work.get_mut(k) {
            let list: Vec<String> = us.iter().map(|u| u.to_string()).collect();
            w.hazards.push(Hazard::new(
                "breaks-dependents",
                format!(
                    "dropped and created again around this change: {}",
                    list.join(", ")
                ),
            ));
        }
    }
    for (k, msg) in manual {
        if let Some(w) = work.get_mut(&k) {
            w.hazards.push(Hazard::new("manual", msg));
        }
    }
    renames::possible_renames(base, target, &added, &dropped, &mut work);

    // Emit.
    let rank_b = order::ranks(base, false);
    let rank_t = order::ranks(target, true);
    let by = |r: &HashMap<Key, usize>, k: &Key| r.get(k).copied().unwrap_or(usize::MAX);
    let mut sql_of: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let mut script = vec![];
    let mut push = |k: &Key, s: &Stmt, script: &mut Vec<Stmt>| {
        if s.sql.is_empty() {
            return;
        }
        sql_of.entry(k.clone()).or_default().push(s.sql.clone());
        script.push(s.clone());
    };
    let mut phase1: Vec<&Key> = work.keys().filter(|k| base.get(k).is_some()).collect();
    phase1.sort_by_key(|k| std::cmp::Reverse(by(&rank_b, k)));
    for k in &phase1 {
        let w = &work[*k];
        for s in &w.pre {
            push(k, s, &mut script);
        }
        if let Some(s) = &w.drop {
            push(k, s, &mut script);
        }
    }
    let mut phase2: Vec<&Key> = work.keys().filter(|k| target.get(k).is_some()).collect();
    phase2.sort_by_key(|k| by(&rank_t, k));
    // Default privileges change last: objects created above get the base's, as the
    // creation ACLs assumed.
    let last = |k: &Key| k.kind == Kind::DefaultPrivileges;
    for k in phase2.iter().filter(|k| !last(k)) {
        for s in &work[*k].main {
            push(k, s, &mut script);
        }
    }
    for k in &phase1 {
        if let Some(s) = &work[*k].late_drop {
            push(k, s, &mut script);
        }
    }
    for k in &phase2 {
        for s in &work[*k].post {
            push(k, s, &mut script);
        }
    }
    for k in work.keys().filter(|k| last(k)) {
        for s in &work[k].main {
            push(k, s, &mut script);
        }
    }

    let mut changes: Vec<Change> = work
        .into_iter()
        .map(|(k, w)| {
            let obj = target.get(&k).or_else(|| base.get(&k)).unwrap();
            let mut hazards = w.hazards;
            hazards.sort();
            hazards.dedup();
            Change {
                kind: k.kind,
                parent: obj.parent.as_ref().map(|p| p.name.clone()),
                sql: sql_of.remove(&k).unwrap_or_default(),
                object: k.name,
                action: w.action,
                details: w.details,
                hazards,
            }
        })
        .collect();
    changes.sort_by(|a, b| {
        let ga = a.parent.as_deref().unwrap_or(&a.object);
        let gb = b.parent.as_deref().unwrap_or(&b.object);
        (ga, a.parent.is_some(), a.kind, &a.object).cmp(&(
            gb,
            b.parent.is_some(),
            b.kind,
            &b.object,
        ))
    });
    Plan { changes, script }
}

/// Whether `o` is there only because its table inherits it (the catalog's `inherited`), not
/// also declared by the table itself (`not_local`: a column or CHECK a table declared before
/// it was attached stays when the parent drops it; an index has no such notion).
fn inherited(o: &Object) -> bool {
    o.extra("inherited") == "true" && (o.key.kind == Kind::Index || o.extra("not_local") == "true")
}

fn inherited_or_absent(o: Option<&Object>) -> bool {
    o.is_none_or(inherited)
}

fn bo_generated(o: &Object) -> bool {
    o.key.kind == Kind::Column && !o.prop("generated").is_empty()
}

/// `type: integer → bigint`; long values (definitions) are named, not shown.
fn prop_changes(b: &Object, t: &Object) -> Vec<String> {
    let mut out = vec![];
    let keys: BTreeSet<&&str> = b.props.keys().chain(t.props.keys()).collect();
    for k in keys {
        let (x, y) = (b.prop(k), t.prop(k));
        if x == y {
            continue;
        }
        let short = |s: &str| s.len() <= 60 && !s.contains('\n');
        let show = |s: &str| {
            if s.is_empty() {
                "(none)".to_string()
            } else {
                s.to_string()
            }
        };
        if short(x) && short(y) {
            out.push(format!("{k}: {} → {}", show(x), show(y)));
        } else {
            out.push(format!("{k} changes"));
        }
    }
    out.extend(meta_changes(b, t));
    out
}

fn meta_changes(b: &Object, t: &Object) -> Vec<String> {
    let mut out = vec![];
    if b.owner != t.owner {
        out.push(format!(
            "owner: {} → {}",
            b.owner.as_deref().unwrap_or("?"),
            t.owner.as_deref().unwrap_or("?")
        ));
    }
    if b.comment != t.comment {
        out.push("comment changes".into());
    }
    for (r, c) in &t.sub_comments {
        if b.sub_comments.get(r) != Some(c) {
            let (kw, name) = r.split_once(' ').unwrap_or((r, ""));
            out.push(format!("comment on {} {name} changes", kw.to_lowercase()));
        }
    }
    for g in t.acl.difference(&b.acl) {
        out.push(format!("grant {g}"));
    }
    for g in b.acl.difference(&t.acl) {
        out.push(format!("revoke {g}"));
    }
    out
}
