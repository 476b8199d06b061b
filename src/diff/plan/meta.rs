//! Owner, comments and grants: what every object carries besides its definition.

use std::collections::BTreeSet;

use super::ddl::parent;
use super::Stmt;
use crate::diff::catalog::Catalog;
use crate::diff::model::{Kind, Object};
use crate::migrate::db::quote_literal;

/// Owner, comment and grants of `t` where they differ from `b` (None: the object is new,
/// so it has the defaults a fresh object gets).
pub fn meta(b: Option<&Object>, t: &Object, cat: &Catalog, base: &Catalog) -> Vec<Stmt> {
    let mut out = vec![];
    let kind = t.key.kind;
    if let Some(owner) = &t.owner {
        let before = match b {
            Some(b) => b.owner.clone(),
            None => Some(cat.user.clone()),
        };
        if before.as_deref() != Some(owner.as_str()) && kind != Kind::Extension {
            let kw = kind.keyword();
            out.push(Stmt::tx(format!(
                "ALTER {kw} {} OWNER TO {owner}",
                t.key.name
            )));
        }
    }
    let before_comment = b.and_then(|b| b.comment.clone());
    if before_comment != t.comment && !(b.is_none() && kind == Kind::Extension) {
        out.push(Stmt::tx(format!(
            "COMMENT ON {} IS {}",
            t.sql_ref(),
            t.comment
                .as_deref()
                .map(quote_literal)
                .unwrap_or("NULL".into())
        )));
    }
    let empty = std::collections::BTreeMap::new();
    let before_sub = b.map(|b| &b.sub_comments).unwrap_or(&empty);
    let refs: BTreeSet<&String> = before_sub.keys().chain(t.sub_comments.keys()).collect();
    for r in refs {
        if before_sub.get(r) != t.sub_comments.get(r) {
            out.push(Stmt::tx(format!(
                "COMMENT ON {r} IS {}",
                t.sub_comments
                    .get(r)
                    .map(|c| quote_literal(c))
                    .unwrap_or("NULL".into())
            )));
        }
    }
    let before_acl = match b {
        Some(b) => b.acl.clone(),
        None => creation_acl(t, base),
    };
    out.extend(grants(&before_acl, &t.acl, t));
    out
}

/// The grants an object created by the migration starts with: the kind's default, as
/// changed by the base's `ALTER DEFAULT PRIVILEGES` for the role that runs it (the plan
/// changes default privileges only after everything is created).
pub fn creation_acl(o: &Object, base: &Catalog) -> BTreeSet<String> {
    let objtype = match o.key.kind {
        Kind::Table | Kind::View | Kind::MatView => "r",
        Kind::Sequence => "S",
        Kind::Function | Kind::Procedure => "f",
        Kind::Enum | Kind::Domain | Kind::Composite | Kind::Range => "T",
        Kind::Schema => "n",
        _ => return default_acl(o),
    };
    let schema = o.extra("schema");
    let mut acl = default_acl(o);
    let rows = base.objects.values().filter(|d| {
        d.key.kind == Kind::DefaultPrivileges
            && d.prop("role") == base.user
            && d.prop("objtype") == objtype
    });
    let mut in_schema = BTreeSet::new();
    for d in rows {
        match d.prop("in_schema") {
            "" => acl = d.acl.clone(),
            s if s == schema => in_schema.extend(d.acl.iter().cloned()),
            _ => {}
        }
    }
    acl.extend(in_schema);
    acl
}

/// The grants a newly created object starts with, the owner's own left out (see `acl` in
/// the catalog reader).
pub fn default_acl(o: &Object) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    match o.key.kind {
        Kind::Function | Kind::Procedure => {
            s.insert("PUBLIC EXECUTE".to_string());
        }
        Kind::Enum | Kind::Domain | Kind::Composite | Kind::Range => {
            s.insert("PUBLIC USAGE".to_string());
        }
        Kind::DefaultPrivileges if o.prop("in_schema").is_empty() => match o.prop("objtype") {
            "f" => {
                s.insert("PUBLIC EXECUTE".to_string());
            }
            "T" => {
                s.insert("PUBLIC USAGE".to_string());
            }
            _ => {}
        },
        _ => {}
    }
    s
}

/// REVOKE what only `before` has, GRANT what only `after` has.
pub fn grants(before: &BTreeSet<String>, after: &BTreeSet<String>, o: &Object) -> Vec<Stmt> {
    let on = |privilege: &str| -> String {
        match o.key.kind {
            Kind::Column => format!("{privilege} ({}) ON TABLE {}", o.local, parent(o)),
            Kind::Table | Kind::View | Kind::MatView => {
                format!("{privilege} ON TABLE {}", o.key.name)
            }
            Kind::Enum | Kind::Composite | Kind::Range => {
                format!("{privilege} ON TYPE {}", o.key.name)
            }
            Kind::DefaultPrivileges => {
                let what = match o.prop("objtype") {
                    "r" => "TABLES",
                    "S" => "SEQUENCES",
                    "f" => "FUNCTIONS",
                    "T" => "TYPES",
                    _ => "SCHEMAS",
                };
                format!("{privilege} ON {what}")
            }
            k => format!("{privilege} ON {} {}", k.keyword(), o.key.name),
        }
    };
    let prefix = if o.key.kind == Kind::DefaultPrivileges {
        let mut p = format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", o.prop("role"));
        if !o.prop("in_schema").is_empty() {
            p.push_str(&format!(" IN SCHEMA {}", o.prop("in_schema")));
        }
        p.push(' ');
        p
    } else {
        String::new()
    };
    let parse = |item: &str| -> (String, String, bool) {
        let grantable = item.ends_with(" +");
        let item = item.trim_end_matches(" +");
        let (who, what) = item.rsplit_once(' ').unwrap_or((item, ""));
        (who.to_string(), what.to_string(), grantable)
    };
    let mut out = vec![];
    for item in before.difference(after) {
        let (who, what, _) = parse(item);
        out.push(Stmt::tx(format!("{prefix}REVOKE {} FROM {who}", on(&what))));
    }
    for item in after.difference(before) {
        let (who, what, grantable) = parse(item);
        out.push(Stmt::tx(format!(
            "{prefix}GRANT {} TO {who}{}",
            on(&what),
            if grantable { " WITH GRANT OPTION" } else { "" }
        )));
    }
    out
}
