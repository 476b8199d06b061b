//! Token helpers for the lint rules: names, keywords at positions, top-level splitting.

use super::super::sql::{split, Statement, Tok};

pub(super) struct Name {
    pub(super) key: String,
    pub(super) shown: String,
}

pub(super) fn is_at(t: &[Tok], i: usize, kw: &str) -> bool {
    t.get(i).is_some_and(|x| x.is(kw))
}

/// Whether the token at `i` is one of the space-separated keywords.
pub(super) fn any_at(t: &[Tok], i: usize, kws: &str) -> bool {
    kws.split(' ').any(|k| is_at(t, i, k))
}

pub(super) fn starts(t: &[Tok], kws: &[&str]) -> bool {
    kws.iter().enumerate().all(|(i, k)| is_at(t, i, k))
}

/// The name at `i` after any `IF [NOT] EXISTS`, `ONLY`, `COLUMN` (reserved words, so never
/// the name itself), and the index after it (and after an inheritance `*`).
pub(super) fn name_at(t: &[Tok], mut i: usize) -> Option<(Name, usize)> {
    loop {
        let rest = t.get(i..).unwrap_or_default();
        i += match () {
            _ if starts(rest, &["IF", "EXISTS"]) => 2,
            _ if starts(rest, &["IF", "NOT", "EXISTS"]) => 3,
            _ if any_at(rest, 0, "ONLY COLUMN") => 1,
            _ => break,
        };
    }
    let mut parts = vec![t.get(i)?.ident()?];
    i += 1;
    while t.get(i) == Some(&Tok::Sym('.')) {
        parts.push(t.get(i + 1)?.ident()?);
        i += 2;
    }
    i += usize::from(t.get(i) == Some(&Tok::Sym('*')));
    let (key, shown) = (parts.last()?.clone(), parts.join("."));
    Some((Name { key, shown }, i))
}

/// The names, comma-separated, or `None` for none.
pub(super) fn join(names: Vec<Name>) -> Option<String> {
    let shown: Vec<String> = names.into_iter().map(|n| n.shown).collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// `text` if `cond`, else nothing.
pub(super) fn when(cond: bool, text: &str) -> &str {
    if cond {
        text
    } else {
        ""
    }
}

/// The names of a comma-separated list (`DROP TABLE a, b CASCADE`).
pub(super) fn names(t: &[Tok]) -> Vec<Name> {
    split_top(t)
        .iter()
        .filter_map(|p| name_at(p, 0))
        .map(|(n, _)| n)
        .collect()
}

/// Parenthesis depth change of a token (brackets count: `ARRAY[1, 2]`).
pub(super) fn nesting(t: &Tok) -> isize {
    match t {
        Tok::Sym('(' | '[') => 1,
        Tok::Sym(')' | ']') => -1,
        _ => 0,
    }
}

/// The tokens outside parentheses: what a clause says at its own level rather than inside
/// a CHECK expression, a column list or an ARRAY[…].
pub(super) fn top(t: &[Tok]) -> Vec<&Tok> {
    let mut depth = 0;
    let mut outside = |x: &&Tok| {
        let before = depth;
        depth += nesting(x);
        before == 0 && depth == 0
    };
    t.iter().filter(|x| outside(x)).collect()
}

/// Splits at commas outside parentheses: the actions of an ALTER TABLE, the names of a DROP.
pub(super) fn split_top(t: &[Tok]) -> Vec<&[Tok]> {
    let (mut depth, mut start, mut out) = (0, 0, vec![]);
    for (i, x) in t.iter().enumerate() {
        depth += nesting(x);
        if depth == 0 && *x == Tok::Sym(',') {
            out.push(&t[start..i]);
            start = i + 1;
        }
    }
    out.push(&t[start..]);
    out
}

/// Whether the keywords appear consecutively.
pub(super) fn seq(t: &[&Tok], kws: &[&str]) -> bool {
    t.windows(kws.len())
        .any(|w| w.iter().zip(kws).all(|(x, k)| x.is(k)))
}

/// The index just after a leading `(options)` list at `i`, or `i`.
pub(super) fn after_options(t: &[Tok], i: usize) -> usize {
    match t.get(i) {
        Some(Tok::Sym('(')) => t
            .iter()
            .position(|x| *x == Tok::Sym(')'))
            .map_or(i, |p| p + 1),
        _ => i,
    }
}

/// The index of the `)` that closes the `(` at `open`.
pub(super) fn closing(t: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, x) in t.iter().enumerate().skip(open) {
        depth += nesting(x);
        if depth == 0 {
            return Some(i);
        }
    }
    None
}

