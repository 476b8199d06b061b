//! Schemas, extensions, collations, user-defined types, routines, event triggers and default
//! privileges.

use anyhow::Result;

use super::{acl, addr, not_ext, rows, USER_NS};
use crate::diff::model::{Kind, Object};
use crate::migrate::db::Db;

pub(super) fn read(db: &Db, version: u32, out: &mut Vec<Object>) -> Result<()> {
    schemas(db, out)?;
    extensions(db, out)?;
    collations(db, out)?;
    enums(db, out)?;
    domains(db, out)?;
    composites(db, out)?;
    ranges(db, version, out)?;
    routines(db, out)?;
    event_triggers(db, out)?;
    default_privileges(db, out)?;
    Ok(())
}

fn schemas(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select format('%I', n.nspname), pg_get_userbyid(n.nspowner), n.oid::text, {}
           from pg_namespace n where {USER_NS} and {}",
        acl("n.nspacl", 'n', "n.nspowner"),
        not_ext("pg_namespace", "n.oid")
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::Schema, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_namespace", r.n(2), 0));
        o.acl = r.acl(3);
        out.push(o);
    }
    Ok(())
}

fn extensions(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = "select format('%I', x.extname), x.extversion, format('%I', n.nspname), x.oid::text
               from pg_extension x join pg_namespace n on n.oid = x.extnamespace";
    for r in rows(db, q)? {
        let mut o = Object::new(Kind::Extension, r.s(0));
        o.set("version", r.s(1));
        o.set("in_schema", r.s(2));
        o.addrs.push(addr("pg_extension", r.n(3), 0));
        out.push(o);
    }
    Ok(())
}

fn collations(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // The locale columns moved between releases; read them through to_jsonb so one query
    // serves 12 to 17.
    let q = format!(
        "select format('%I.%I', n.nspname, c.collname), pg_get_userbyid(c.collowner), c.oid::text,
                c.collprovider::text, c.collisdeterministic::text,
                to_jsonb(c) ->> 'collcollate', to_jsonb(c) ->> 'collctype',
                coalesce(to_jsonb(c) ->> 'colliculocale', to_jsonb(c) ->> 'colllocale'),
                to_jsonb(c) ->> 'collicurules', format('%I', n.nspname)
           from pg_collation c join pg_namespace n on n.oid = c.collnamespace
          where {USER_NS} and {}",
        not_ext("pg_collation", "c.oid")
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::Collation, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_collation", r.n(2), 0));
        o.set("provider", r.s(3));
        o.set("deterministic", r.s(4));
        o.set("lc_collate", r.s(5));
        o.set("lc_ctype", r.s(6));
        o.set("locale", r.s(7));
        o.set("rules", r.s(8));
        o.note("schema", r.s(9));
        out.push(o);
    }
    Ok(())
}

/// The columns every type query starts with: name, owner, oid, array type oid, ACL, schema.
fn type_head() -> String {
    format!(
        "format('%I.%I', n.nspname, t.typname), pg_get_userbyid(t.typowner), t.oid::text,
         t.typarray::text, {}, format('%I', n.nspname)",
        acl("t.typacl", 'T', "t.typowner")
    )
}

fn type_object(kind: Kind, r: &super::Row) -> Object {
    let mut o = Object::new(kind, r.s(0));
    o.owner = r.o(1);
    o.addrs.push(addr("pg_type", r.n(2), 0));
    // A column of `mood[]` depends on the array type; it answers for its element type.
    if r.n(3) != 0 {
        o.addrs.push(addr("pg_type", r.n(3), 0));
    }
    o.acl = r.acl(4);
    o.note("schema", r.s(5));
    o
}

fn type_where() -> String {
    format!("{USER_NS} and {}", not_ext("pg_type", "t.oid"))
}

fn enums(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select {}, (select json_agg(e.enumlabel order by e.enumsortorder)
                       from pg_enum e where e.enumtypid = t.oid)::text
           from pg_type t join pg_namespace n on n.oid = t.typnamespace
          where t.typtype = 'e' and {}",
        type_head(),
        type_where()
    );
    for r in rows(db, &q)? {
        let mut o = type_object(Kind::Enum, &r);
        o.set("labels", r.s(6));
        out.push(o);
    }
    Ok(())
}

