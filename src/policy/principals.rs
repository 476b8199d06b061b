//! Principals' credentials: DATA/principals.json (0600), secrets stored only as hashes.
//!
//! One secret per principal serves every entry point: the API and the CLI send it as the bearer
//! token (looked up by its SHA-256), the proxy takes it as the password of a user named after
//! the principal (checked against a SCRAM verifier derived from it). A secret is 32 random
//! bytes, so a plain SHA-256 is as strong as any password hash here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Names no principal may take: the owner, and the Postgres roles lakelet connects as.
pub const RESERVED: &[&str] = &[
    super::model::OWNER,
    "postgres",
    "lakelet_owner",
    "lakelet_writer",
    "lakelet_agent",
    "lakelet_app",
    "lakelet_migrate",
    "lakelet_reader",
    "lakelet",
];

/// Principal names are also Postgres user names at the proxy.
pub fn check_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.as_bytes()[0].is_ascii_lowercase()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "principal name \"{n}\" must be 1 to 63 of a-z 0-9 - _, starting with a letter"
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub role: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// SCRAM-SHA-256 verifier of the secret, for the proxy.
    pub verifier: String,
    pub created_at: String,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    principals: BTreeMap<String, Entry>,
}

pub struct Principals {
    path: PathBuf,
    map: RwLock<BTreeMap<String, Entry>>,
}

pub fn sha256_hex(s: &str) -> String {
    crate::util::hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

impl Principals {
    pub fn open(data_dir: &Path) -> Result<Principals> {
        let path = data_dir.join("principals.json");
        let file: File = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "{} is not valid principals JSON; restore it from a backup",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Principals {
            path,
            map: RwLock::new(file.principals),
        })
    }

    fn save(&self, map: &BTreeMap<String, Entry>) -> Result<()> {
        let f = File {
            principals: map.clone(),
        };
        crate::util::write_atomically(&self.path, &serde_json::to_vec_pretty(&f)?, 0o600)
    }

    /// Adds `name` with `role` (or gives it a new secret, `rotate`) and returns the secret.
    /// The secret exists only in the return value.
    /// `verifier` makes the proxy's SCRAM verifier of a secret (the proxy owns that format).
    pub fn add(
        &self,
        name: &str,
        role: &str,
        rotate: bool,
        verifier: impl Fn(&str) -> String,
    ) -> Result<String> {
        check_name(name).map_err(anyhow::Error::msg)?;
        if RESERVED.contains(&name) {
            bail!("\"{name}\" is reserved; pick another principal name");
        }
        let mut map = self.map.write().unwrap();
        if map.contains_key(name) && !rotate {
            bail!("principal {name} exists; `lakelet principal add {name} --rotate` gives it a new secret");
        }
        let secret = format!(
            "lks_{}",
            crate::util::hex(&crate::util::random_bytes::<24>())
        );
        let mut next = map.clone();
        next.insert(
            name.to_string(),
            Entry {
                role: role.to_string(),
                secret_sha256: sha256_hex(&secret),
                verifier: verifier(&secret),
                created_at: crate::storage::format_time(crate::util::now_nanos()),
            },
        );
        self.save(&next)?;
        *map = next;
        Ok(secret)
    }

    pub fn remove(&self, name: &str) -> Result<bool> {
        let mut map = self.map.write().unwrap();
        if !map.contains_key(name) {
            return Ok(false);
        }
        let mut next = map.clone();
        next.remove(name);
        self.save(&next)?;
        *map = next;
        Ok(true)
    }

    /// The principal whose secret this is.
    pub fn by_secret(&self, secret: &str) -> Option<(String, Entry)> {
        let h = sha256_hex(secret);
        self.map
            .read()
            .unwrap()
            .iter()
            .find(|(_, e)| super::governor::ct_eq(e.secret_sha256.as_bytes(), h.as_bytes()))
            .map(|(n, e)| (n.clone(), e.clone()))
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        self.map.read().unwrap().get(name).cloned()
    }

    pub fn all(&self) -> Vec<(String, Entry)> {
        self.map
            .read()
            .unwrap()
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_hashed_and_found_by_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = Principals::open(dir.path()).unwrap();
        let v = |s: &str| format!("v:{}", sha256_hex(s));
        let s = p.add("bot-1", "agent", false, v).unwrap();
        assert_eq!(
            p.get("bot-1").unwrap().verifier,
            format!("v:{}", sha256_hex(&s))
        );
        let text = std::fs::read_to_string(dir.path().join("principals.json")).unwrap();
        assert!(!text.contains(&s), "the secret itself is never stored");
        let p = Principals::open(dir.path()).unwrap();
        assert_eq!(p.by_secret(&s).unwrap().0, "bot-1");
        assert!(p.by_secret("lks_wrong").is_none());
        assert!(p.add("bot-1", "agent", false, v).is_err());
        let s2 = p.add("bot-1", "agent", true, v).unwrap();
        assert!(p.by_secret(&s).is_none() && p.by_secret(&s2).is_some());
        assert!(p.add("owner", "platform", false, v).is_err());
        assert!(p.add("Bad.Name", "agent", false, v).is_err());
    }
}
