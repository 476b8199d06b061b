//! Request checking for the Lakebase-shaped routes: resource names, ids, durations, times,
//! lsns, and bodies with fields nobody defined. Every failure is a 400 that names the field.

use serde_json::Value;

use crate::storage::{format_time, parse_time, Lsn, Nanos};

pub type Invalid = String;

/// Lakebase's rule for user-chosen ids (branch_id, snapshot_id): 1–63 characters, a lowercase
/// letter first, then lowercase letters, digits and hyphens.
pub fn check_id(field: &str, id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {} is invalid: use 1 to 63 lowercase letters, digits and hyphens, \
             starting with a letter",
            crate::util::quoted_bounded(id)
        ))
    }
}

/// The branch id in `projects/{project}/branches/{id}`.
pub fn branch_of<'a>(project: &str, field: &str, name: &'a str) -> Result<&'a str, Invalid> {
    child_of(project, "branches", field, name)
}

/// The snapshot id in `projects/{project}/snapshots/{id}`.
pub fn snapshot_of<'a>(project: &str, field: &str, name: &'a str) -> Result<&'a str, Invalid> {
    child_of(project, "snapshots", field, name)
}

fn child_of<'a>(project: &str, kind: &str, field: &str, name: &'a str) -> Result<&'a str, Invalid> {
    let want = format!("projects/{project}/{kind}/");
    match name.strip_prefix(&want) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id),
        _ => Err(format!(
            "{field} {name:?} is not a resource name of the form \"{want}{{id}}\""
        )),
    }
}

/// Durations as protobuf JSON writes them: seconds with an `s`, e.g. "604800s" or "1.5s".
pub fn parse_duration(field: &str, s: &str) -> Result<std::time::Duration, Invalid> {
    let bad = || format!("{field} {s:?} is not a duration like \"604800s\"");
    let n = s.strip_suffix('s').ok_or_else(bad)?;
    if n.is_empty() || n.starts_with('-') || n.starts_with('+') {
        return Err(bad());
    }
    let secs: f64 = n.parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs > 315_576_000_000.0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub fn format_duration(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

pub fn parse_timestamp(field: &str, s: &str) -> Result<Nanos, Invalid> {
    parse_time(s).map_err(|e| format!("{field}: {e}"))
}

pub fn timestamp(ns: Nanos) -> String {
    format_time(ns)
}

/// lakelet's lsn is the page store's write sequence number, written as Postgres writes one
/// (`16/B374D848`); `parse_lsn` also accepts plain decimal.
pub use crate::util::format_lsn;

pub fn parse_lsn(field: &str, s: &str) -> Result<Lsn, Invalid> {
    let bad = || format!("{field} {s:?} is not an lsn like \"0/1A2B\"");
    if let Some((hi, lo)) = s.split_once('/') {
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        return Ok(((hi as u64) << 32) | lo as u64);
    }
    s.parse().map_err(|_| bad())
}

/// Checks that `v` is an object whose keys are all in `allowed`; `nested` names the object
/// fields to check in turn, with their own allowed keys.
pub fn check_fields(
    path: &str,
    v: &Value,
    allowed: &[&str],
    nested: &[(&str, &[&str])],
) -> Result<(), Invalid> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{} must be a JSON object", display(path)))?;
    for (k, val) in obj {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "unknown field {}{k:?} (known: {})",
                prefix(path),
                allowed.join(", ")
            ));
        }
        if let Some((_, keys)) = nested.iter().find(|(n, _)| *n == k) {
            if !val.is_null() {
                check_fields(&format!("{}{k}", prefix(path)), val, keys, &[])?;
            }
        }
    }
    Ok(())
}

fn display(path: &str) -> &str {
    if path.is_empty() {
        "the request body"
    } else {
        path
    }
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}

/// When a branch or snapshot expires, from exactly one of `ttl`, `expire_time`, `no_expiry`.
/// `None` means no expiry. `required` says whether giving none of them is an error.
pub fn expiry(
    now: Nanos,
    ttl: Option<&str>,
    expire_time: Option<&str>,
    no_expiry: Option<bool>,
    required: bool,
) -> Result<Option<Nanos>, Invalid> {
    let given = ttl.is_some() as u8 + expire_time.is_some() as u8 + no_expiry.is_some() as u8;
    if given > 1 {
        return Err("give only one of spec.ttl, spec.expire_time and spec.no_expiry".into());
    }
    if given == 0 && required {
        return Err("give one of spec.ttl, spec.expire_time or spec.no_expiry".into());
    }
    if let Some(t) = ttl {
        let d = parse_duration("spec.ttl", t)?;
        if d.is_zero() {
            return Err("spec.ttl must be positive".into());
        }
        return Ok(Some(
            now.saturating_add(d.as_nanos().min(i64::MAX as u128) as i64),
        ));
    }
    if let Some(t) = expire_time {
        let at = parse_timestamp("spec.expire_time", t)?;
        if at <= now {
            return Err(format!(
                "spec.expire_time {t} is in the past (now is {})",
                timestamp(now)
            ));
        }
        return Ok(Some(at));
    }
    if no_expiry == Some(false) {
        return Err(
            "spec.no_expiry may only be true; give spec.ttl or spec.expire_time instead".into(),
        );
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_lakebase() {
        assert!(check_id("branch_id", "dev-1").is_ok());
        for bad in ["", "Dev", "1dev", "dev_1", "dev/1", &"a".repeat(64)] {
            assert!(check_id("branch_id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_durations_lsns() {
        assert_eq!(
            branch_of("local", "f", "projects/local/branches/dev"),
            Ok("dev")
        );
        assert!(branch_of("local", "f", "projects/other/branches/dev").is_err());
        assert!(branch_of("local", "f", "projects/local/branches/a/b").is_err());
        assert_eq!(parse_duration("t", "604800s").unwrap().as_secs(), 604800);
        assert_eq!(parse_duration("t", "1.5s").unwrap().as_millis(), 1500);
        for bad in ["604800", "-1s", "s", "1e400s", "nans"] {
            assert!(parse_duration("t", bad).is_err(), "{bad}");
        }
        for l in [0, 1, 0x1_0000_0001, u64::MAX] {
            assert_eq!(parse_lsn("l", &format_lsn(l)), Ok(l));
        }
        assert_eq!(parse_lsn("l", "42"), Ok(42));
        assert!(parse_lsn("l", "0/xyz").is_err());
    }

    #[test]
    fn exactly_one_expiry() {
        let now = 1_000_000_000_000_000_000;
        assert!(expiry(now, Some("1s"), None, Some(true), false).is_err());
        assert!(expiry(now, None, None, None, true).is_err());
        assert_eq!(expiry(now, None, None, None, false), Ok(None));
        assert_eq!(expiry(now, None, None, Some(true), true), Ok(None));
        assert!(expiry(now, None, None, Some(false), true).is_err());
        assert_eq!(
            expiry(now, Some("2s"), None, None, true),
            Ok(Some(now + 2_000_000_000))
        );
        assert!(expiry(now, None, Some("2001-01-01T00:00:00Z"), None, true).is_err());
    }

    #[test]
    fn unknown_fields_are_named() {
        let v: Value = serde_json::json!({"spec": {"ttl": "1s", "colour": 1}});
        let e = check_fields("", &v, &["spec"], &[("spec", &["ttl"])]).unwrap_err();
        assert!(e.contains("spec.\"colour\""), "{e}");
        assert!(check_fields("", &serde_json::json!([1]), &["spec"], &[]).is_err());
    }
}
