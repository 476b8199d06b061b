//! The proxy with real clients: psql, pgbench, tokio-postgres and psycopg2 reach two branches on
//! one port, over TLS and without; errors carry the SQLSTATE a real server sends; cancel works by
//! both routes; an idle-stopped compute is woken by the next connection; garbage, slowloris
//! clients and abrupt disconnects leave the proxy serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{pg_bindir, Daemon};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// The URL with sslmode=disable (tokio-postgres here has no TLS connector).
fn plain(url: &str) -> String {
    format!("{url}&sslmode=disable")
}

/// The server's message (tokio-postgres's Display says only "db error").
fn msg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({:?})", db.code().code(), db.message(), db.hint()),
        None => e.to_string(),
    }
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// psql with a connection string; returns (success, stdout+stderr).
fn psql(conn: &str, sql: &str) -> (bool, String) {
    let out = Command::new(pg_bindir().join("psql"))
        .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", sql])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn branch_stats(d: &Daemon, branch: &str) -> serde_json::Value {
    let s = d.json(&["status"]);
    s["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == branch)
        .unwrap_or_else(|| panic!("no branch {branch} in status"))
        .clone()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn python() -> &'static str {
    // Debian's interpreter, which has python3-psycopg2 (the test command installs it).
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed (is python3-psycopg2 installed? scripts/test.sh installs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_reach_two_branches_on_one_port() {
    let d = Daemon::up(&[]);
    d.sql(
        "main",
        "create table who(v text); insert into who values ('main')",
    );
    d.run(&["branch", "create", "feat"]);
    d.sql("feat", "update who set v = 'feat'");
    let main_url = d.url("main");
    let feat_url = d.url("feat");
    assert!(feat_url.contains("options=branch%3Dfeat"), "{feat_url}");

    // psql, with and without TLS; channel binding (SCRAM-SHA-256-PLUS) over TLS.
    for (mode, tls) in [("disable", false), ("require", true)] {
        let u = format!("{feat_url}&sslmode={mode}");
        assert_eq!(psql(&u, "select v from who"), (true, "feat".into()));
        let (ok, info) = psql(&u, "\\conninfo");
        assert!(ok, "{info}");
        assert_eq!(
            info.contains("SSL connection"),
            tls,
            "sslmode={mode}: {info}"
        );
    }
    let (ok, out) = psql(
        &format!("{main_url}&sslmode=require&channel_binding=require"),
        "select v from who",
    );
    assert!(ok && out == "main", "{out}");

    // The fallback for clients that set only host/port/user/password/database.
    let fallback = d.run(&["connstr", "feat", "--fallback"]).trim().to_string();
    assert!(!fallback.contains("options="), "{fallback}");
    assert_eq!(psql(&fallback, "select v from who"), (true, "feat".into()));

    // --format env, as libpq reads it.
    let env = d.run(&["connstr", "feat", "--format", "env"]);
    let mut cmd = Command::new(pg_bindir().join("psql"));
    for l in env.lines() {
        let (k, v) = l.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let out = cmd.args(["-XAtc", "select v from who"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "feat");
    let jdbc = d.run(&["connstr", "feat", "--format", "jdbc"]);
    let port = d.proxy_addr().rsplit_once(':').unwrap().1.to_string();
    assert!(
        jdbc.starts_with(&format!(
            "jdbc:postgresql://127.0.0.1:{port}/postgres?user=postgres&password="
        )) && jdbc.trim_end().ends_with("&options=branch%3Dfeat"),
        "{jdbc}"
    );

    // tokio-postgres: both branches at once on the one port, interleaved.
    let (ma, fe) = (plain(&main_url), plain(&feat_url));
    let (a, b) = tokio::join!(connect(&ma), connect(&fe));
    let (a, b) = (a.unwrap(), b.unwrap());
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(
            a.query_one("select v from who", &[]),
            b.query_one("select v from who", &[])
        );
        assert_eq!(ra.unwrap().get::<_, String>(0), "main");
        assert_eq!(rb.unwrap().get::<_, String>(0), "feat");
    }
    assert_eq!(
        b.query_one(
            "select count(*) from pg_stat_activity where backend_type = 'client backend'",
            &[]
        )
        .await
        .unwrap()
        .get::<_, i64>(0),
        1,
        "each branch has its own compute"
    );
    drop((a, b));

    // psycopg2 (libpq underneath, but its own connection handling).
    let out = run_python(
        "import sys, psycopg2\n\
         c = psycopg2.connect(sys.argv[1])\n\
         cur = c.cursor(); cur.execute('select v from who'); print(cur.fetchone()[0])",
        &[&feat_url],
    );
    assert_eq!(out, "feat");

    // pgbench through the proxy.
    let mut pgb = Command::new(pg_bindir().join("pgbench"));
    for l in env.lines() {
        let (k, v) = l.split_once('=').unwrap();
        pgb.env(k, v);
    }
    let out = pgb.args(["-i", "-s", "1", "-q"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pgb = Command::new(pg_bindir().join("pgbench"));
    for l in env.lines() {
        let (k, v) = l.split_once('=').unwrap();
        pgb.env(k, v);
    }
    let out = pgb
        .args(["-c", "2", "-j", "2", "-t", "50"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("number of transactions actually processed: 100/100"),
        "{text}"
    );

    // Our SCRAM verifiers are Postgres's: one Postgres wrote checks out here.
    d.sql(
        "feat",
        "set password_encryption = 'scram-sha-256'; create role probe password 'sesame'",
    );
    let pgv = d.sql(
        "feat",
        "select rolpassword from pg_authid where rolname = 'probe'",
    );
    let v = lakelet::proxy::auth::Verifier::parse(&pgv).unwrap();
    assert!(v.check_password("sesame") && !v.check_password("sesame!"));

    // Per-branch metrics.
    wait_for("sessions to end", || {
        branch_stats(&d, "feat")["connections"]["active"] == 0
    });
    let feat = branch_stats(&d, "feat")["connections"].clone();
    assert!(feat["total"].as_u64().unwrap() >= 10, "{feat}");
    assert!(feat["bytes_to_clients"].as_u64().unwrap() > 0, "{feat}");
    assert!(
        d.json(&["status"])["proxy"]["tls_sessions"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_sqlstate_a_server_sends() {
    let d = Daemon::up(&[]);
    let url = plain(&d.url("main"));

    let e = connect(&url.replace("branch%3Dmain", "branch%3Dnope"))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), SqlState::INVALID_CATALOG_NAME.code(), "{e}");
    assert!(msg(&e).contains("\"nope\""), "{}", msg(&e));
    // Admission refused it, audited, rather than letting the compute start find out.
    let audit = d.json(&["audit", "--limit", "1000"]);
    let row = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "connect" && r["target"] == "nope")
        .unwrap_or_else(|| panic!("no audit row for the refused connection: {audit}"));
    assert_eq!(row["decision"], "refused", "{row}");
    assert_eq!(row["rule"], "admission", "{row}");

    let pw = url
        .split_once("postgres:")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0
        .to_string();
    let e = connect(&url.replace(&pw, "wrong")).await.err().unwrap();
    assert_eq!(code(&e), SqlState::INVALID_PASSWORD.code(), "{e}");
    // An unknown user looks exactly like a wrong password.
    let e = connect(&url.replace("postgres:", "nobody:"))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), SqlState::INVALID_PASSWORD.code(), "{e}");

    d.run(&["branch", "create", "snap", "--snapshot"]);
    let e = connect(&url.replace("branch%3Dmain", "branch%3Dsnap"))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "55000", "{e}");

    // A compute that cannot start: the client gets 57P03 with Postgres's reason.
    d.run(&["branch", "create", "broken"]);
    d.sql(
        "broken",
        "alter system set shared_preload_libraries = 'no_such_library'",
    );
    d.run(&["branch", "stop", "broken"]);
    let e = connect(&url.replace("branch%3Dmain", "branch%3Dbroken"))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), SqlState::CANNOT_CONNECT_NOW.code(), "{e}");
    let m = msg(&e);
    assert!(
        m.contains("failed to start") && m.contains("no_such_library"),
        "{m}"
    );
    // …and the daemon serves the others as before.
    let c = connect(&url).await.unwrap();
    c.simple_query("select 1").await.unwrap();
    // The refusals were counted on the branches they named.
    assert!(
        branch_stats(&d, "main")["connections"]["auth_failures"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        branch_stats(&d, "broken")["connections"]["errors"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // A daemon in `--auth password` mode takes cleartext only over TLS; it serves a configured
    // certificate (the first daemon's generated one), which verify-full accepts for 127.0.0.1.
    drop(c);
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    std::fs::copy(d.dir.join("tls/server.crt"), &crt).unwrap();
    std::fs::copy(d.dir.join("tls/server.key"), &key).unwrap();
    drop(d);
    let d = Daemon::up(&[
        "--auth",
        "password",
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        !d.dir.join("tls/server.crt").exists(),
        "no certificate generated"
    );
    let u = d.url("main");
    let verify = format!("{u}&sslmode=verify-full&sslrootcert={}", crt.display());
    assert_eq!(psql(&verify, "select 1"), (true, "1".into()));
    let (ok, out) = psql(&format!("{u}&sslmode=disable"), "select 1");
    assert!(!ok && out.contains("only over TLS"), "{out}");
    assert_eq!(
        psql(&format!("{u}&sslmode=require"), "select 1"),
        (true, "1".into())
    );
    let pw = u
        .split_once("postgres:")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0
        .to_string();
    let (ok, out) = psql(
        &format!("{}&sslmode=require", u.replace(&pw, "wrong")),
        "select 1",
    );
    assert!(
        !ok && out.contains("password authentication failed"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_by_protocol_and_by_function_and_wake_from_zero() {
    let d = Daemon::up(&["--idle-stop", "2s", "--reap-every", "300ms"]);
    let url = plain(&d.url("main"));

    // The protocol CancelRequest, through the proxy's key map.
    let c = connect(&url).await.unwrap();
    let token = c.cancel_token();
    let q = tokio::spawn(async move {
        let r = c.simple_query("select pg_sleep(60)").await;
        (c, r)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    token.cancel_query(NoTls).await.unwrap();
    let (c, r) = tokio::time::timeout(Duration::from_secs(30), q)
        .await
        .unwrap()
        .unwrap();
    let e = r.expect_err("the query was cancelled");
    assert_eq!(code(&e), SqlState::QUERY_CANCELED.code(), "{e}");
    // The session survives its cancelled query.
    c.simple_query("select 1").await.unwrap();

    // pg_cancel_backend from another session.
    let q = tokio::spawn(async move { c.simple_query("select pg_sleep(60) /* victim */").await });
    let killer = connect(&url).await.unwrap();
    let t = Instant::now();
    loop {
        let n: i64 = killer
            .query_one(
                "select count(pg_cancel_backend(pid)) from pg_stat_activity \
                 where query like '%/* victim */' and pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = q
        .await
        .unwrap()
        .expect_err("cancelled by pg_cancel_backend");
    assert_eq!(code(&e), SqlState::QUERY_CANCELED.code(), "{e}");
    drop(killer);

    // psycopg2: the client sees its backend's real pid (only the secret is the proxy's); a
    // CancelRequest with that pid but a wrong secret cancels nothing, the right one cancels;
    // LISTEN/NOTIFY names the sender by that pid; pg_terminate_backend of it ends the session.
    let host_port = d.proxy_addr();
    let out = run_python(
        r#"
import sys, socket, struct, threading, time, psycopg2
url, hp = sys.argv[1], sys.argv[2]
host, port = hp.rsplit(':', 1)
c = psycopg2.connect(url)
cur = c.cursor()
cur.execute('select pg_backend_pid()')
real = cur.fetchone()[0]
key_pid = c.get_backend_pid()
assert key_pid == real, (key_pid, real)
c.rollback()
c.autocommit = True
cur.execute('listen lakelet_pids')
cur.execute("notify lakelet_pids, 'hi'")
c.poll()
assert [(n.pid, n.payload) for n in c.notifies] == [(key_pid, 'hi')], c.notifies
c.autocommit = False
def forged():
    time.sleep(0.3)
    s = socket.create_connection((host, int(port)))
    s.sendall(struct.pack('!iiii', 16, 80877102, key_pid, 12345))
    s.close()
threading.Thread(target=forged).start()
cur.execute('select pg_sleep(1.5)')   # must complete: the forged cancel is ignored
def real_cancel():
    time.sleep(0.5)
    c.cancel()
threading.Thread(target=real_cancel).start()
try:
    cur.execute('select pg_sleep(60)')
    print('not cancelled')
except psycopg2.errors.QueryCanceled:
    print('cancelled')
c.rollback()
other = psycopg2.connect(url)
other.autocommit = True
oc = other.cursor()
oc.execute('select pg_terminate_backend(%s, 5000)', (key_pid,))
assert oc.fetchone()[0] is True
try:
    cur.execute('select 1')
    print('not terminated')
except (psycopg2.OperationalError, psycopg2.InterfaceError):
    print('terminated')
oc.execute('select count(*) from pg_stat_activity where pid = %s', (key_pid,))
print('gone' if oc.fetchone()[0] == 0 else 'still there')
"#,
        &[&url, &host_port],
    );
    assert_eq!(out, "cancelled\nterminated\ngone");

    // Wake from zero: once idle-stopped, the next connection starts the compute.
    wait_for("the idle compute to stop", || {
        branch_stats(&d, "main")["compute"]["state"] == "stopped"
    });
    let cold_before = branch_stats(&d, "main")["connections"]["cold_starts"]
        .as_u64()
        .unwrap();
    let c = connect(&url).await.unwrap();
    let one: i32 = c.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let b = branch_stats(&d, "main");
    assert_eq!(b["compute"]["state"], "running");
    assert_eq!(
        b["connections"]["cold_starts"].as_u64().unwrap(),
        cold_before + 1
    );
}

/// The proxy's TLS records are no bigger than Postgres's (OpenSSL writes its 8 KiB send buffer
/// as one record). libpq keeps 8 KiB free before each read, so such a record is always read
/// whole; half of a 16 KiB one could stay decrypted inside libpq's TLS layer while a client
/// that waits on the socket itself (psycopg 3, asyncpg-style loops) waits forever.
#[test]
fn tls_records_are_no_bigger_than_postgres_sends() {
    let d = Daemon::up(&[]);
    let out = run_python(
        r#"
import io, socket, sys, threading, psycopg2
url, hp = sys.argv[1], sys.argv[2]
host, port = hp.rsplit(':', 1)
lsock = socket.socket()
lsock.bind(('127.0.0.1', 0))
lsock.listen(1)
sizes, answered = [], [False]
def pump(src, dst, parse):
    buf = b''
    while True:
        b = src.recv(65536)
        if not b:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        dst.sendall(b)
        if not parse:
            continue
        buf += b
        if not answered[0]:
            assert buf[:1] == b'S', buf[:1]   # the answer to SSLRequest, then TLS records
            buf, answered[0] = buf[1:], True
        while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], 'big'):
            n = int.from_bytes(buf[3:5], 'big')
            sizes.append(n)
            buf = buf[5 + n:]
def serve():
    c, _ = lsock.accept()
    s = socket.create_connection((host, int(port)))
    threading.Thread(target=pump, args=(c, s, False), daemon=True).start()
    pump(s, c, True)
threading.Thread(target=serve, daemon=True).start()
u = url.replace(hp, '127.0.0.1:%d' % lsock.getsockname()[1])
conn = psycopg2.connect(u + '&sslmode=require&gssencmode=disable')
cur = conn.cursor()
out = io.StringIO()
cur.copy_expert("copy (select g, md5(g::text), repeat('y', 300) from generate_series(1, 20000) g) to stdout", out)
assert len(out.getvalue()) > 5000000, len(out.getvalue())
conn.close()
print(len(sizes), max(sizes))
"#,
        &[&d.url("main"), &d.proxy_addr()],
    );
    let (records, largest) = out.split_once(' ').unwrap();
    let records: usize = records.parse().unwrap();
    let largest: usize = largest.parse().unwrap();
    assert!(records > 300, "{out}");
    // 8 KiB of plaintext, plus the AEAD tag and TLS 1.3's content type byte.
    assert!(largest <= 8192 + 64, "a TLS record of {largest} bytes");
}

/// TLS ends at the proxy, so a compute's `pg_stat_ssl` says `false` for a TLS client; the
/// `lakelet` database's `sessions` says what the client negotiated, keyed by the backend pid
/// `pg_stat_activity` shows, and which relay carries each session.
#[test]
fn the_lakelet_database_shows_each_sessions_tls_and_relay() {
    let d = Daemon::up(&[]);
    let out = run_python(
        r#"
import json, sys, psycopg2
url = sys.argv[1]
tls = psycopg2.connect(url + '&sslmode=require')
plain = psycopg2.connect(url + '&sslmode=disable')
c = tls.cursor()
c.execute('select ssl from pg_stat_ssl where pid = pg_backend_pid()')
compute_says = c.fetchone()[0]
sys_db = psycopg2.connect(url.replace('/postgres?', '/lakelet?') + '&sslmode=disable')
s = sys_db.cursor()
s.execute("""select pid, branch, usename, datname, host(client_addr), ssl, ssl_version,
                    ssl_cipher, relay, backend_start is not null
             from sessions where pid in (%s, %s) order by ssl""",
          [tls.info.backend_pid, plain.info.backend_pid])
rows = s.fetchall()
print(json.dumps({"compute_says": compute_says, "tls_pid": tls.info.backend_pid,
                  "plain_pid": plain.info.backend_pid, "rows": rows}))
"#,
        &[&d.url("main")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["compute_says"], false, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    let (plain, tls) = (&rows[0], &rows[1]);
    assert_eq!(plain[0], v["plain_pid"]);
    assert_eq!(tls[0], v["tls_pid"]);
    for r in rows {
        assert_eq!(r[1], "main");
        assert_eq!(r[2], "postgres");
        assert_eq!(r[3], "postgres");
        assert_eq!(r[4], "127.0.0.1");
        assert_eq!(r[9], true);
    }
    assert_eq!(tls[5], true);
    assert_eq!(tls[6], "TLSv1.3", "{v}");
    assert!(tls[7].as_str().unwrap().starts_with("TLS_AES_"), "{v}");
    assert_eq!(tls[8], "daemon");
    assert_eq!(plain[5], false);
    assert!(plain[6].is_null() && plain[7].is_null(), "{v}");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(plain[8], if root { "kernel" } else { "daemon" }, "{v}");
}

/// The proxy changes no message and no order: psql's whole output (stdout and stderr in one
/// stream) for a script whose notices come right before and during a COPY FROM STDIN is the
/// same through the proxy, with TLS and without, as on the compute's own socket.
#[test]
fn notices_around_copy_reach_psql_as_from_the_compute() {
    let d = Daemon::up(&[]);
    d.sql(
        "main",
        "create table nt(a int); \
         create function nt_note() returns trigger language plpgsql as \
           $$ begin raise notice 'row %', new.a; return new; end $$; \
         create trigger nt_t before insert on nt for each row execute function nt_note()",
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("notices.sql");
    std::fs::write(
        &script,
        "begin;\ndo $$ begin raise notice 'before copy'; end $$;\ncopy nt from stdin;\n1\n2\n\\.\n\
         select count(*) from nt;\nrollback;\n",
    )
    .unwrap();
    let ep = d.endpoint("main");
    let run = |conn: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{}' -X -d \"$1\" -f '{}' 2>&1",
                pg_bindir().join("psql").display(),
                script.display()
            ))
            .arg("sh")
            .arg(conn)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let direct = format!(
        "host={} port={} user=postgres dbname=postgres",
        ep["socket_dir"].as_str().unwrap(),
        ep["port"]
    );
    let url = d.url("main");
    for _ in 0..3 {
        let want = run(&direct);
        assert!(want.contains("NOTICE:  before copy"), "{want}");
        assert!(want.contains("NOTICE:  row 2"), "{want}");
        for mode in ["disable", "require"] {
            let got = run(&format!("{url}&sslmode={mode}"));
            assert_eq!(got, want, "sslmode={mode}");
        }
    }
}

/// Sends `bytes` on a fresh connection and returns what comes back before the proxy closes
/// (or after 20 s).
fn poke(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    out
}

fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

/// A plain session is relayed inside the kernel (sockmap) when the daemon may set that up (as
/// root on Linux ≥ 5.15, which is how the suite runs); a TLS session, and a client that
/// pipelines a query behind its startup packet, are copied by the daemon; both give the same
/// answers, and the kernel-relayed session's bytes are still counted. `--proxy-relay user`
/// sends nothing to the kernel.
#[test]
fn the_kernel_relay_carries_plain_sessions_and_steps_aside_for_the_rest() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let d = Daemon::up(&["--auth", "trust"]);
    let proxy = |d: &Daemon| d.json(&["status"])["proxy"].clone();
    let kernel = |d: &Daemon| proxy(d)["kernel_sessions"].as_u64().unwrap();
    assert_eq!(proxy(&d)["kernel_relay"], root, "{}", proxy(&d));
    let url = d.url("main");
    assert_eq!(
        psql(&format!("{url}&sslmode=disable"), "select 40 + 2"),
        (true, "42".into())
    );
    let k = kernel(&d);
    assert_eq!(k, root as u64, "one plain session, relayed in the kernel");
    let copied = psql(
        &format!("{url}&sslmode=disable"),
        "copy (select repeat('k', 1000) from generate_series(1, 3000)) to stdout",
    );
    assert!(
        copied.0 && copied.1.len() == 3000 * 1001 - 1,
        "{}",
        copied.1.len()
    );
    assert!(
        branch_stats(&d, "main")["connections"]["bytes_to_clients"]
            .as_u64()
            .unwrap()
            > 3_000_000,
        "the kernel relay's bytes are counted"
    );
    let k = kernel(&d);
    assert_eq!(k, 2 * root as u64);
    assert_eq!(
        psql(&format!("{url}&sslmode=require"), "select 1"),
        (true, "1".into())
    );
    assert_eq!(kernel(&d), k, "TLS sessions stay in the daemon");

    // Startup, a query and Terminate in one write: the query arrives with the startup packet,
    // before the session could be joined, so the daemon copies this one, in order.
    let mut s = TcpStream::connect(d.proxy_addr()).unwrap();
    let mut bytes = startup_packet(&[
        ("user", "postgres"),
        ("database", "postgres"),
        ("options", "branch=main"),
    ]);
    let q = b"select 'piped'\0";
    bytes.push(b'Q');
    bytes.extend_from_slice(&((q.len() + 4) as u32).to_be_bytes());
    bytes.extend_from_slice(q);
    bytes.extend_from_slice(&[b'X', 0, 0, 0, 4]);
    s.write_all(&bytes).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = vec![];
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("piped"), "{text:?}");
    let mut types = vec![];
    let mut rest = &out[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        types.push(rest[0]);
        rest = &rest[(1 + len).min(rest.len())..];
    }
    // Authentication, parameters, key, ready; then the row and ready again.
    assert_eq!(types.iter().filter(|&&t| t == b'Z').count(), 2, "{text:?}");
    assert!(types.contains(&b'D') && types.contains(&b'C'), "{text:?}");
    assert_eq!(kernel(&d), k, "a pipelined session stays in the daemon");

    let u = Daemon::up(&["--proxy-relay", "user"]);
    assert_eq!(proxy(&u)["kernel_relay"], false);
    assert_eq!(
        psql(&format!("{}&sslmode=disable", u.url("main")), "select 7"),
        (true, "7".into())
    );
    assert_eq!(kernel(&u), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_slowloris_and_disconnects_leave_it_serving() {
    let d = Daemon::up(&["--proxy-handshake-timeout", "2s"]);
    let addr = d.proxy_addr();
    let url = plain(&d.url("main"));

    // Slow clients hold connections open, sending a byte now and then; they must not block
    // others, and are cut off at the handshake timeout.
    let slow: Vec<_> = (0..40)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                let p = startup_packet(&[("user", "postgres")]);
                let t = Instant::now();
                for b in p.iter().take(3 + i % 5) {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(700));
                }
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut rest = vec![];
                let _ = s.read_to_end(&mut rest);
                t.elapsed()
            })
        })
        .collect();

    let c = connect(&url).await.unwrap();
    c.simple_query("select 1").await.unwrap();

    // Garbage of every shape: each gets an error or a close, never a hang.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = startup_packet(&[("user", "postgres"), ("options", "branch=main")]);
    let mut cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 3],
        [&[0u8, 0, 0, 8][..], &[0, 2, 0, 0]].concat(),
        // SSLRequest followed at once by plaintext (CVE-2021-23214).
        [&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..], &valid[..]].concat(),
        // A startup, then a non-password message during authentication.
        [&valid[..], b"Q\0\0\0\x0dselect 1\0"].concat(),
        // A SASLInitialResponse whose length lies.
        [&valid[..], b"p\0\0\0\x10SCRAM-SHA-256\0"].concat(),
        [&valid[..], b"p\x7f\xff\xff\xff"].concat(),
    ];
    for cut in [1, 4, 7, valid.len() / 2, valid.len() - 1] {
        cases.push(valid[..cut].to_vec());
    }
    for _ in 0..30 {
        let n = (rnd() % 300) as usize;
        cases.push((0..n).map(|_| rnd() as u8).collect());
    }
    // GSSENCRequest: 'N', then the connection goes on in the clear (here: to the SASL request).
    let out = poke(
        &addr,
        &[&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30][..], &valid[..]].concat(),
    );
    assert_eq!(&out[..2], b"NR", "{out:?}");
    // Protocol 3.2 with a `_pq_.` option: a NegotiateProtocolVersion naming 3.0 (as the full
    // number 196608, like Postgres) and the option, then authentication as usual.
    let mut p32 = startup_packet(&[("user", "postgres"), ("_pq_.frob", "1")]);
    p32[4..8].copy_from_slice(&196610u32.to_be_bytes());
    let out = poke(&addr, &p32);
    let mut v = b"v\0\0\0\x16\0\x03\0\0\0\0\0\x01_pq_.frob\0".to_vec();
    v.push(b'R');
    assert_eq!(&out[..v.len()], &v[..], "{out:?}");
    for case in &cases {
        let out = poke(&addr, case);
        if let Some(&b) = out.first() {
            // 'E' an error, 'R' an auth request, 'S'/'N' a negotiation answer.
            assert!(b"ERSN".contains(&b), "{case:?} → {out:?}");
        }
    }
    // An abrupt disconnect in the middle of a query.
    let mut child = Command::new(pg_bindir().join("psql"))
        .args(["-XAtq", "-d", &url, "-c", "select pg_sleep(2)"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    child.kill().unwrap();
    let _ = child.wait();

    for t in slow {
        t.join().unwrap();
    }
    // Still serving, and it counted the bad startups.
    c.simple_query("select 1").await.unwrap();
    let c2 = connect(&url).await.unwrap();
    c2.simple_query("select 1").await.unwrap();
    let s = d.json(&["status"]);
    assert!(
        s["proxy"]["bad_startups"].as_u64().unwrap() >= 30,
        "{}",
        s["proxy"]
    );
    drop((c, c2));
    wait_for("sessions to end", || {
        branch_stats(&d, "main")["connections"]["active"] == 0
    });
}

#[test]
fn a_taken_proxy_port_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = common::lakelet()
        .arg("--data-dir")
        .arg(&dir)
        .args(["up", "--api-port", "0", "--proxy-port", &port])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--proxy-port"), "{err}");
    // Nothing left running.
    assert!(!dir.join("daemon.json").exists());
    let run_dir = lakelet::compute::run_dir(&dir.canonicalize().unwrap());
    assert!(common::mounts_under(&run_dir).is_empty());
    assert!(!run_dir.exists(), "{} was left behind", run_dir.display());
}
