//! Helpers the end-to-end benches share: sizes from the environment, the `lakelet` binary, the
//! output directory, percentiles, and progress lines on stderr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// pgbench's client and thread counts for throughput runs (2 cores: 2 threads, 4 clients).
pub const CLIENTS: &str = "4";
pub const THREADS: &str = "2";

/// When the run started, for the timestamps of `progress!`.
pub static START: OnceLock<Instant> = OnceLock::new();

/// A progress line on stderr, stamped with the seconds since `START`.
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[{:7.1}s] {}", $crate::common::START.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            format!($($arg)*))
    };
}

pub fn check(what: &str, out: &Output) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// The number after `key` on the first line that starts with it ("tps = 123.4 (...)").
pub fn field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The `lakelet` binary: cargo sets CARGO_BIN_EXE_lakelet when it builds a bench; the fallback
/// is the binary next to our own `deps/` directory (target/<profile>/lakelet).
pub fn lakelet_exe() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_lakelet") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().expect("our own path");
    me.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<bench>")
        .join("lakelet")
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub fn out_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("lakelet-bench")
}

/// Nearest-rank percentile of microsecond samples (`lakelet bench`'s definition).
pub fn pct(samples: &[u64], p: f64) -> u64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    lakelet::bench::report::pct(&s, p)
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

pub fn stats(samples: &[u64]) -> Value {
    json!({ "p50_us": pct(samples, 0.5), "p95_us": pct(samples, 0.95), "samples_us": samples })
}

/// Ends a bench run: the raw figures to `$CARGO_TARGET_DIR/lakelet-bench/NAME.json`, the table
/// on stdout, or the error and exit status 1.
pub fn finish(name: &str, result: Result<Value>, table: impl Fn(&Value) -> String) {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name} bench failed: {e:#}");
            std::process::exit(1);
        }
    };
    let dir = out_dir();
    let path = dir.join(format!("{name}.json"));
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()))
    {
        eprintln!("writing {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("{}", table(&report));
    println!("raw figures: {}", path.display());
}
