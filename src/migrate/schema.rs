//! A schema fingerprint: every user object and its definition as Postgres prints it, read
//! from the catalogs. Rehearse compares two fingerprints to prove a second run changed
//! nothing and, when it did, to name what. (The full semantic diff is `src/diff`'s job.)

use std::collections::BTreeMap;

use anyhow::Result;

use super::db::Db;

/// Object identity (`table public.t`, `column public.t.a`, …) → its definition.
pub type Fingerprint = BTreeMap<String, String>;

/// Objects in user schemas, not owned by extensions; the history table is left out because a
/// run is expected to change it.
const QUERY: &str = r#"
with ns as (
  select oid, nspname from pg_namespace
  where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
    and nspname not like 'pg_temp_%' and nspname not like 'pg_toast_temp_%'
),
ext as (select objid from pg_depend where deptype = 'e'),
rel as (
  select c.oid, c.relname, c.relkind, n.nspname, c.relacl, c.relowner, c.relrowsecurity
  from pg_class c join ns n on n.oid = c.relnamespace
  where c.oid not in (select objid from ext)
    and not (c.relname = $1 and n.nspname = $2)
    and not (c.relkind = 'i' and exists (
      select 1 from pg_index i join pg_class t on t.oid = i.indrelid
      where i.indexrelid = c.oid and t.relname = $1 and n.nspname = $2))
)
select 'schema ' || nspname, pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '')
  from pg_namespace n where n.oid in (select oid from ns) and n.oid not in (select objid from ext)
union all
select 'extension ' || extname, extversion || ' in ' || extnamespace::regnamespace::text from pg_extension
union all
select 'relation ' || nspname || '.' || relname,
       relkind::text || ' owner=' || pg_get_userbyid(relowner) || ' acl=' || coalesce(relacl::text, '')
       || ' rls=' || relrowsecurity
  from rel
union all
select 'column ' || r.nspname || '.' || r.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod)
       || case when a.attnotnull then ' not null' else '' end
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || case when a.attidentity <> '' then ' identity ' || a.attidentity::text else '' end
       || case when a.attgenerated <> '' then ' generated' else '' end
       || coalesce(' collate ' || nullif(co.collname, 'default'), '')
  from rel r join pg_attribute a on a.attrelid = r.oid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join pg_collation co on co.oid = a.attcollation
  where a.attnum > 0 and not a.attisdropped and r.relkind in ('r', 'p', 'v', 'm', 'f')
union all
select 'constraint ' || r.nspname || '.' || r.relname || '.' || c.conname,
       pg_get_constraintdef(c.oid) || case when c.convalidated then '' else ' (not validated)' end
  from pg_constraint c join rel r on r.oid = c.conrelid
union all
select 'index ' || r.nspname || '.' || r.relname,
       pg_get_indexdef(r.oid) || case when i.indisvalid then '' else ' (invalid)' end
  from rel r join pg_index i on i.indexrelid = r.oid
union all
select 'view ' || nspname || '.' || relname, pg_get_viewdef(oid)
  from rel where relkind in ('v', 'm')
union all
select 'sequence ' || r.nspname || '.' || r.relname,
       format_type(s.seqtypid, null) || ' +' || s.seqincrement || ' [' || s.seqmin || ',' || s.seqmax
       || '] cycle=' || s.seqcycle
  from rel r join pg_sequence s on s.seqrelid = r.oid
union all
select 'trigger ' || r.nspname || '.' || r.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
  from pg_trigger t join rel r on r.oid = t.tgrelid where not t.tgisinternal
union all
select 'policy ' || r.nspname || '.' || r.relname || '.' || p.polname,
       p.polcmd::text || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
       || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
  from pg_policy p join rel r on r.oid = p.polrelid
union all
select 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) else p.prokind::text end
       || ' acl=' || coalesce(p.proacl::text, '')
  from pg_proc p join ns n on n.oid = p.pronamespace where p.oid not in (select objid from ext)
union all
select 'type ' || n.nspname || '.' || t.typname,
       t.typtype::text || coalesce(' ' || (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                                     from pg_enum e where e.enumtypid = t.oid), '')
       || coalesce(' ' || format_type(t.typbasetype, t.typtypmod), '')
  from pg_type t join ns n on n.oid = t.typnamespace
  where t.typtype in ('e', 'd', 'r', 'm') and t.oid not in (select objid from ext)
union all
select 'comment on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
  from pg_description d
  where d.classoid in ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass)
    and (d.classoid <> 'pg_class'::regclass or d.objoid in (select oid from rel))
    and (d.classoid <> 'pg_proc'::regclass or d.objoid in
         (select p.oid from pg_proc p join ns n on n.oid = p.pronamespace))
    and (d.classoid <> 'pg_type'::regclass or d.objoid in
         (select t.oid from pg_type t join ns n on n.oid = t.typnamespace))
"#;

/// The fingerprint of the database `db` is connected to, leaving out the history table.
pub fn fingerprint(db: &Db, history_schema: &str, history_table: &str) -> Result<Fingerprint> {
    let rows = db.query(QUERY, &[&history_table, &history_schema])?;
    Ok(rows
        .iter()
        .map(|r| {
            let k: Option<String> = r.get(0);
            let v: Option<String> = r.get(1);
            (k.unwrap_or_default(), v.unwrap_or_default())
        })
        .collect())
}

/// What differs between two fingerprints, one line per object (`+ added`, `- dropped`,
/// `~ changed`).
pub fn changes(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = vec![];
    for (k, v) in after {
        match before.get(k) {
            None => out.push(format!("+ {k}")),
            Some(b) if b != v => out.push(format!("~ {k}")),
            _ => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            out.push(format!("- {k}"));
        }
    }
    out
}