/// The index just after the first keyword `kw` at `from` or later outside parentheses.
pub(super) fn after_top(t: &[Tok], from: usize, kw: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, x) in t.iter().enumerate() {
        depth += nesting(x);
        if i >= from && depth == 0 && x.is(kw) {
            return Some(i + 1);
        }
    }
    None
}

/// A token as it would be written, for messages.
pub(super) fn shown(t: &Tok) -> String {
    match t {
        Tok::Word(w) | Tok::Num(w) => w.clone(),
        Tok::Quoted(q) => format!("\"{q}\""),
        Tok::Str(_) => "a string".into(),
        Tok::Sym(c) => c.to_string(),
        Tok::Param => "a $n parameter".into(),
    }
}

/// SQL commands a PL/pgSQL or SQL body may run that the rules look at (a statement of the
/// body starting otherwise, like `x := …`, `RETURN`, `RAISE` or `EXECUTE '…'`, is skipped).
const BODY_SQL: &str = "ALTER CREATE DROP UPDATE DELETE TRUNCATE LOCK REINDEX VACUUM CLUSTER \
                        SET RESET SELECT PERFORM CALL";

/// The SQL statements of a PL/pgSQL (or SQL-language) body, as statements of their own at
/// `line`: the body is split like a script, and each part is stripped of the block syntax
/// around its command: `<<label>>`, the DECLARE section, BEGIN, `IF … THEN`, `ELSIF … THEN`,
/// ELSE, `CASE … WHEN … THEN`, `EXCEPTION WHEN … THEN`, `WHILE / FOR … LOOP` and LOOP (an
/// `END …` part is skipped). Text in `EXECUTE '…'` strings stays unseen.
pub(super) fn body_statements(body: &str, line: usize, directives: &[String]) -> Vec<Statement> {
    let Ok(parts) = split(body) else {
        return vec![];
    };
    let (mut declaring, mut out) = (false, vec![]);
    for p in parts {
        let t = &p.tokens;
        let mut i = 0;
        loop {
            let at = i;
            if let [Tok::Sym('<'), Tok::Sym('<'), _, Tok::Sym('>'), Tok::Sym('>'), ..] = &t[i..] {
                i += 5;
            }
            if is_at(t, i, "DECLARE") {
                declaring = true;
                i += 1;
            } else if is_at(t, i, "BEGIN") {
                declaring = false;
                i += 1;
            } else if any_at(t, i, "ELSE LOOP EXCEPTION") {
                i += 1;
            } else if any_at(t, i, "IF ELSIF ELSEIF CASE WHEN") {
                i = after_top(t, i, "THEN").unwrap_or(t.len());
            } else if any_at(t, i, "WHILE FOR FOREACH") {
                i = after_top(t, i, "LOOP").unwrap_or(t.len());
            }
            if i == at || i >= t.len() {
                break;
            }
        }
        if declaring || !any_at(t, i, BODY_SQL) {
            continue;
        }
        let from = p.offsets[i];
        out.push(Statement {
            text: p.text[from..].to_string(),
            line,
            tokens: t[i..].to_vec(),
            offsets: p.offsets[i..].iter().map(|o| o - from).collect(),
            directives: directives.to_vec(),
        });
    }
    out
}
