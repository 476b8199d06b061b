//! The planner on hand-built catalogs: what must come before what, and which changes are
//! in place. (The oracle in tests/diff.rs proves the SQL on real Postgres.)

use super::*;
use crate::diff::catalog::Catalog;
use crate::diff::model::{Key, Kind, Object};

fn obj(kind: Kind, name: &str, props: &[(&'static str, &str)]) -> Object {
    let mut o = Object::new(kind, name);
    for (k, v) in props {
        o.set(k, *v);
    }
    o
}

fn child(kind: Kind, table: &str, local: &str, props: &[(&'static str, &str)]) -> Object {
    let mut o = obj(kind, &format!("{table}.{local}"), props);
    o.local = local.into();
    o.parent = Some(Key::new(Kind::Table, table));
    o.deps.insert(Key::new(Kind::Table, table));
    o
}

fn cat(objects: Vec<Object>) -> Catalog {
    Catalog {
        objects: objects.into_iter().map(|o| (o.key.clone(), o)).collect(),
        server_version: 150000,
        user: "postgres".into(),
    }
}

fn pos(p: &Plan, needle: &str) -> usize {
    p.script
        .iter()
        .position(|s| s.sql.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {:#?}", p.script))
}

fn table(name: &str) -> Object {
    obj(Kind::Table, name, &[])
}

#[test]
fn a_column_retype_rebuilds_the_views_over_it_around_the_alter() {
    let col = |ty| child(Kind::Column, "public.t", "a", &[("type", ty)]);
    let mut v1 = obj(
        Kind::View,
        "public.v1",
        &[("definition", "SELECT a FROM public.t")],
    );
    v1.deps.insert(Key::new(Kind::Column, "public.t.a"));
    let mut v2 = obj(
        Kind::View,
        "public.v2",
        &[("definition", "SELECT a FROM public.v1")],
    );
    v2.deps.insert(Key::new(Kind::View, "public.v1"));
    let base = cat(vec![
        table("public.t"),
        col("integer"),
        v1.clone(),
        v2.clone(),
    ]);
    let target = cat(vec![table("public.t"), col("bigint"), v1, v2]);
    let p = plan(&base, &target);
    // Dependents go first (v2 before v1), come back after, in dependency order.
    assert!(pos(&p, "DROP VIEW public.v2") < pos(&p, "DROP VIEW public.v1"));
    assert!(pos(&p, "DROP VIEW public.v1") < pos(&p, "TYPE bigint"));
    assert!(pos(&p, "TYPE bigint") < pos(&p, "CREATE VIEW public.v1"));
    assert!(pos(&p, "CREATE VIEW public.v1") < pos(&p, "CREATE VIEW public.v2"));
    let c = p.changes.iter().find(|c| c.object == "public.t.a").unwrap();
    assert!(c.hazards.iter().any(|h| h.code == "breaks-dependents"));
    assert!(c.hazards.iter().any(|h| h.code == "rewrites-table"));
    assert_eq!(
        p.changes
            .iter()
            .filter(|c| c.action == Action::Replace)
            .count(),
        2
    );
}

#[test]
fn a_binary_compatible_retype_is_not_called_a_rewrite() {
    let col = |ty| child(Kind::Column, "public.t", "a", &[("type", ty)]);
    let base = cat(vec![table("public.t"), col("character varying(10)")]);
    let target = cat(vec![table("public.t"), col("character varying(50)")]);
    let p = plan(&base, &target);
    let h = &p.changes[0].hazards;
    assert!(h.iter().all(|h| h.code != "rewrites-table"), "{h:?}");
    assert!(h.iter().any(|h| h.code == "access-exclusive"));
}

#[test]
fn a_default_calling_a_dropped_function_is_detached_first() {
    let f = obj(
        Kind::Function,
        "public.f()",
        &[("definition", "CREATE FUNCTION f")],
    );
    let mut col = child(
        Kind::Column,
        "public.t",
        "a",
        &[("type", "integer"), ("default", "public.f()")],
    );
    col.deps.insert(Key::new(Kind::Function, "public.f()"));
    let bare = child(Kind::Column, "public.t", "a", &[("type", "integer")]);
    let p = plan(
        &cat(vec![table("public.t"), col, f]),
        &cat(vec![table("public.t"), bare]),
    );
    assert!(pos(&p, "DROP DEFAULT") < pos(&p, "DROP FUNCTION public.f()"));
    assert_eq!(
        p.script
            .iter()
            .filter(|s| s.sql.contains("DROP DEFAULT"))
            .count(),
        1
    );
}

#[test]
fn new_objects_follow_their_dependencies_and_new_tables_carry_their_columns() {
    let e = obj(Kind::Enum, "public.mood", &[("labels", r#"["a","b"]"#)]);
    let mut c = child(Kind::Column, "public.t", "m", &[("type", "public.mood")]);
    c.deps.insert(Key::new(Kind::Enum, "public.mood"));
    let mut idx = obj(
        Kind::Index,
        "public.t_m",
        &[("definition", "CREATE INDEX t_m ON public.t USING btree (m)")],
    );
    idx.parent = Some(Key::new(Kind::Table, "public.t"));
    idx.deps.insert(Key::new(Kind::Column, "public.t.m"));
    let p = plan(&cat(vec![]), &cat(vec![table("public.t"), c, e, idx]));
    assert!(pos(&p, "CREATE TYPE public.mood") < pos(&p, "CREATE TABLE public.t"));
    assert!(p.script[pos(&p, "CREATE TABLE public.t")]
        .sql
        .contains("m public.mood"));
    // A new table has no rows: its index is built plainly, inside the transaction.
    let i = pos(&p, "CREATE INDEX t_m");
    assert!(p.script[i].transactional && !p.script[i].sql.contains("CONCURRENTLY"));
    assert!(!p.script.iter().any(|s| s.sql.contains("ADD COLUMN")));
}

#[test]
fn constraints_and_indexes_on_existing_tables_are_added_online() {
    let fk = child(
        Kind::Constraint,
        "public.t",
        "t_u_fkey",
        &[
            ("type", "f"),
            ("definition", "FOREIGN KEY (u) REFERENCES public.u(id)"),
        ],
    );
    let mut pk = child(
        Kind::Constraint,
        "public.t",
        "t_pkey",
        &[("type", "p"), ("definition", "PRIMARY KEY (id)")],
    );
    pk.note(
        "index",
        "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)",
    );
    let mut idx = obj(
        Kind::Index,
        "public.t_x",
        &[("definition", "CREATE INDEX t_x ON public.t USING btree (x)")],
    );
    idx.parent = Some(Key::new(Kind::Table, "public.t"));
    let p = plan(
        &cat(vec![table("public.t")]),
        &cat(vec![table("public.t"), fk, pk, idx]),
    );
    let sql: Vec<&str> = p.script.iter().map(|s| s.sql.as_str()).collect();
    assert!(sql.contains(&"ALTER TABLE public.t ADD CONSTRAINT t_u_fkey FOREIGN KEY (u) REFERENCES public.u(id) NOT VALID"));
    assert!(pos(&p, "NOT VALID") < pos(&p, "VALIDATE CONSTRAINT t_u_fkey"));
    assert!(sql.contains(&"CREATE UNIQUE INDEX CONCURRENTLY t_pkey ON public.t USING btree (id)"));
    assert!(pos(&p, "INDEX CONCURRENTLY t_pkey") < pos(&p, "PRIMARY KEY USING INDEX t_pkey"));
    assert!(!p.script[pos(&p, "CREATE INDEX CONCURRENTLY t_x")].transactional);
}

#[test]
fn enum_values_are_added_in_place_renamed_in_place_or_the_type_is_replaced() {
    let e = |labels: &str| obj(Kind::Enum, "public.e", &[("labels", labels)]);
    let p = plan(
        &cat(vec![e(r#"["a","c"]"#)]),
        &cat(vec![e(r#"["x","a","b","c","d"]"#)]),
    );
    let sql: Vec<&str> = p.script.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        sql,
        [
            "ALTER TYPE public.e ADD VALUE 'x' BEFORE 'a'",
            "ALTER TYPE public.e ADD VALUE 'b' AFTER 'a'",
            "ALTER TYPE public.e ADD VALUE 'd' AFTER 'c'",
        ]
    );
    let p = plan(&cat(vec![e(r#"["a","b"]"#)]), &cat(vec![e(r#"["a","B"]"#)]));
    assert_eq!(
        p.script[0].sql,
        "ALTER TYPE public.e RENAME VALUE 'b' TO 'B'"
    );
    let p = plan(
        &cat(vec![e(r#"["a","b","c"]"#)]),
        &cat(vec![e(r#"["a","c"]"#)]),
    );
    assert_eq!(p.changes[0].action, Action::Replace);
}

#[test]
fn a_renamed_index_is_renamed_not_rebuilt_and_a_lookalike_column_is_flagged() {
    let idx = |name: &str| {
        let mut o = obj(
            Kind::Index,
            &format!("public.{name}"),
            &[(
                "definition",
                &format!("CREATE INDEX {name} ON public.t USING btree (a)"),
            )],
        );
        o.local = name.into();
        o.parent = Some(Key::new(Kind::Table, "public.t"));
        o
    };
    let col = |n: &str| child(Kind::Column, "public.t", n, &[("type", "text")]);
    let p = plan(
        &cat(vec![table("public.t"), idx("old_i"), col("nick")]),
        &cat(vec![table("public.t"), idx("new_i"), col("handle")]),
    );
    assert!(p
        .script
        .iter()
        .any(|s| s.sql == "ALTER INDEX public.old_i RENAME TO new_i"));
    assert!(!p.script.iter().any(|s| s.sql.contains("CREATE INDEX")));
    let flagged = p
        .changes
        .iter()
        .filter(|c| c.hazards.iter().any(|h| h.code == "possible-rename"))
        .count();
    assert_eq!(flagged, 2);
}

#[test]
fn equal_catalogs_give_no_changes_and_the_order_survives_a_cycle() {
    let mut a = obj(Kind::Function, "public.a()", &[("definition", "x")]);
    let mut b = obj(Kind::Function, "public.b()", &[("definition", "y")]);
    a.deps.insert(b.key.clone());
    b.deps.insert(a.key.clone());
    // What a new function has anyway: no grants to emit.
    for f in [&mut a, &mut b] {
        f.acl.insert("PUBLIC EXECUTE".into());
    }
    let c = cat(vec![a, b]);
    assert!(plan(&c, &c).changes.is_empty());
    let p = plan(&cat(vec![]), &c);
    assert_eq!(p.script.len(), 2);
    assert_eq!(plan(&cat(vec![]), &c).script[0].sql, p.script[0].sql);
}

#[test]
fn helpers() {
    assert_eq!(
        ddl::concurrently("CREATE UNIQUE INDEX i ON public.t USING btree (a)"),
        "CREATE UNIQUE INDEX CONCURRENTLY i ON public.t USING btree (a)"
    );
    assert_eq!(
        alter::identity_set("SEQUENCE NAME public.s START WITH 5 INCREMENT BY 2 MINVALUE 1 MAXVALUE 99 CACHE 1 CYCLE"),
        "SET START WITH 5 SET INCREMENT BY 2 SET MINVALUE 1 SET MAXVALUE 99 SET CACHE 1 SET CYCLE"
    );
    assert!(alter::binary_coercible("character varying(10)", "text"));
    assert!(!alter::binary_coercible(
        "character varying(50)",
        "character varying(10)"
    ));
    assert!(!alter::binary_coercible("integer", "bigint"));
}

fn inherited_child(kind: Kind, table: &str, local: &str) -> Object {
    let mut o = child(kind, table, local, &[("type", "integer")]);
    o.note("inherited", "true");
    o.note("not_local", "true");
    o
}

#[test]
fn what_a_partition_inherits_is_left_to_its_parent_until_a_detach() {
    let part = |of: &str| {
        obj(
            Kind::Table,
            "public.p1",
            &[("partition_of", of), ("partition_bound", "DEFAULT")],
        )
    };
    // The parent gains a column: only the parent is altered, the partition's copy follows.
    let base = cat(vec![table("public.t"), part("public.t")]);
    let target = cat(vec![
        table("public.t"),
        child(Kind::Column, "public.t", "a", &[("type", "integer")]),
        part("public.t"),
        inherited_child(Kind::Column, "public.p1", "a"),
    ]);
    let p = plan(&base, &target);
    assert_eq!(p.script.len(), 1, "{:#?}", p.script);
    assert!(p.script[0]
        .sql
        .contains("ALTER TABLE public.t ADD COLUMN a"));

    // Detached, the partition keeps what it inherited as its own: nothing is added to it,
    // and what the target no longer has is dropped after the DETACH.
    let mut own = child(Kind::Column, "public.p1", "a", &[("type", "integer")]);
    own.note("inherited", "");
    let base = cat(vec![
        table("public.t"),
        child(Kind::Column, "public.t", "a", &[("type", "integer")]),
        child(Kind::Column, "public.t", "b", &[("type", "integer")]),
        part("public.t"),
        inherited_child(Kind::Column, "public.p1", "a"),
        inherited_child(Kind::Column, "public.p1", "b"),
    ]);
    let target = cat(vec![
        table("public.t"),
        child(Kind::Column, "public.t", "a", &[("type", "integer")]),
        child(Kind::Column, "public.t", "b", &[("type", "integer")]),
        table("public.p1"),
        own,
    ]);
    let p = plan(&base, &target);
    let sql: Vec<&str> = p.script.iter().map(|s| s.sql.as_str()).collect();
    assert!(!sql.iter().any(|s| s.contains("ADD COLUMN")), "{sql:#?}");
    assert!(
        pos(&p, "DETACH PARTITION public.p1") < pos(&p, "ALTER TABLE public.p1 DROP COLUMN b"),
        "{sql:#?}"
    );
}
