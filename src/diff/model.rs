//! What the diff compares: catalog objects named by a stable identity.
//!
//! An object's identity is its kind plus its qualified, quoted name (`table public.orders`,
//! `column public.orders.total`, `function public.f(integer)`), never an OID: the two sides
//! are different databases, and only names mean the same thing on both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// Kinds in the order the migration creates them when nothing else decides (the dependency
/// graph from pg_depend decides first; this is the tie-break, and it keeps output stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Schema,
    Extension,
    Collation,
    Enum,
    Domain,
    Composite,
    Range,
    Sequence,
    Function,
    Procedure,
    Table,
    Column,
    Constraint,
    Index,
    View,
    MatView,
    Trigger,
    EventTrigger,
    Policy,
    DefaultPrivileges,
}

impl Kind {
    /// The word a person reads (`materialized view`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::Extension => "extension",
            Kind::Collation => "collation",
            Kind::Enum => "enum",
            Kind::Domain => "domain",
            Kind::Composite => "composite type",
            Kind::Range => "range type",
            Kind::Sequence => "sequence",
            Kind::Function => "function",
            Kind::Procedure => "procedure",
            Kind::Table => "table",
            Kind::Column => "column",
            Kind::Constraint => "constraint",
            Kind::Index => "index",
            Kind::View => "view",
            Kind::MatView => "materialized view",
            Kind::Trigger => "trigger",
            Kind::EventTrigger => "event trigger",
            Kind::Policy => "policy",
            Kind::DefaultPrivileges => "default privileges",
        }
    }

    /// The keyword SQL uses for the object in COMMENT ON / ALTER … OWNER TO / GRANT … ON.
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Schema => "SCHEMA",
            Kind::Extension => "EXTENSION",
            Kind::Collation => "COLLATION",
            Kind::Enum | Kind::Composite | Kind::Range => "TYPE",
            Kind::Domain => "DOMAIN",
            Kind::Sequence => "SEQUENCE",
            Kind::Function => "FUNCTION",
            Kind::Procedure => "PROCEDURE",
            Kind::Table => "TABLE",
            Kind::Column => "COLUMN",
            Kind::Constraint => "CONSTRAINT",
            Kind::Index => "INDEX",
            Kind::View => "VIEW",
            Kind::MatView => "MATERIALIZED VIEW",
            Kind::Trigger => "TRIGGER",
            Kind::EventTrigger => "EVENT TRIGGER",
            Kind::Policy => "POLICY",
            Kind::DefaultPrivileges => "DEFAULT PRIVILEGES",
        }
    }

    /// Objects that hold no data of their own: dropping and recreating them loses nothing,
    /// so the diff rebuilds them when something they depend on must be replaced.
    pub fn rebuildable(self) -> bool {
        matches!(
            self,
            Kind::View
                | Kind::MatView
                | Kind::Function
                | Kind::Procedure
                | Kind::Trigger
                | Kind::Policy
                | Kind::Constraint
                | Kind::Index
                | Kind::EventTrigger
        )
    }

    /// Objects that live inside a table (their SQL names the table).
    pub fn is_child(self) -> bool {
        matches!(
            self,
            Kind::Column | Kind::Constraint | Kind::Trigger | Kind::Policy
        )
    }

    pub fn is_type(self) -> bool {
        matches!(
            self,
            Kind::Enum | Kind::Domain | Kind::Composite | Kind::Range
        )
    }
}

/// An object's identity on both sides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    /// Qualified and quoted as SQL would write it (`public."Order".id`).
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.noun(), self.name)
    }
}

/// Where pg_depend and pg_description point: (catalog, oid, sub-id). Valid only within the
/// database it was read from.
pub type Addr = (String, u32, i32);

/// One object as read from one database.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: Key,
    /// The table (or view) a column, constraint, index, trigger or policy belongs to.
    pub parent: Option<Key>,
    /// The object's own quoted name without its table (`id`, `orders_pkey`); for top-level
    /// objects the same as `key.name`.
    pub local: String,
    /// What the object is compared by. Two objects with equal props need no change beyond
    /// owner, comment and grants.
    pub props: BTreeMap<&'static str, String>,
    pub owner: Option<String>,
    pub comment: Option<String>,
    /// Comments on parts that are not objects here, by how SQL names them: a view's
    /// columns (`COLUMN s.v.c`), the index behind a constraint (`INDEX s.t_pkey`).
    pub sub_comments: BTreeMap<String, String>,
    /// Privileges granted to others than the owner: `grantee PRIVILEGE` (+ ` +` when
    /// grantable), one per item.
    pub acl: BTreeSet<String>,
    /// Column position and the like: kept for output order, never compared.
    pub position: i32,
    /// Facts the SQL needs that the comparison must not see (the schema, the index behind a
    /// constraint, whether the table is partitioned).
    pub extra: BTreeMap<&'static str, String>,
    /// The object's own addresses in its database (a table also answers for its row type).
    pub addrs: Vec<Addr>,
    /// What it depends on (pg_depend, resolved to identities, plus its parent and schema).
    pub deps: BTreeSet<Key>,
}

impl Object {
    pub fn new(kind: Kind, name: impl Into<String>) -> Object {
        let name = name.into();
        Object {
            key: Key::new(kind, name.clone()),
            parent: None,
            local: name,
            props: BTreeMap::new(),
            owner: None,
            comment: None,
            sub_comments: BTreeMap::new(),
            acl: BTreeSet::new(),
            position: 0,
            extra: BTreeMap::new(),
            addrs: vec![],
            deps: BTreeSet::new(),
        }
    }

    pub fn prop(&self, k: &str) -> &str {
        self.props.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn set(&mut self, k: &'static str, v: impl Into<String>) {
        let v = v.into();
        if !v.is_empty() {
            self.props.insert(k, v);
        }
    }

    pub fn extra(&self, k: &str) -> &str {
        self.extra.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn note(&mut self, k: &'static str, v: impl Into<String>) {
        let v = v.into();
        if !v.is_empty() {
            self.extra.insert(k, v);
        }
    }

    /// How SQL names it in COMMENT ON and the like: `COLUMN public.t.c`,
    /// `CONSTRAINT c ON public.t`, `TABLE public.t`.
    pub fn sql_ref(&self) -> String {
        let parent = self.parent.as_ref().map(|p| p.name.as_str()).unwrap_or("");
        match self.key.kind {
            Kind::Column => format!("COLUMN {parent}.{}", self.local),
            Kind::Constraint | Kind::Trigger | Kind::Policy => {
                format!("{} {} ON {parent}", self.key.kind.keyword(), self.local)
            }
            k => format!("{} {}", k.keyword(), self.key.name),
        }
    }
}
