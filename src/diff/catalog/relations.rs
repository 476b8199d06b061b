//! Tables and everything that hangs off them, sequences, views and materialized views.

use anyhow::Result;

use super::{acl, addr, not_ext, rows, USER_NS};
use crate::diff::model::{Key, Kind, Object};
use crate::migrate::db::Db;

pub(super) fn read(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    tables(db, out)?;
    columns(db, out)?;
    constraints(db, out)?;
    indexes(db, out)?;
    sequences(db, out)?;
    views(db, out)?;
    triggers(db, out)?;
    policies(db, out)?;
    Ok(())
}

/// The relation a child object hangs off, by its relkind.
fn parent_kind(relkind: &str) -> Kind {
    match relkind {
        "v" => Kind::View,
        "m" => Kind::MatView,
        _ => Kind::Table,
    }
}

/// `c` is the relation, `n` its namespace: user schemas, not an extension's.
fn rel_where() -> String {
    format!("{USER_NS} and {}", not_ext("pg_class", "c.oid"))
}

fn tables(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner), c.oid::text,
                {}, c.relkind::text, c.relpersistence::text,
                case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,
                case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end,
                (select string_agg(format('%I.%I', pn.nspname, pc.relname), ', ' order by i.inhseqno)
                   from pg_inherits i join pg_class pc on pc.oid = i.inhparent
                   join pg_namespace pn on pn.oid = pc.relnamespace where i.inhrelid = c.oid),
                c.relrowsecurity::text, c.relforcerowsecurity::text, c.relreplident::text,
                (select format('%I', ic.relname) from pg_index x join pg_class ic on ic.oid = x.indexrelid
                  where x.indrelid = c.oid and x.indisreplident),
                array_to_json(c.reloptions)::text, c.reltype::text, c.relispartition::text,
                format('%I', n.nspname)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and {}",
        acl("c.relacl", 'r', "c.relowner"),
        rel_where()
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::Table, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_class", r.n(2), 0));
        o.addrs.push(addr("pg_type", r.n(14), 0));
        o.acl = r.acl(3);
        o.set("partitioned", if r.s(4) == "p" { "true" } else { "" });
        o.set("unlogged", if r.s(5) == "u" { "true" } else { "" });
        o.set("partition_by", r.s(6));
        if r.b(15) {
            o.set("partition_of", r.s(8));
            o.set("partition_bound", r.s(7));
        } else {
            o.set("inherits", r.s(8));
        }
        o.set("row_security", if r.b(9) { "true" } else { "" });
        o.set("force_row_security", if r.b(10) { "true" } else { "" });
        let ident = match r.s(11).as_str() {
            "f" => "full".to_string(),
            "n" => "nothing".to_string(),
            "i" => format!("using index {}", r.s(12)),
            _ => String::new(),
        };
        o.set("replica_identity", ident);
        o.set("options", r.strings(13).join(", "));
        o.note("schema", r.s(16));
        out.push(o);
    }
    Ok(())
}