fn domains(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select {}, format_type(t.typbasetype, t.typtypmod), t.typnotnull::text, t.typdefault,
                (select format('%I.%I', cn.nspname, co.collname) from pg_collation co
                   join pg_namespace cn on cn.oid = co.collnamespace
                  where co.oid = t.typcollation and t.typcollation <> bt.typcollation),
                (select json_agg(json_build_array(quote_ident(c.conname), pg_get_constraintdef(c.oid),
                                                  c.convalidated, c.oid) order by c.conname)
                   from pg_constraint c where c.contypid = t.oid)::text
           from pg_type t join pg_namespace n on n.oid = t.typnamespace
           join pg_type bt on bt.oid = t.typbasetype
          where t.typtype = 'd' and {}",
        type_head(),
        type_where()
    );
    for r in rows(db, &q)? {
        let mut o = type_object(Kind::Domain, &r);
        o.set("base", r.s(6));
        o.set("not_null", if r.b(7) { "true" } else { "" });
        o.set("default", r.s(8));
        o.set("collation", r.s(9));
        // Constraints, one per line: `name def` (NOT VALID stays in the text).
        let mut cons = vec![];
        for c in r.list(10) {
            let name = c[0].as_str().unwrap_or_default();
            let def = c[1].as_str().unwrap_or_default();
            cons.push(format!("{name} {def}"));
            let oid = c[3]
                .as_u64()
                .or_else(|| c[3].as_str().and_then(|s| s.parse().ok()));
            if let Some(oid) = oid {
                o.addrs.push(addr("pg_constraint", oid as u32, 0));
            }
        }
        o.set("constraints", cons.join("\n"));
        out.push(o);
    }
    Ok(())
}

fn composites(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select {}, (select json_agg(json_build_array(quote_ident(a.attname),
                                     format_type(a.atttypid, a.atttypmod),
                                     (select format('%I.%I', cn.nspname, co.collname)
                                        from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                                        join pg_type at on at.oid = a.atttypid
                                       where co.oid = a.attcollation and a.attcollation <> at.typcollation))
                                   order by a.attnum)
                       from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0
                        and not a.attisdropped)::text, t.typrelid::text
           from pg_type t join pg_namespace n on n.oid = t.typnamespace
           join pg_class c on c.oid = t.typrelid
          where t.typtype = 'c' and c.relkind = 'c' and {}",
        type_head(),
        type_where()
    );
    for r in rows(db, &q)? {
        let mut o = type_object(Kind::Composite, &r);
        let attrs: Vec<String> = r
            .list(6)
            .iter()
            .map(|a| {
                let mut s = format!(
                    "{} {}",
                    a[0].as_str().unwrap_or_default(),
                    a[1].as_str().unwrap_or_default()
                );
                if let Some(c) = a[2].as_str() {
                    s.push_str(&format!(" COLLATE {c}"));
                }
                s
            })
            .collect();
        o.set("attributes", attrs.join("\n"));
        o.addrs.push(addr("pg_class", r.n(7), 0));
        out.push(o);
    }
    Ok(())
}

fn ranges(db: &Db, version: u32, out: &mut Vec<Object>) -> Result<()> {
    let multi = if version >= 140000 {
        "format_type(r.rngmultitypid, null), r.rngmultitypid::text"
    } else {
        "null, null"
    };
    let q = format!(
        "select {}, format_type(r.rngsubtype, null),
                (select format('%I.%I', on_.nspname, oc.opcname) from pg_opclass oc
                   join pg_namespace on_ on on_.oid = oc.opcnamespace where oc.oid = r.rngsubopc),
                (select format('%I.%I', cn.nspname, co.collname) from pg_collation co
                   join pg_namespace cn on cn.oid = co.collnamespace where co.oid = r.rngcollation),
                nullif(r.rngcanonical::oid, 0)::regproc::text, nullif(r.rngsubdiff::oid, 0)::regproc::text,
                {multi}
           from pg_range r join pg_type t on t.oid = r.rngtypid
           join pg_namespace n on n.oid = t.typnamespace
          where {}",
        type_head(),
        type_where()
    );
    for r in rows(db, &q)? {
        let mut o = type_object(Kind::Range, &r);
        o.set("subtype", r.s(6));
        o.set("subtype_opclass", r.s(7));
        o.set("collation", r.s(8));
        o.set("canonical", r.s(9));
        o.set("subtype_diff", r.s(10));
        o.set("multirange_type_name", r.s(11));
        if r.n(12) != 0 {
            o.addrs.push(addr("pg_type", r.n(12), 0));
        }
        out.push(o);
    }
    Ok(())
}

