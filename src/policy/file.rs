//! lakelet.toml's policy tables, parsed and validated into a [`Policy`].
//!
//! Every check that can fail names the file, the line and column, and the field
//! (`lakelet.toml:14:10: tiers.qa.parent: …`), because the person reading the message is
//! editing that file. Validation is all-or-nothing: a file with one mistake yields no policy,
//! and the daemon keeps the one it had.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Features, MaskMethod, MaskRule, Masking, Policy, Role, Sel, Tier};

/// A mistake in the file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted path of the field (`tiers.qa.parent`), empty for syntax errors.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(default)]
struct FileDoc {
    // Owned by the CLI (cli/config.rs); accepted here so one file holds both.
    #[allow(dead_code)]
    project: Option<toml::Value>,
    #[allow(dead_code)]
    target: Option<toml::Value>,
    tiers: BTreeMap<S<String>, S<TierDoc>>,
    features: Option<S<FeaturesDoc>>,
    roles: BTreeMap<S<String>, S<RoleDoc>>,
    principals: BTreeMap<S<String>, S<PrincipalDoc>>,
    masking: Option<S<MaskingDoc>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct TierDoc {
    parent: Option<S<String>>,
    production: Option<S<bool>>,
    raw_data: Option<S<bool>>,
    mask: Option<S<bool>>,
    protected: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct FeaturesDoc {
    from: Option<S<String>>,
    ttl: Option<S<String>>,
    name: Option<S<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RoleDoc {
    create_from: Vec<S<String>>,
    connect: Vec<S<String>>,
    migrate: Vec<S<String>>,
    drop: Option<Vec<S<String>>>,
    reset: Vec<S<String>>,
    delete: Vec<S<String>>,
    promote: Option<S<bool>>,
    protect: bool,
    admin: bool,
    audit: bool,
    superuser: Option<S<bool>>,
    agent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalDoc {
    role: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct MaskingDoc {
    roles: Vec<S<String>>,
    columns: BTreeMap<S<String>, S<MethodDoc>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MethodDoc {
    Name(String),
    Table(MethodTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodTable {
    method: String,
    #[serde(default)]
    keep_first: u32,
    #[serde(default)]
    keep_last: u32,
    value: Option<String>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = line_col(self.text, span.start);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            field: field.into(),
            message: msg.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Whether the file declares a policy at all (any of the policy tables). A lakelet.toml with
/// only `[project]` and `[target]` leaves the daemon open, as before policies existed.
pub fn declares_policy(text: &str) -> bool {
    match toml::from_str::<toml::Table>(text) {
        Ok(t) => ["tiers", "features", "roles", "principals", "masking"]
            .iter()
            .any(|k| t.contains_key(*k)),
        Err(_) => true, // let `parse` report the syntax error
    }
}

/// Parses and validates `text` (read from `file`, used in messages).
pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let cx = Ctx { file, text };
    let doc: FileDoc = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, "", e.message().trim_end().to_string())
    })?;

    // Tiers: exactly one root, every parent declared, no cycle.
    if doc.tiers.is_empty() {
        return Err(cx.err(
            0..0,
            "tiers",
            "no tiers declared; declare the root tier (the branch `lakelet up` created), e.g. \
             [tiers.main]",
        ));
    }
    let names: BTreeSet<&str> = doc.tiers.keys().map(|k| k.get_ref().as_str()).collect();
    let mut roots = vec![];
    for (name, t) in &doc.tiers {
        let n = name.get_ref();
        crate::storage::validate_branch_name(n)
            .map_err(|e| cx.err(name.span(), format!("tiers.{n}"), e.to_string()))?;
        match &t.get_ref().parent {
            None => roots.push(name),
            Some(p) if !names.contains(p.get_ref().as_str()) => {
                return Err(cx.err(
                    p.span(),
                    format!("tiers.{n}.parent"),
                    format!(
                        "unknown tier \"{}\" (declared tiers: {})",
                        p.get_ref(),
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
            Some(p) if p.get_ref() == n => {
                return Err(cx.err(
                    p.span(),
                    format!("tiers.{n}.parent"),
                    "a tier cannot be its own parent",
                ))
            }
            Some(_) => {}
        }
    }
    // Each tier's depth below the root; a name met twice on the way up is a cycle.
    let parent_of: BTreeMap<&str, Option<&str>> = doc
        .tiers
        .iter()
        .map(|(k, t)| {
            let p = t.get_ref().parent.as_ref().map(|p| p.get_ref().as_str());
            (k.get_ref().as_str(), p)
        })
        .collect();
    let depth = |name: &str| -> Result<usize, String> {
        let mut seen = vec![name];
        let mut cur = name;
        while let Some(Some(p)) = parent_of.get(cur) {
            let looped = seen.contains(p);
            seen.push(p);
            if looped {
                return Err(seen.join(" → "));
            }
            cur = p;
        }
        Ok(seen.len() - 1)
    };
    for (k, t) in &doc.tiers {
        if let Err(cycle) = depth(k.get_ref()) {
            let span = t.get_ref().parent.as_ref().map_or(k.span(), |p| p.span());
            return Err(cx.err(
                span,
                format!("tiers.{}.parent", k.get_ref()),
                format!("the tier chain has a cycle: {cycle}"),
            ));
        }
    }
    let root = match roots.as_slice() {
        [r] => r.get_ref().clone(),
        [] => unreachable!("a cycle would have been reported"),
        [a, b, ..] => {
            return Err(cx.err(
                b.span(),
                format!("tiers.{}", b.get_ref()),
                format!(
                    "two root tiers ({} and {}): every tier but the root names a parent",
                    a.get_ref(),
                    b.get_ref()
                ),
            ))
        }
    };

    // Tier facts, parents first so rawness inherits.
    let mut tiers: BTreeMap<String, Tier> = BTreeMap::new();
    let mut order: Vec<_> = doc.tiers.iter().collect();
    order.sort_by_key(|(k, _)| depth(k.get_ref()).unwrap_or(0));
    for (k, t) in order {
        let n = k.get_ref().clone();
        let t = t.get_ref();
        let parent = t.parent.as_ref().map(|p| p.get_ref().clone());
        let parent_tier = parent.as_ref().map(|p| &tiers[p]);
        let production = t.production.as_ref().is_some_and(|p| *p.get_ref());
        let mask = t.mask.as_ref().is_some_and(|m| *m.get_ref());
        if mask && parent.is_none() {
            let s = t.mask.as_ref().unwrap().span();
            return Err(cx.err(
                s,
                format!("tiers.{n}.mask"),
                "the root tier has no parent to mask data from",
            ));
        }
        let inherited = parent_tier.is_some_and(|p| p.raw) && !mask;
        let raw = match &t.raw_data {
            Some(r) if !*r.get_ref() && inherited => {
                return Err(cx.err(
                    r.span(),
                    format!("tiers.{n}.raw_data"),
                    format!(
                        "raw_data = false, but it forks from {} which holds raw data; set \
                         mask = true to mask it when the tier is created",
                        parent.unwrap()
                    ),
                ))
            }
            Some(r) => *r.get_ref(),
            None => inherited || production,
        };
        tiers.insert(
            n.clone(),
            Tier {
                name: n,
                parent,
                production,
                raw,
                mask,
                protected: t.protected.unwrap_or(true),
            },
        );
    }

    // Features.
    let fd = doc.features.as_ref().map(|f| f.get_ref());
    let from = match fd.and_then(|f| f.from.as_ref()) {
        Some(f) if !tiers.contains_key(f.get_ref()) => {
            return Err(cx.err(
                f.span(),
                "features.from",
                format!("unknown tier \"{}\"", f.get_ref()),
            ))
        }
        Some(f) => f.get_ref().clone(),
        None => root.clone(),
    };
    let ttl = match fd.and_then(|f| f.ttl.as_ref()) {
        Some(t) => Some(parse_ttl(t.get_ref()).map_err(|m| cx.err(t.span(), "features.ttl", m))?),
        None => None,
    };
    let names = match fd.and_then(|f| f.name.as_ref()) {
        Some(n) => {
            for p in n.get_ref() {
                if p.is_empty() || p.contains(char::is_whitespace) {
                    return Err(cx.err(
                        n.span(),
                        "features.name",
                        format!("pattern {p:?} is empty or holds spaces"),
                    ));
                }
            }
            n.get_ref().clone()
        }
        None => vec![],
    };
    let features = Features { from, ttl, names };

    // Masking, before roles: a masked role may not be a superuser.
    let md = doc.masking.as_ref().map(|m| m.get_ref());
    let mut masked_roles = BTreeSet::new();
    let mut columns = vec![];
    if let Some(m) = md {
        for r in &m.roles {
            if !doc.roles.keys().any(|k| k.get_ref() == r.get_ref()) {
                return Err(cx.err(
                    r.span(),
                    "masking.roles",
                    format!("unknown role \"{}\"", r.get_ref()),
                ));
            }
            masked_roles.insert(r.get_ref().clone());
        }
        for (k, v) in &m.columns {
            let field = format!("masking.columns.\"{}\"", k.get_ref());
            let parts: Vec<&str> = k.get_ref().split('.').collect();
            let (schema, table, column) = match parts.as_slice() {
                [t, c] => ("public", *t, *c),
                [s, t, c] => (*s, *t, *c),
                _ => {
                    return Err(cx.err(
                        k.span(),
                        field,
                        "expected \"table.column\" or \"schema.table.column\"",
                    ))
                }
            };
            if [schema, table, column].iter().any(|p| p.is_empty()) {
                return Err(cx.err(k.span(), field, "empty schema, table or column name"));
            }
            let method = match v.get_ref() {
                MethodDoc::Name(n) => method(n, 0, 0, None),
                MethodDoc::Table(t) => {
                    method(&t.method, t.keep_first, t.keep_last, t.value.clone())
                }
            }
            .map_err(|msg| cx.err(v.span(), field.clone(), msg))?;
            columns.push(MaskRule {
                schema: schema.into(),
                table: table.into(),
                column: column.into(),
                method,
            });
        }
    }

    // Roles.
    let mut roles = BTreeMap::new();
    for (name, r) in &doc.roles {
        let n = name.get_ref().clone();
        let rd = r.get_ref();
        let agent = rd.agent.unwrap_or(n == "agent");
        let masked = masked_roles.contains(&n);
        let sels = |field: &str, list: &[S<String>]| -> Result<Vec<Sel>, PolicyError> {
            list.iter()
                .map(|s| {
                    let sel = Sel::parse(s.get_ref());
                    if let Sel::Tier(t) = &sel {
                        let Some(tier) = tiers.get(t) else {
                            return Err(cx.err(
                                s.span(),
                                format!("roles.{n}.{field}"),
                                format!(
                                    "unknown tier \"{t}\" (selectors: \"*\", \"tiers\", \"features\", \"own\", or a tier: {})",
                                    tiers.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        };
                        if agent && tier.production && field != "create_from_snapshots" {
                            return Err(cx.err(
                                s.span(),
                                format!("roles.{n}.{field}"),
                                format!("\"{t}\" is a production tier, and agents never branch from, connect to or change production"),
                            ));
                        }
                        if masked && tier.raw && matches!(field, "connect" | "migrate" | "reset") {
                            return Err(cx.err(
                                s.span(),
                                format!("roles.{n}.{field}"),
                                format!("\"{t}\" holds raw data and role {n} is in masking.roles: it only sees masked branches"),
                            ));
                        }
                    }
                    Ok(sel)
                })
                .collect()
        };
        let superuser = rd
            .superuser
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(rd.admin);
        if superuser && masked {
            let span = rd.superuser.as_ref().map_or(name.span(), |s| s.span());
            return Err(cx.err(span, format!("roles.{n}.superuser"), "a masked role cannot be a Postgres superuser (a superuser can read the files behind the masking)"));
        }
        if superuser && agent {
            let span = rd.superuser.as_ref().map_or(name.span(), |s| s.span());
            return Err(cx.err(span, format!("roles.{n}.superuser"), "an agent role cannot be a Postgres superuser (a superuser can read any branch's files)"));
        }
        if let Some(p) = rd.promote.as_ref().filter(|p| *p.get_ref() && agent) {
            return Err(cx.err(
                p.span(),
                format!("roles.{n}.promote"),
                "agents never promote",
            ));
        }
        roles.insert(
            n.clone(),
            Role {
                create_from: sels("create_from", &rd.create_from)?,
                connect: sels("connect", &rd.connect)?,
                migrate: sels("migrate", &rd.migrate)?,
                // Unset: the roles that move changes into tiers own the schema where they
                // migrate; everyone else writes rows and their own objects.
                drop: match &rd.drop {
                    Some(list) => {
                        if agent && !list.is_empty() {
                            return Err(cx.err(
                                list[0].span(),
                                format!("roles.{n}.drop"),
                                "agents never drop what the application schema owns",
                            ));
                        }
                        sels("drop", list)?
                    }
                    None if rd.admin || rd.promote.as_ref().is_some_and(|p| *p.get_ref()) => {
                        sels("migrate", &rd.migrate)?
                    }
                    None => vec![],
                },
                reset: sels("reset", &rd.reset)?,
                delete: sels("delete", &rd.delete)?,
                promote: rd.promote.as_ref().is_some_and(|p| *p.get_ref()),
                protect: rd.protect,
                admin: rd.admin,
                audit: rd.audit || rd.admin,
                superuser,
                agent,
                masked,
                name: n,
            },
        );
    }
    if !roles.contains_key("platform") {
        return Err(cx.err(
            0..0,
            "roles.platform",
            "no [roles.platform]: the daemon's owner (its API token, the proxy's postgres user) \
             acts as the platform role",
        ));
    }

    // Principals.
    let mut principals = BTreeMap::new();
    for (name, p) in &doc.principals {
        let n = name.get_ref();
        super::principals::check_name(n)
            .map_err(|m| cx.err(name.span(), format!("principals.{n}"), m))?;
        if super::principals::RESERVED.contains(&n.as_str()) {
            return Err(cx.err(
                name.span(),
                format!("principals.{n}"),
                format!("\"{n}\" is reserved"),
            ));
        }
        let role = &p.get_ref().role;
        if !roles.contains_key(role.get_ref()) {
            return Err(cx.err(
                role.span(),
                format!("principals.{n}.role"),
                format!("unknown role \"{}\"", role.get_ref()),
            ));
        }
        principals.insert(n.clone(), role.get_ref().clone());
    }

    Ok(Policy {
        declared: true,
        sha256: crate::util::hex(
            &ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..16],
        ),
        root,
        tiers,
        features,
        roles,
        principals,
        masking: Masking {
            roles: masked_roles,
            columns,
        },
    })
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like \"7d\" or \"12h\": {e}"))?;
    if d.is_zero() {
        return Err("a zero ttl would delete features at once".into());
    }
    Ok(d)
}

fn method(
    name: &str,
    keep_first: u32,
    keep_last: u32,
    value: Option<String>,
) -> Result<MaskMethod, String> {
    Ok(match name {
        "hash" => MaskMethod::Hash,
        "email" => MaskMethod::Email,
        "null" => MaskMethod::Null,
        "partial" => {
            if keep_first == 0 && keep_last == 0 {
                return Err(
                    "partial keeps nothing; set keep_first and/or keep_last (or use \"hash\")"
                        .into(),
                );
            }
            MaskMethod::Partial {
                keep_first,
                keep_last,
            }
        }
        "fixed" => MaskMethod::Fixed(value.ok_or("fixed needs a value = \"…\"")?),
        other => {
            return Err(format!(
                "unknown masking method \"{other}\" (hash, email, null, partial, fixed)"
            ))
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
[tiers.main]
production = true
[tiers.staging]
parent = "main"
[tiers.qa]
parent = "staging"

[features]
from = "staging"
ttl = "7d"
name = ["{principal}-*", "ci-pr-*"]

[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
admin = true

[roles.developer]
create_from = ["staging", "qa", "main"]
connect = ["own"]
migrate = ["own"]

[roles.agent]
create_from = ["staging"]
connect = ["own"]

[principals.alice]
role = "developer"

[masking]
roles = ["developer", "agent"]
[masking.columns]
"customers.email" = "email"
"public.customers.phone" = { method = "partial", keep_last = 4 }
"#;

    fn err(text: &str) -> PolicyError {
        parse("lakelet.toml", text).expect_err("should be refused")
    }

    #[test]
    fn a_good_file_parses_with_inherited_rawness() {
        let p = parse("lakelet.toml", GOOD).unwrap();
        assert_eq!(p.root, "main");
        assert!(p.tiers["main"].raw && p.tiers["staging"].raw && p.tiers["qa"].raw);
        assert_eq!(p.features.from, "staging");
        assert!(p.roles["agent"].agent && p.roles["developer"].masked);
        assert!(p.roles["platform"].superuser && !p.roles["developer"].superuser);
        assert_eq!(p.masking.columns.len(), 2);
    }

    #[test]
    fn mistakes_name_their_line_and_field() {
        let e = err("[tiers.main]\n[tiers.qa]\nparent = \"stagin\"\n[roles.platform]\n");
        assert_eq!((e.line, e.field.as_str()), (3, "tiers.qa.parent"));
        assert!(e.message.contains("unknown tier \"stagin\""), "{e}");

        let e = err("[tiers.a]\nparent = \"b\"\n[tiers.b]\nparent = \"a\"\n[roles.platform]\n");
        assert!(e.message.contains("cycle"), "{e}");
        assert!(e.field.starts_with("tiers."), "{e}");

        let e = err("[tiers.main]\n[roles.platform]\n[roles.dev]\nconnect = [\"own\", \"prod\"]\n");
        assert_eq!((e.line, e.field.as_str()), (4, "roles.dev.connect"));

        let e = err("[tiers.main]\n[roles.platform]\n[principals.bob]\nrole = \"dev\"\n");
        assert_eq!((e.line, e.field.as_str()), (4, "principals.bob.role"));

        let e = err("[tiers.main]\nparnet = \"x\"\n[roles.platform]\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("parnet"), "{e}");

        let e = err("[tiers.main]\n[tiers.other]\n[roles.platform]\n");
        assert!(e.message.contains("two root tiers"), "{e}");

        let e = err("[tiers.main]\nproduction = true\n[roles.platform]\n[roles.agent]\nconnect = [\"main\"]\n");
        assert!(e.message.contains("agents never"), "{e}");

        let e = err("[tiers.main]\n[roles.platform]\n[roles.agent]\nmigrate = [\"own\"]\ndrop = [\"own\"]\n");
        assert_eq!((e.line, e.field.as_str()), (5, "roles.agent.drop"), "{e}");

        let e = err("[tiers.main]\nproduction = true\n[tiers.s]\nparent = \"main\"\nraw_data = false\n[roles.platform]\n");
        assert!(e.message.contains("mask = true"), "{e}");

        let e = err("[tiers.main]\n[roles.platform]\nadmin = true\n[masking]\nroles = [\"platform\"]\n[masking.columns]\n\"t.c\" = \"hash\"\n");
        assert!(e.message.contains("superuser"), "{e}");

        let e = err("[tiers.main]\n[roles.platform]\n[masking.columns]\n\"t.c\" = \"scramble\"\n");
        assert_eq!((e.line, e.field.as_str()), (4, "masking.columns.\"t.c\""));

        let e = err("[tiers.main]\n[roles.dev]\n");
        assert!(e.message.contains("roles.platform"), "{e}");

        let e = err("[tiers.main\n");
        assert_eq!(e.line, 1);
    }

    proptest::proptest! {
        /// Any text built from the file's own vocabulary gets a policy or an error that points
        /// inside it; a policy that parses has one root that every chain reaches.
        #[test]
        fn never_panics_and_points_inside_the_text(parts in proptest::collection::vec(proptest::sample::select(vec![
            "[tiers.a]\n", "[tiers.b]\n", "[tiers.c]\n", "parent = \"a\"\n", "parent = \"b\"\n",
            "parent = \"c\"\n", "parent = \"z\"\n", "production = true\n", "mask = true\n",
            "raw_data = false\n", "[roles.platform]\n", "[roles.agent]\n", "admin = true\n",
            "connect = [\"a\", \"own\"]\n", "promote = true\n", "[masking]\n",
            "roles = [\"agent\"]\n", "[masking.columns]\n", "\"t.c\" = \"hash\"\n",
            "[features]\n", "from = \"b\"\n", "ttl = \"0s\"\n", "[principals.p]\n",
            "role = \"agent\"\n", "= ]\n", "\n",
        ]), 0..24)) {
            let text: String = parts.concat();
            match parse("f.toml", &text) {
                Ok(p) => {
                    for t in p.tiers.values() {
                        let mut cur = t;
                        let mut n = 0;
                        while let Some(parent) = &cur.parent {
                            cur = &p.tiers[parent];
                            n += 1;
                            proptest::prop_assert!(n <= p.tiers.len());
                        }
                        proptest::prop_assert_eq!(&cur.name, &p.root);
                    }
                }
                Err(e) => proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "{}", e),
            }
        }
    }

    #[test]
    fn display_reads_like_a_compiler_message() {
        let e = err("[tiers.main]\n[tiers.qa]\nparent = \"x\"\n[roles.platform]\n");
        assert!(
            e.to_string()
                .starts_with("lakelet.toml:3:10: tiers.qa.parent: unknown tier"),
            "{e}"
        );
    }
}