fn columns(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Every column, a partition's and an inheriting table's too, marked `inherited` when it
    // comes from a parent (attinhcount) and `not_local` when the table did not declare it
    // (attislocal): the planner leaves such columns to the parent's changes, yet sees them
    // when a DETACH makes them the table's own (or an ATTACH makes a table's own inherited).
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), format('%I', a.attname), a.attnum::text,
                format_type(a.atttypid, a.atttypmod),
                (select format('%I.%I', cn.nspname, co.collname) from pg_collation co
                   join pg_namespace cn on cn.oid = co.collnamespace
                  where co.oid = a.attcollation and a.attcollation <> t.typcollation),
                a.attnotnull::text,
                case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
                a.attidentity::text,
                case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
                (select format('SEQUENCE NAME %I.%I START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s',
                               sn.nspname, sc.relname, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                               s.seqcache, case when s.seqcycle then ' CYCLE' else '' end)
                   from pg_depend dd join pg_sequence s on s.seqrelid = dd.objid
                   join pg_class sc on sc.oid = s.seqrelid join pg_namespace sn on sn.oid = sc.relnamespace
                  where a.attidentity <> '' and dd.classid = 'pg_class'::regclass
                    and dd.refclassid = 'pg_class'::regclass and dd.refobjid = c.oid
                    and dd.refobjsubid = a.attnum and dd.deptype = 'i'),
                (select string_agg(x, E'\\n' order by x) from (select
                   case when g.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(g.grantee)) end
                   || ' ' || g.privilege_type || case when g.is_grantable then ' +' else '' end as x
                   from aclexplode(a.attacl) g) s),
                c.oid::text, d.oid::text, (a.attinhcount > 0)::text, (not a.attislocal)::text,
                case when a.attstorage <> t.typstorage then a.attstorage::text end,
                case when a.attstattarget >= 0 then a.attstattarget::text end,
                case a.attcompression when 'p' then 'pglz' when 'l' then 'lz4' end,
                t.typstorage::text
           from pg_attribute a join pg_class c on c.oid = a.attrelid
           join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped and {}",
        rel_where()
    );
    for r in rows(db, &q)? {
        let table = r.s(0);
        let mut o = Object::new(Kind::Column, format!("{table}.{}", r.s(1)));
        o.local = r.s(1);
        o.parent = Some(Key::new(Kind::Table, table));
        o.position = r.i(2);
        o.set("type", r.s(3));
        o.set("collation", r.s(4));
        o.set("not_null", if r.b(5) { "true" } else { "" });
        o.set("default", r.s(6));
        o.set(
            "identity",
            match r.s(7).as_str() {
                "a" => "ALWAYS",
                "d" => "BY DEFAULT",
                _ => "",
            },
        );
        o.set("generated", r.s(8));
        o.set("identity_options", r.s(9));
        o.acl = r.acl(10);
        o.addrs.push(addr("pg_class", r.n(11), r.i(2)));
        if r.n(12) != 0 {
            o.addrs.push(addr("pg_attrdef", r.n(12), 0));
        }
        o.note("inherited", if r.b(13) { "true" } else { "" });
        o.note("not_local", if r.b(14) { "true" } else { "" });
        o.set("storage", storage_word(&r.s(15)));
        // What `storage` returns to when the target leaves it at its type's default
        // (SET STORAGE DEFAULT is Postgres 16's).
        o.note("type_storage", storage_word(&r.s(18)));
        o.set("statistics", r.s(16));
        o.set("compression", r.s(17));
        out.push(o);
    }
    Ok(())
}

fn storage_word(c: &str) -> &'static str {
    match c {
        "p" => "PLAIN",
        "e" => "EXTERNAL",
        "m" => "MAIN",
        "x" => "EXTENDED",
        _ => "",
    }
}

fn constraints(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Constraints a table inherits are read too, marked `inherited` (the planner leaves them
    // to the parent, but sees a DETACH make them the table's own); the per-partition copies
    // of a foreign key *to* a partitioned table share their table and name with it and are
    // left out. Constraint triggers are triggers.
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), format('%I', k.conname), k.oid::text,
                k.contype::text, pg_get_constraintdef(k.oid), k.convalidated::text,
                case when k.contype in ('p', 'u', 'x') then pg_get_indexdef(k.conindid) end,
                case when k.contype in ('p', 'u', 'x') then k.conindid::text end,
                c.relkind::text, (k.coninhcount > 0 or k.conparentid <> 0)::text,
                (not k.conislocal)::text
           from pg_constraint k join pg_class c on c.oid = k.conrelid
           join pg_namespace n on n.oid = c.relnamespace
          where k.contype in ('p', 'u', 'f', 'c', 'x')
            and not exists (select 1 from pg_constraint pk where pk.oid = k.conparentid
                              and pk.conrelid = k.conrelid)
            and c.relkind in ('r', 'p') and {}",
        rel_where()
    );
    for r in rows(db, &q)? {
        let table = r.s(0);
        let mut o = Object::new(Kind::Constraint, format!("{table}.{}", r.s(1)));
        o.local = r.s(1);
        o.parent = Some(Key::new(Kind::Table, table));
        o.addrs.push(addr("pg_constraint", r.n(2), 0));
        if r.n(7) != 0 {
            o.addrs.push(addr("pg_class", r.n(7), 0));
        }
        let def = r.s(4);
        let def = def.strip_suffix(" NOT VALID").unwrap_or(&def).to_string();
        o.set("type", r.s(3));
        o.set("definition", def);
        o.set("not_valid", if r.b(5) { "" } else { "true" });
        // Not compared (the definition says it all); used to build the index online.
        o.note("index", r.s(6));
        o.note("on_partitioned", if r.s(8) == "p" { "true" } else { "" });
        o.note("inherited", if r.b(9) { "true" } else { "" });
        o.note("not_local", if r.b(10) { "true" } else { "" });
        out.push(o);
    }
    Ok(())
}

