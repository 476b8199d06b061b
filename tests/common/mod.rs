//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod browser;
pub mod checkout;
pub mod project;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `len` bytes that do not compress, different for each `seed` (xorshift64): the store
/// compresses pages, so a test that counts or finds stored bytes needs data like this.
pub fn noise(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn lakelet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lakelet"))
}

/// Runs `lakelet ARGS` with `--data-dir DIR`, failing the test with its stderr if it fails.
pub fn run(data_dir: &Path, args: &[&str]) -> String {
    let out = lakelet()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lakelet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The directory holding Postgres' binaries: `pg_config --bindir`, else Debian's layout.
pub fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.join("initdb").exists() {
                return p;
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("Postgres is not installed: run the README's test command, which installs it")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A fresh Postgres data directory at `dir/pgdata`, made by the real initdb (as the
/// unprivileged `postgres` user when the test runs as root: Postgres refuses root).
pub fn initdb(dir: &Path) -> PathBuf {
    let data = dir.join("pgdata");
    let initdb = pg_bindir().join("initdb");
    let mut cmd = if is_root() {
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&initdb);
        c
    } else {
        Command::new(&initdb)
    };
    let out = cmd
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// A native Postgres (not lakelet's) for a test: initdb'd in `dir` and started as the
/// `postgres` user (when root) with only a unix socket in `dir/sock`, which other local users
/// may reach (lakelet's import tools run as its compute user). Killed on drop.
pub struct NativeServer {
    pub socket_dir: PathBuf,
    child: std::process::Child,
}

impl NativeServer {
    pub fn start(dir: &Path) -> NativeServer {
        use std::os::unix::fs::PermissionsExt;
        let data = initdb(dir);
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o755)).unwrap();
        let postgres = pg_bindir().join("postgres");
        let mut cmd = if is_root() {
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&sock)
                .status()
                .unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&postgres);
            c
        } else {
            Command::new(&postgres)
        };
        let child = cmd
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=", "-c"])
            .arg(format!("unix_socket_directories={}", sock.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = NativeServer {
            socket_dir: sock,
            child,
        };
        let isready = pg_bindir().join("pg_isready");
        for _ in 0..300 {
            let ok = Command::new(&isready)
                .arg("-h")
                .arg(&server.socket_dir)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the native Postgres in {} did not start", dir.display());
    }

    /// A libpq URL of database `db` as user postgres, by the socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql:///{db}?host={}&port=5432&user=postgres",
            self.socket_dir.display()
        )
    }

    /// Runs SQL with psql; its unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_bindir().join("psql"))
            .args([&self.url(db), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        // runuser's child is the postmaster: find it by the socket directory it serves.
        let want = self.socket_dir.display().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.starts_with(&*pg_bindir().join("postgres").to_string_lossy())
                && cmd.contains(&want)
            {
                if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
                    unsafe { libc::kill(pid, libc::SIGQUIT) };
                }
            }
        }
        let _ = self.child.wait();
    }
}

/// One line per entry: path, kind, mode, owner, size, mtime (ns), crc32 of the contents.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let (kind, crc) = if m.file_type().is_symlink() {
            (
                "l",
                crc32fast::hash(
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                ),
            )
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ("d", 0)
        } else {
            ("f", crc32fast::hash(&std::fs::read(&p).unwrap()))
        };
        let mtime = if kind == "l" {
            0
        } else {
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        };
        out.push(format!(
            "{rel} {kind} {:o} {}:{} {} {mtime} {crc:08x}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            if kind == "d" { 0 } else { m.size() }
        ));
    }
    out.sort();
    out
}

/// A lakelet daemon for one test: its own data directory (hence its own runtime directory and
/// mounts) and a free API port. Dropping it stops everything, even after a panic or a SIGKILL
/// of the daemon: computes recorded in the runtime directory are killed, views detached.
pub struct Daemon {
    pub dir: PathBuf,
    pub run_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// `lakelet up` as every test daemon starts: free ports, GC only on demand.
const UP: &[&str] = &[
    "up",
    "--api-port",
    "0",
    "--proxy-port",
    "0",
    "--gc-every",
    "3600s",
];

impl Daemon {
    /// `lakelet up` again on this daemon's data directory (after a crash, say); its output.
    pub fn up_again(&self) -> String {
        self.run(UP)
    }