fn routines(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Aggregates have no pg_get_functiondef; they are not read (see ARCHITECTURE). A range
    // type's constructors belong to the type (pg_depend 'i').
    let q = format!(
        "select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                pg_get_userbyid(p.proowner), p.oid::text, {}, p.prokind::text,
                pg_get_functiondef(p.oid), pg_get_function_result(p.oid),
                pg_get_function_arguments(p.oid), format('%I', n.nspname)
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where p.prokind in ('f', 'p', 'w') and {USER_NS} and {}
            and not exists (select 1 from pg_depend i where i.classid = 'pg_proc'::regclass
                              and i.objid = p.oid and i.deptype = 'i')",
        acl("p.proacl", 'f', "p.proowner"),
        not_ext("pg_proc", "p.oid")
    );
    for r in rows(db, &q)? {
        let kind = if r.s(4) == "p" {
            Kind::Procedure
        } else {
            Kind::Function
        };
        let mut o = Object::new(kind, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_proc", r.n(2), 0));
        o.acl = r.acl(3);
        o.set("definition", r.s(5).trim_end().to_string());
        o.set("result", r.s(6));
        o.set("arguments", r.s(7));
        o.note("schema", r.s(8));
        out.push(o);
    }
    Ok(())
}

fn event_triggers(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select format('%I', e.evtname), pg_get_userbyid(e.evtowner), e.oid::text, e.evtevent,
                format('%I.%I', pn.nspname, p.proname), e.evtenabled::text,
                array_to_json(e.evttags)::text
           from pg_event_trigger e join pg_proc p on p.oid = e.evtfoid
           join pg_namespace pn on pn.oid = p.pronamespace
          where {} and pn.nspname <> '_lakelet'",
        not_ext("pg_event_trigger", "e.oid")
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::EventTrigger, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_event_trigger", r.n(2), 0));
        o.set("event", r.s(3));
        o.set("function", r.s(4));
        o.set("enabled", r.s(5));
        o.set("tags", r.strings(6).join("\n"));
        out.push(o);
    }
    Ok(())
}

/// `ALTER DEFAULT PRIVILEGES` entries, one object per (role, schema, object type).
fn default_privileges(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select quote_ident(pg_get_userbyid(d.defaclrole)),
                case when n.oid is null then '' else quote_ident(n.nspname) end,
                d.defaclobjtype::text, d.oid::text, {}
           from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace",
        acl("d.defaclacl", 'r', "d.defaclrole")
    );
    for r in rows(db, &q)? {
        let (role, schema, objtype) = (r.s(0), r.s(1), r.s(2));
        let mut o = Object::new(
            Kind::DefaultPrivileges,
            default_acl_name(&role, &schema, &objtype),
        );
        o.set("role", role);
        o.set("in_schema", schema);
        o.set("objtype", objtype);
        o.addrs.push(addr("pg_default_acl", r.n(3), 0));
        o.acl = r.acl(4);
        out.push(o);
    }
    Ok(())
}

/// `for diff_owner in public on tables`.
pub(crate) fn default_acl_name(role: &str, schema: &str, objtype: &str) -> String {
    let what = match objtype {
        "r" => "tables",
        "S" => "sequences",
        "f" => "functions",
        "T" => "types",
        "n" => "schemas",
        _ => "objects",
    };
    if schema.is_empty() {
        format!("for {role} on {what}")
    } else {
        format!("for {role} in {schema} on {what}")
    }
}