fn indexes(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Indexes that implement a constraint belong to it; a partition's copy of its parent's
    // index is made by Postgres when the partition is (marked `inherited`).
    let q = format!(
        "select format('%I.%I', n.nspname, ic.relname), format('%I.%I', n2.nspname, c.relname),
                ic.oid::text, pg_get_indexdef(ic.oid), x.indisvalid::text, c.relkind::text,
                format('%I', n.nspname), format('%I', ic.relname),
                exists (select 1 from pg_inherits i where i.inhrelid = ic.oid)::text
           from pg_index x join pg_class ic on ic.oid = x.indexrelid
           join pg_namespace n on n.oid = ic.relnamespace
           join pg_class c on c.oid = x.indrelid join pg_namespace n2 on n2.oid = c.relnamespace
          where c.relkind in ('r', 'p', 'm') and {USER_NS} and {}
            and not exists (select 1 from pg_constraint k where k.conindid = ic.oid
                              and k.conrelid = c.oid and k.contype in ('p', 'u', 'x'))",
        not_ext("pg_class", "c.oid")
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::Index, r.s(0));
        o.parent = Some(Key::new(parent_kind(&r.s(5)), r.s(1)));
        o.local = r.s(7);
        o.addrs.push(addr("pg_class", r.n(2), 0));
        o.set("definition", r.s(3));
        o.set("invalid", if r.b(4) { "" } else { "true" });
        o.note("on_partitioned", if r.s(5) == "p" { "true" } else { "" });
        o.note("schema", r.s(6));
        o.note("inherited", if r.b(8) { "true" } else { "" });
        out.push(o);
    }
    Ok(())
}

fn sequences(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Identity sequences are part of their column.
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner), c.oid::text, {},
                format_type(s.seqtypid, null), s.seqstart::text, s.seqincrement::text,
                s.seqmin::text, s.seqmax::text, s.seqcache::text, s.seqcycle::text,
                (select format('%I.%I.%I', tn.nspname, tc.relname, ta.attname)
                   from pg_depend d join pg_class tc on tc.oid = d.refobjid
                   join pg_namespace tn on tn.oid = tc.relnamespace
                   join pg_attribute ta on ta.attrelid = tc.oid and ta.attnum = d.refobjsubid
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'a'
                    and d.refclassid = 'pg_class'::regclass),
                format('%I', n.nspname),
                (select ps.last_value::text from pg_sequences ps
                  where ps.schemaname = n.nspname and ps.sequencename = c.relname)
           from pg_sequence s join pg_class c on c.oid = s.seqrelid
           join pg_namespace n on n.oid = c.relnamespace
          where {} and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                                     and d.objid = c.oid and d.deptype = 'i')",
        acl("c.relacl", 's', "c.relowner"),
        rel_where()
    );
    for r in rows(db, &q)? {
        let mut o = Object::new(Kind::Sequence, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_class", r.n(2), 0));
        o.acl = r.acl(3);
        o.set("type", r.s(4));
        o.set("start", r.s(5));
        o.set("increment", r.s(6));
        o.set("min", r.s(7));
        o.set("max", r.s(8));
        o.set("cache", r.s(9));
        o.set("cycle", if r.b(10) { "true" } else { "" });
        o.set("owned_by", r.s(11));
        o.note("schema", r.s(12));
        // Where it stands (not compared): a new MINVALUE above it needs a RESTART.
        o.note("last_value", r.s(13));
        out.push(o);
    }
    Ok(())
}