    pub fn up(extra: &[&str]) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut args = UP.to_vec();
        args.extend_from_slice(extra);
        run(&dir, &args);
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("daemon.json")).unwrap())
                .unwrap();
        Daemon {
            run_dir: PathBuf::from(info["run_dir"].as_str().unwrap()),
            dir,
            _tmp: tmp,
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        run(&self.dir, args)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.run(&a)).unwrap()
    }

    /// `lakelet ARGS`, expected to fail: returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = lakelet()
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "lakelet {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs SQL on a branch through `lakelet psql`; returns psql's unaligned output.
    pub fn sql(&self, branch: &str, sql: &str) -> String {
        self.run(&[
            "psql",
            branch,
            "--",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .trim()
        .to_string()
    }

    /// A libpq URL for `branch` through the proxy (`lakelet connstr`).
    pub fn url(&self, branch: &str) -> String {
        self.run(&["connstr", branch]).trim().to_string()
    }

    /// The proxy's `host:port`.
    pub fn proxy_addr(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("daemon.json")).unwrap())
                .unwrap();
        v["proxy"].as_str().unwrap().to_string()
    }

    /// Starts the branch's compute; its endpoint as JSON.
    pub fn endpoint(&self, branch: &str) -> serde_json::Value {
        self.json(&["branch", "start", branch])
    }

    /// The REST API with bearer `secret` (a principal's, or the owner's token from
    /// `api_token`): (status, body text).
    pub fn http(
        &self,
        secret: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("daemon.json")).unwrap())
                .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", info["api"].as_str().unwrap()))
            .header("Authorization", format!("Bearer {secret}"))
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut r = agent.run(req).unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// The API's `host:port`.
    pub fn api_addr(&self) -> String {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("daemon.json")).unwrap())
                .unwrap();
        info["api"].as_str().unwrap().to_string()
    }

    /// The owner's API token (DATA/api-token).
    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("daemon.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    pub fn down(&self) {
        self.run(&["down"]);
    }

    /// Last resort: what `lakelet up` does after a crash, without starting anything.
    fn force_cleanup(&self) {
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Ok(rd) = std::fs::read_dir(self.run_dir.join("p")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if let Some(pid) = text.lines().next().and_then(|l| l.parse::<u32>().ok()) {
                    lakelet::compute::postgres::kill_tree(pid);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in info.lines() {
                if let Some(mp) = l.split(' ').nth(4) {
                    if Path::new(mp).starts_with(&self.run_dir) {
                        let _ = Command::new("umount").args(["-l", mp]).status();
                    }
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let ok = lakelet()
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("down")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok || std::thread::panicking() {
            self.force_cleanup();
        }
        // Never recursive: a leftover mount point would lead into branch data.
        for sub in ["m", "s", "p", "w"] {
            if let Ok(rd) = std::fs::read_dir(self.run_dir.join(sub)) {
                for e in rd.flatten() {
                    if sub == "s" {
                        // A killed postmaster leaves its socket and lock file behind.
                        for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                            let name = f.file_name();
                            if name.to_string_lossy().starts_with(".s.PGSQL.") {
                                let _ = std::fs::remove_file(f.path());
                            }
                        }
                    }
                    let _ = std::fs::remove_dir(e.path());
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let _ = std::fs::remove_dir(self.run_dir.join(sub));
        }
        let _ = std::fs::remove_dir(&self.run_dir);
    }
}

/// Mount points at or under `root` (from /proc/self/mountinfo).
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(root))
        .collect()
}

/// A tool scripts/test.sh installs into a cache (`LAKELET_TEST_*` names it; else the cache's
/// default place); failing the test with what to run if it is missing.
fn test_tool(var: &str, default: &str, what: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or("/root".into()))
            .join(".cache/lakelet")
            .join(default)
    });
    assert!(
        p.exists(),
        "{} does not exist: scripts/test.sh installs {what} there (or point {var} at one)",
        p.display()
    );
    p
}

/// The Python venv scripts/test.sh makes: databricks-sdk, schemathesis, psycopg 3 and
/// psycopg_pool (pure Python, on the system's libpq), psycopg2-binary.
pub fn test_python() -> PathBuf {
    test_tool(
        "LAKELET_TEST_PYTHON",
        "venv/bin/python",
        "a venv with databricks-sdk, schemathesis and psycopg",
    )
}

/// The node_modules scripts/test.sh fills from npm: node-postgres (`pg`) and pg-copy-streams.
pub fn test_node_modules() -> PathBuf {
    test_tool(
        "LAKELET_TEST_NODE_MODULES",
        "node/node_modules",
        "node-postgres and pg-copy-streams",
    )
}

/// The worked example's fix of the Split Column's arithmetic: the batch and serial parts
/// that are not whole numbers become NULL instead of failing the cast.
pub fn tolerant_split(sql: &str) -> String {
    sql.replace(
        "substr(inventory_code, 6, 5)::int",
        "(substring(substr(inventory_code, 6, 5) from '^\\s*([0-9]+)\\s*$'))::int",
    )
    .replace(
        "substr(inventory_code, 12)::int",
        "(substring(substr(inventory_code, 12) from '^\\s*([0-9]+)\\s*$'))::int",
    )
}

/// Polls `f` every 100 ms until it returns `Some`, or `limit` passes (then `None`). For
/// waiting on something the daemon does in the background; never a timing assertion.
pub fn wait_until<T>(limit: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > until {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
