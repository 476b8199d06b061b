//! Finding the Postgres binaries: a configured bin dir, `pg_config` on PATH, and the places
//! distributions install them (`/usr/lib/postgresql/N/bin` on Debian). Each branch runs the
//! major version its data directory says (`PG_VERSION`), so clusters of different majors can
//! live side by side.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One Postgres installation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgInstall {
    pub bindir: PathBuf,
    pub major: u32,
    /// `postgres --version` as printed, e.g. "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)".
    pub version: String,
}

impl PgInstall {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    fn probe(bindir: &Path) -> Result<PgInstall> {
        let postgres = bindir.join("postgres");
        let out = Command::new(&postgres)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", postgres.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_major(&version)
            .with_context(|| format!("{} printed {version:?}", postgres.display()))?;
        Ok(PgInstall {
            bindir: bindir.to_path_buf(),
            major,
            version,
        })
    }
}

/// "postgres (PostgreSQL) 15.14 (Debian …)" → 15; "postgres (PostgreSQL) 9.6.24" → 9.
fn parse_major(v: &str) -> Result<u32> {
    let num = v
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .context("no version number")?;
    let major = num.split(['.', 'b', 'r', 'd']).next().unwrap_or("");
    Ok(major.parse()?)
}

/// Every installation found, newest major first. `configured` wins and must be valid.
pub fn discover(configured: Option<&Path>) -> Result<Vec<PgInstall>> {
    if let Some(dir) = configured {
        return Ok(vec![PgInstall::probe(dir).with_context(|| {
            format!(
                "no usable Postgres in the configured bin dir {} (it must contain `postgres`)",
                dir.display()
            )
        })?]);
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    for root in ["/usr/lib/postgresql", "/usr/local/lib/postgresql"] {
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                dirs.push(e.path().join("bin"));
            }
        }
    }
    dirs.push("/usr/local/pgsql/bin".into());
    let mut found: Vec<PgInstall> = Vec::new();
    for d in dirs {
        if !d.join("postgres").exists() || found.iter().any(|f| f.bindir == d) {
            continue;
        }
        if let Ok(p) = PgInstall::probe(&d) {
            if !found.iter().any(|f| f.major == p.major) {
                found.push(p);
            }
        }
    }
    if found.is_empty() {
        bail!(
            "no PostgreSQL installation found (looked at pg_config on PATH and \
             /usr/lib/postgresql/*/bin); install one (`apt-get install postgresql`) or pass \
             --pg-bindir DIR"
        );
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.major));
    Ok(found)
}

/// The installation for a data directory whose PG_VERSION says `major`.
pub fn for_major(installs: &[PgInstall], major: u32) -> Result<&PgInstall> {
    installs.iter().find(|p| p.major == major).with_context(|| {
        let have: Vec<String> = installs.iter().map(|p| p.major.to_string()).collect();
        format!(
            "this branch holds a PostgreSQL {major} cluster but only PostgreSQL {} is \
             installed; install postgresql-{major} or pass --pg-bindir",
            have.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn majors_parse_from_real_version_strings() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)").unwrap(),
            15
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17.2").unwrap(), 17);
        assert_eq!(parse_major("postgres (PostgreSQL) 18beta1").unwrap(), 18);
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24").unwrap(), 9);
        assert!(parse_major("garbage").is_err());
    }
}