fn views(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner), c.oid::text, {},
                c.relkind::text, pg_get_viewdef(c.oid), array_to_json(c.reloptions)::text,
                (select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                                   E'\\n' order by a.attnum)
                   from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
                c.reltype::text, format('%I', n.nspname)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('v', 'm') and {}",
        acl("c.relacl", 'r', "c.relowner"),
        rel_where()
    );
    for r in rows(db, &q)? {
        let kind = if r.s(4) == "m" {
            Kind::MatView
        } else {
            Kind::View
        };
        let mut o = Object::new(kind, r.s(0));
        o.owner = r.o(1);
        o.addrs.push(addr("pg_class", r.n(2), 0));
        o.addrs.push(addr("pg_type", r.n(8), 0));
        o.acl = r.acl(3);
        let def = r.s(5);
        o.set("definition", def.trim().trim_end_matches(';').to_string());
        o.set("options", r.strings(6).join(", "));
        o.set("columns", r.s(7));
        o.note("schema", r.s(9));
        out.push(o);
    }
    // A view's query is its _RETURN rule; what the rule depends on, the view does.
    let by_oid: std::collections::HashMap<u32, usize> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o.key.kind, Kind::View | Kind::MatView))
        .map(|(i, o)| (o.addrs[0].1, i))
        .collect();
    for r in rows(
        db,
        "select r.oid::text, r.ev_class::text from pg_rewrite r where r.ev_class >= 16384",
    )? {
        if let Some(&i) = by_oid.get(&r.n(1)) {
            out[i].addrs.push(addr("pg_rewrite", r.n(0), 0));
        }
    }
    Ok(())
}

fn triggers(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    // Partitions' clones of their parent's triggers come with the partition.
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), format('%I', t.tgname), t.oid::text,
                pg_get_triggerdef(t.oid), t.tgenabled::text, c.relkind::text
           from pg_trigger t join pg_class c on c.oid = t.tgrelid
           join pg_namespace n on n.oid = c.relnamespace
          where not t.tgisinternal and t.tgparentid = 0 and {}",
        rel_where()
    );
    for r in rows(db, &q)? {
        let table = r.s(0);
        let mut o = Object::new(Kind::Trigger, format!("{table}.{}", r.s(1)));
        o.local = r.s(1);
        o.parent = Some(Key::new(parent_kind(&r.s(5)), table));
        o.addrs.push(addr("pg_trigger", r.n(2), 0));
        o.set("definition", r.s(3));
        o.set("enabled", r.s(4));
        out.push(o);
    }
    Ok(())
}

fn policies(db: &Db, out: &mut Vec<Object>) -> Result<()> {
    let q = format!(
        "select format('%I.%I', n.nspname, c.relname), format('%I', p.polname), p.oid::text,
                p.polcmd::text, p.polpermissive::text,
                (select string_agg(x, ', ' order by x) from (select case when r = 0 then 'PUBLIC'
                    else quote_ident(pg_get_userbyid(r)) end as x from unnest(p.polroles) r) s),
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
           from pg_policy p join pg_class c on c.oid = p.polrelid
           join pg_namespace n on n.oid = c.relnamespace
          where {}",
        rel_where()
    );
    for r in rows(db, &q)? {
        let table = r.s(0);
        let mut o = Object::new(Kind::Policy, format!("{table}.{}", r.s(1)));
        o.local = r.s(1);
        o.parent = Some(Key::new(Kind::Table, table));
        o.addrs.push(addr("pg_policy", r.n(2), 0));
        o.set(
            "command",
            match r.s(3).as_str() {
                "r" => "SELECT",
                "a" => "INSERT",
                "w" => "UPDATE",
                "d" => "DELETE",
                _ => "ALL",
            },
        );
        o.set(
            "permissive",
            if r.b(4) { "PERMISSIVE" } else { "RESTRICTIVE" },
        );
        o.set("roles", r.s(5));
        o.set("using", r.s(6));
        o.set("with_check", r.s(7));
        out.push(o);
    }
    Ok(())
}
