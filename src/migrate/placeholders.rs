//! `${name}` placeholders, replaced before a script runs (Flyway's syntax and built-ins).
//!
//! Replacement happens on the text that runs, never on the text that is checksummed, so the
//! same file validates against every environment whatever values it was applied with.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// Replaces every `${name}` in `text`. An unknown name is an error naming the file and line,
/// because running `${name}` literally would fail later and less clearly (or, worse, not fail).
pub fn replace(text: &str, values: &BTreeMap<String, String>, script: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0usize;
    while let Some(i) = rest.find("${") {
        let Some(close) = rest[i + 2..].find('}') else {
            break;
        };
        let name = &rest[i + 2..i + 2 + close];
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || "_.:-".contains(c));
        out += &rest[..i];
        if valid {
            match values.get(name) {
                Some(v) => out += v,
                None => {
                    let line = text[..consumed + i].matches('\n').count() + 1;
                    let known: Vec<&str> = values
                        .keys()
                        .filter(|k| !k.starts_with("flyway:"))
                        .map(String::as_str)
                        .collect();
                    bail!(
                        "{script}:{line}: no value for placeholder ${{{name}}}; pass \
                         --placeholder {name}=VALUE, set FLYWAY_PLACEHOLDERS_{} or add it to \
                         [migrations.placeholders] in lakelet.toml (known: {})",
                        name.to_uppercase().replace(['.', '-', ':'], "_"),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    );
                }
            }
        } else {
            out += &rest[i..i + 3 + close];
        }
        consumed += i + 3 + close;
        rest = &rest[i + 3 + close..];
    }
    out += rest;
    Ok(out)
}

/// Values from `FLYWAY_PLACEHOLDERS_<NAME>` variables (Flyway's convention; names lower-cased).
pub fn from_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("FLYWAY_PLACEHOLDERS_")
                .map(|n| (n.to_lowercase(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_known_and_refuses_unknown_with_the_line() {
        let mut v = BTreeMap::new();
        v.insert("owner".to_string(), "app".to_string());
        v.insert("flyway:defaultSchema".to_string(), "public".to_string());
        let t = "grant select on t to ${owner};\n-- ${flyway:defaultSchema}\nselect '${' || 1;";
        assert_eq!(
            replace(t, &v, "V1__x.sql").unwrap(),
            "grant select on t to app;\n-- public\nselect '${' || 1;"
        );
        let e = replace("select 1;\n\nselect ${env};", &v, "V2__y.sql").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("V2__y.sql:3: no value for placeholder ${env}"),
            "{e}"
        );
        // Not a placeholder name: left alone (e.g. a JSON path or shell text in a string).
        assert_eq!(
            replace("select '${a b}'", &v, "x").unwrap(),
            "select '${a b}'"
        );
    }
}
