//! The Lakebase-shaped API against a running daemon (real storage, real computes): every
//! endpoint's contract, bad requests that must change nothing, expiry, the official Databricks
//! SDK, and the CLI against a Lakebase stand-in and against the daemon.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{test_python, Daemon};
use serde_json::{json, Value};

/// A raw HTTP client of the daemon's API.
struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    fn of(d: &Daemon) -> Api {
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(d.dir.join("daemon.json")).unwrap())
                .unwrap();
        Api {
            base: format!("http://{}", info["api"].as_str().unwrap()),
            token: d.run(&["token"]).trim().to_string(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// `(status, body)`; the body as JSON, or as a JSON string when it is not JSON.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call_as(method, path, body, Some(&self.token))
    }

    fn call_as(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = ureq::http::Request::builder().method(method).uri(&url);
        let req = match token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        };
        let req = req
            .header("Content-Type", "application/json")
            .body(body.unwrap_or("").to_string())
            .unwrap();
        let mut resp = self.agent.run(req).unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert_eq!(s, 200, "{method} {path}: {v}");
        v
    }

    /// A finished operation's response (the daemon's are done when returned).
    fn op(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let op = self.ok(method, path, body);
        assert_eq!(op["done"], true, "{op}");
        let again = self.ok(
            "GET",
            &format!("/api/2.0/postgres/{}", op["name"].as_str().unwrap()),
            None,
        );
        assert_eq!(again["name"], op["name"]);
        op["response"].clone()
    }
}

const P: &str = "/api/2.0/postgres/projects/local";

/// POSTs headers announcing a 3 MiB body and the first 2 MiB + 64 KiB of it (past the limit,
/// where the server stops reading); the status and JSON body
/// of the answer.
fn oversized_post(api: &Api, path: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = api.base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        api.token,
        3 << 20
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b' '; (2 << 20) + (64 << 10)]);
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(text.to_string())),
    )
}

fn branch_ids(api: &Api, extra: &str) -> Vec<String> {
    let v = api.ok("GET", &format!("{P}/branches{extra}"), None);
    v["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_endpoint_keeps_its_contract() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let api = Api::of(&d);
    d.sql("main", "create table t(x int); insert into t values (1)");

    // Project: one, `local`, default branch main, retention = the GC window (7d by default).
    let p = api.ok("GET", P, None);
    assert_eq!(p["name"], "projects/local");
    assert_eq!(
        p["status"]["default_branch"],
        "projects/local/branches/main"
    );
    assert_eq!(p["status"]["history_retention_duration"], "604800s");
    let ps = api.ok("GET", "/api/2.0/postgres/projects", None);
    assert_eq!(ps["projects"].as_array().unwrap().len(), 1);

    // Create with a ttl: an Operation whose response is the Branch.
    let b = api.op(
        "POST",
        &format!("{P}/branches?branch_id=dev"),
        Some(r#"{"spec":{"source_branch":"projects/local/branches/main","ttl":"3600s"}}"#),
    );
    assert_eq!(b["name"], "projects/local/branches/dev");
    assert_eq!(b["status"]["current_state"], "READY");
    assert_eq!(b["status"]["default"], false);
    assert_eq!(b["status"]["source_branch"], "projects/local/branches/main");
    assert!(b["status"]["expire_time"].is_string(), "{b}");
    let lsn = b["status"]["source_branch_lsn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lsn.contains('/'), "{lsn}");
    assert_eq!(d.sql("dev", "select count(*) from t"), "1");

    // Get, and list with paging: page_size 1 walks every branch once.
    let g = api.ok("GET", &format!("{P}/branches/dev"), None);
    assert_eq!(g["uid"], b["uid"]);
    assert!(g["status"]["logical_size_bytes"].as_u64().unwrap() > 1 << 20);
    let mut seen = vec![];
    let mut token = String::new();
    loop {
        let v = api.ok(
            "GET",
            &format!("{P}/branches?page_size=1&page_token={token}"),
            None,
        );
        assert!(v["branches"].as_array().unwrap().len() <= 1);
        seen.extend(
            v["branches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["branch_id"].clone()),
        );
        match v["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec![json!("dev"), json!("main")]);

    // Point in time: a branch of main as of dev's branch point.
    let at = api.op(
        "POST",
        &format!("{P}/branches?branch_id=at-lsn"),
        Some(&format!(
            r#"{{"spec":{{"source_branch_lsn":"{lsn}","no_expiry":true}}}}"#
        )),
    );
    assert_eq!(at["status"]["source_branch_lsn"], lsn.as_str());

    // PATCH protection and expiry; a protected branch refuses delete and reset.
    let u = api.op(
        "PATCH",
        &format!("{P}/branches/dev?update_mask=spec.is_protected,spec.no_expiry"),
        Some(r#"{"spec":{"is_protected":true,"no_expiry":true}}"#),
    );
    assert_eq!(u["status"]["is_protected"], true);
    assert!(u["status"]["expire_time"].is_null(), "{u}");
    for (m, path) in [
        ("DELETE", format!("{P}/branches/dev")),
        ("DELETE", format!("{P}/branches/dev?purge=true")),
        ("POST", format!("{P}/branches/dev/reset")),
    ] {
        let (s, v) = api.call(m, &path, None);
        assert_eq!(
            (s, v["error_code"].as_str()),
            (400, Some("INVALID_STATE")),
            "{m} {path}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains("protected"), "{v}");
    }
    api.op(
        "PATCH",
        &format!("{P}/branches/dev?update_mask=spec.is_protected"),
        Some(r#"{"spec":{"is_protected":false}}"#),
    );

    // Endpoints: one read-write endpoint; its host is the proxy; suspend timeout = idle stop
    // (0s here: never suspends).
    let eps = api.ok("GET", &format!("{P}/branches/dev/endpoints"), None);
    let ep = &eps["endpoints"][0];
    assert_eq!(ep["status"]["endpoint_type"], "ENDPOINT_TYPE_READ_WRITE");
    let proxy = d.proxy_addr();
    assert_eq!(
        format!(
            "{}:{}",
            ep["status"]["hosts"]["host"].as_str().unwrap(),
            ep["status"]["hosts"]["port"]
        ),
        proxy
    );
    assert_eq!(ep["spec"]["no_suspension"], true);
    let ep_name = ep["name"].as_str().unwrap().to_string();
    api.ok("GET", &format!("/api/2.0/postgres/{ep_name}"), None);
    let created = api.op(
        "POST",
        &format!("{P}/branches/dev/endpoints?endpoint_id=primary"),
        Some(r#"{"spec":{"endpoint_type":"ENDPOINT_TYPE_READ_WRITE"}}"#),
    );
    assert_eq!(created["name"].as_str(), Some(ep_name.as_str()));

    // Credentials: a token the proxy takes as the password for that branch.
    let c = api.ok(
        "POST",
        "/api/2.0/postgres/credentials",
        Some(&format!(r#"{{"endpoint":"{ep_name}","ttl":"600s"}}"#)),
    );
    let token = c["token"].as_str().unwrap();
    let (host, port) = proxy.rsplit_once(':').unwrap();
    let out = Command::new(common::pg_bindir().join("psql"))
        .env("PGPASSWORD", token)
        .env("PGOPTIONS", "branch=dev")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-U",
            "postgres",
            "-XAtc",
            "select count(*) from t",
            "postgres",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    // Reset (extra): dev's changes are gone, back to main's head.
    d.sql("dev", "insert into t values (2)");
    d.sql("main", "insert into t values (3)");
    let r = api.op("POST", &format!("{P}/branches/dev/reset"), None);
    assert_eq!(r["uid"], b["uid"], "a reset keeps the branch's identity");
    assert_eq!(
        d.sql("dev", "select string_agg(x::text, ',' order by x) from t"),
        "1,3"
    );

    // Restore (extra): dev back to its own state at the reset point.
    let reset_lsn = r["status"]["source_branch_lsn"]
        .as_str()
        .unwrap()
        .to_string();
    d.sql("dev", "insert into t values (4)");
    api.op(
        "POST",
        &format!("{P}/branches/dev/restore"),
        Some(&format!(r#"{{"source_branch":"projects/local/branches/main","source_branch_lsn":"{reset_lsn}"}}"#)),
    );
    assert_eq!(
        d.sql("dev", "select string_agg(x::text, ',' order by x) from t"),
        "1,3"
    );

    // Usage (extra).
    let u = api.ok("GET", &format!("{P}/branches/dev/usage"), None);
    assert!(u["shared_bytes"].as_u64().unwrap() > 0, "{u}");

    // Snapshots, and a branch from one.
    let s = api.op(
        "POST",
        &format!("{P}/snapshots?snapshot_id=before"),
        Some(r#"{"spec":{"source_branch":"projects/local/branches/main","ttl":"86400s"}}"#),
    );
    assert_eq!(s["name"], "projects/local/snapshots/before");
    assert!(s["status"]["expire_time"].is_string());
    d.sql("main", "insert into t values (5)");
    let fs = api.op(
        "POST",
        &format!("{P}/branches?branch_id=from-snap"),
        Some(r#"{"spec":{"source_snapshot":"projects/local/snapshots/before","no_expiry":true}}"#),
    );
    assert_eq!(
        fs["status"]["source_snapshot"],
        "projects/local/snapshots/before"
    );
    assert_eq!(
        d.sql("from-snap", "select count(*) from t where x = 5"),
        "0"
    );
    let snaps = api.ok("GET", &format!("{P}/snapshots"), None);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 1);
    assert!(
        !branch_ids(&api, "").contains(&"before".to_string()),
        "snapshots are not branches"
    );
    api.ok("GET", &format!("{P}/snapshots/before"), None);

    // Soft delete: DELETED, hidden unless show_deleted, no connections, undelete brings it back.
    let del = api.op("DELETE", &format!("{P}/branches/dev"), None);
    assert_eq!(del["status"]["current_state"], "DELETED");
    assert!(del["status"]["purge_time"].is_string());
    assert!(!branch_ids(&api, "").contains(&"dev".to_string()));
    assert!(branch_ids(&api, "?show_deleted=true").contains(&"dev".to_string()));
    let err = d.fails(&["psql", "dev", "--", "-c", "select 1"]);
    assert!(err.contains("deleted"), "{err}");
    let (s, v) = api.call(
        "POST",
        &format!("{P}/branches?branch_id=dev"),
        Some(r#"{"spec":{"no_expiry":true}}"#),
    );
    assert_eq!(
        (s, v["error_code"].as_str()),
        (409, Some("ALREADY_EXISTS")),
        "{v}"
    );
    api.op("POST", &format!("{P}/branches/dev/undelete"), None);
    assert_eq!(d.sql("dev", "select count(*) from t"), "2");
    // Purge: gone for good.
    api.op("DELETE", &format!("{P}/branches/dev?purge=true"), Some(""));
    let (s, _) = api.call("GET", &format!("{P}/branches/dev"), None);
    assert_eq!(s, 404);
    api.op("DELETE", &format!("{P}/snapshots/before"), None);

    // Metrics, in Prometheus text.
    let (s, m) = api.call("GET", "/metrics", None);
    assert_eq!(s, 200);
    let m = m.as_str().unwrap();
    assert!(
        m.contains("lakelet_branches{kind=\"branch\",state=\"ready\"} 3"),
        "{m}"
    );
    assert!(m.contains("# TYPE lakelet_computes_running gauge"), "{m}");
    assert!(
        m.contains("lakelet_proxy_connections_total{branch=\"main\"}"),
        "{m}"
    );

    // Auth: nothing without the token, except the SDK's discovery probe.
    let (s, v) = api.call_as("GET", P, None, None);
    assert_eq!(
        (s, v["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (s, _) = api.call_as("GET", P, None, Some("wrong"));
    assert_eq!(s, 401);
    let (s, _) = api.call_as("GET", "/.well-known/databricks-config", None, None);
    assert_eq!(s, 200);
}

#[test]
fn bad_requests_get_clean_4xx_and_change_nothing() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let api = Api::of(&d);
    api.op(
        "POST",
        &format!("{P}/branches?branch_id=keep"),
        Some(r#"{"spec":{"is_protected":true,"no_expiry":true}}"#),
    );
    api.op(
        "POST",
        &format!("{P}/branches?branch_id=par"),
        Some(r#"{"spec":{"no_expiry":true}}"#),
    );
    api.op(
        "POST",
        &format!("{P}/branches?branch_id=kid"),
        Some(r#"{"spec":{"source_branch":"projects/local/branches/par","no_expiry":true}}"#),
    );
    let before = api.ok("GET", &format!("{P}/branches?show_deleted=true"), None);
    let cases: &[(&str, String, &str, u16, &str)] = &[
        // (method, path, body, status, text the message must contain)
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"no_expiry":true,"colour":"red"}}"#,
            400,
            "colour",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"no_expiry":true},"extra":1}"#,
            400,
            "extra",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"ttl":"60s","no_expiry":true}}"#,
            400,
            "only one",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"ttl":"60s","expire_time":"2099-01-01T00:00:00Z"}}"#,
            400,
            "only one",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{}}"#,
            400,
            "one of",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"no_expiry":false}}"#,
            400,
            "no_expiry",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"ttl":"sixty"}}"#,
            400,
            "duration",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"expire_time":"2001-01-01T00:00:00Z"}}"#,
            400,
            "past",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=Bad_Id"),
            r#"{"spec":{"no_expiry":true}}"#,
            400,
            "lowercase",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=a%2Fb"),
            r#"{"spec":{"no_expiry":true}}"#,
            400,
            "lowercase",
        ),
        (
            "POST",
            format!("{P}/branches"),
            r#"{"spec":{"no_expiry":true}}"#,
            400,
            "branch_id",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1&colour=red"),
            r#"{"spec":{"no_expiry":true}}"#,
            400,
            "colour",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"source_branch":"projects/local/branches/ghost","no_expiry":true}}"#,
            400,
            "ghost",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"source_branch":"projects/other/branches/main","no_expiry":true}}"#,
            400,
            "resource name",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"source_branch_lsn":"0/1","source_branch_time":"2026-01-01T00:00:00Z","no_expiry":true}}"#,
            400,
            "only one",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"source_branch_lsn":"zz","no_expiry":true}}"#,
            400,
            "lsn",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"source_snapshot":"projects/local/snapshots/none","no_expiry":true}}"#,
            400,
            "none",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec": "#,
            400,
            "JSON",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"[1,2]"#,
            400,
            "object",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=x1"),
            r#"{"spec":{"ttl":60}}"#,
            400,
            "request body",
        ),
        (
            "POST",
            format!("{P}/branches?branch_id=keep"),
            r#"{"spec":{"no_expiry":true}}"#,
            409,
            "already exists",
        ),
        (
            "POST",
            "/api/2.0/postgres/projects/other/branches?branch_id=x1".into(),
            r#"{"spec":{"no_expiry":true}}"#,
            404,
            "other",
        ),
        ("DELETE", format!("{P}/branches/keep"), "", 400, "protected"),
        (
            "DELETE",
            format!("{P}/branches/main?purge=true"),
            "",
            400,
            "default branch",
        ),
        ("DELETE", format!("{P}/branches/ghost"), "", 404, "ghost"),
        (
            "DELETE",
            format!("{P}/branches/keep?purge=maybe"),
            "",
            400,
            "purge",
        ),
        (
            "PATCH",
            format!("{P}/branches/keep"),
            r#"{"spec":{"is_protected":false}}"#,
            400,
            "update_mask",
        ),
        (
            "PATCH",
            format!("{P}/branches/keep?update_mask=spec.source_branch"),
            r#"{"spec":{}}"#,
            400,
            "cannot be updated",
        ),
        (
            "PATCH",
            format!("{P}/branches/keep?update_mask=spec.ttl,spec.no_expiry"),
            r#"{"spec":{"ttl":"60s","no_expiry":true}}"#,
            400,
            "only one",
        ),
        (
            "POST",
            format!("{P}/branches/keep/undelete"),
            "",
            400,
            "not deleted",
        ),
        (
            "POST",
            format!("{P}/branches/main/reset"),
            "",
            400,
            "root branch",
        ),
        (
            "POST",
            format!("{P}/branches/keep/restore"),
            "{}",
            400,
            "itself",
        ),
        (
            "POST",
            "/api/2.0/postgres/credentials".into(),
            r#"{"endpoint":"projects/local/branches/keep/endpoints/primary","ttl":"10s"}"#,
            400,
            "300 to 3600",
        ),
        (
            "POST",
            "/api/2.0/postgres/credentials".into(),
            r#"{"endpoint":"projects/local/branches/ghost/endpoints/primary"}"#,
            404,
            "ghost",
        ),
        (
            "POST",
            "/api/2.0/postgres/credentials".into(),
            r#"{"endpoint":"projects/local/branches/keep/endpoints/other"}"#,
            404,
            "primary",
        ),
        (
            "POST",
            "/api/2.0/postgres/credentials".into(),
            r#"{}"#,
            400,
            "endpoint is required",
        ),
        (
            "POST",
            format!("{P}/snapshots?snapshot_id=s1"),
            r#"{"spec":{}}"#,
            400,
            "source_branch",
        ),
        (
            "POST",
            format!("{P}/branches/keep/endpoints"),
            r#"{"spec":{"endpoint_type":"ENDPOINT_TYPE_READ_ONLY"}}"#,
            400,
            "read-only",
        ),
        (
            "GET",
            format!("{P}/branches?page_token=nothex"),
            "",
            400,
            "page_token",
        ),
        (
            "GET",
            format!("{P}/branches?page_size=-1"),
            "",
            400,
            "page_size",
        ),
        (
            "GET",
            "/api/2.0/postgres/projects/local/operations/nope".into(),
            "",
            404,
            "nope",
        ),
        (
            "GET",
            "/api/2.0/postgres/nothing/here".into(),
            "",
            404,
            "no resource",
        ),
        ("PUT", format!("{P}/branches/keep"), "", 405, "method"),
        // axum's own rejections leave in the Databricks shape too.
        (
            "POST",
            "/lakelet/v1/import".into(),
            r#"{"nope": "#,
            400,
            "JSON",
        ),
        (
            "POST",
            "/lakelet/v1/import".into(),
            r#"{"nope":1}"#,
            422,
            "missing field",
        ),
        // A name of any length is echoed back bounded.
        (
            "POST",
            format!("{P}/branches?branch_id=-{}", "x".repeat(9_999)),
            r#"{"spec":{"no_expiry":true}}"#,
            400,
            "(10000 characters)",
        ),
    ];
    for (m, path, body, status, text) in cases {
        let (s, v) = api.call(m, path, Some(body));
        assert_eq!(s, *status, "{m} {path} {body}: {v}");
        let msg = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {path}: no Databricks error body: {v}"));
        assert!(v["error_code"].is_string(), "{v}");
        assert!(
            msg.contains(text),
            "{m} {path} {body}: {msg:?} lacks {text:?}"
        );
    }
    // A body over the API's 2 MiB limit, announced by Content-Length (a client library may
    // fail to send the rest once the server has answered, so the request is written by hand).
    let (s, v) = oversized_post(&api, &format!("{P}/branches?branch_id=big"));
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error_code"], "RESOURCE_EXHAUSTED", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("larger than"),
        "{v}"
    );
    let after = api.ok("GET", &format!("{P}/branches?show_deleted=true"), None);
    assert_eq!(before, after, "a refused request changed the branches");
    assert!(api.ok("GET", &format!("{P}/snapshots"), None)["snapshots"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn expiry_deletes_then_purges_but_never_a_protected_branch() {
    let d = Daemon::up(&[
        "--idle-stop",
        "0s",
        "--reap-every",
        "200ms",
        "--history-retention",
        "3s",
    ]);
    let api = Api::of(&d);
    api.op(
        "POST",
        &format!("{P}/branches?branch_id=brief"),
        Some(r#"{"spec":{"ttl":"1s"}}"#),
    );
    api.op(
        "POST",
        &format!("{P}/branches?branch_id=kept"),
        Some(r#"{"spec":{"ttl":"1s","is_protected":true}}"#),
    );
    d.sql("brief", "select 1");
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("expiry", &|| {
        api.ok("GET", &format!("{P}/branches/brief"), None)["status"]["current_state"] == "DELETED"
    });
    wait("purge", &|| {
        api.call("GET", &format!("{P}/branches/brief"), None).0 == 404
    });
    let kept = api.ok("GET", &format!("{P}/branches/kept"), None);
    assert_eq!(kept["status"]["current_state"], "READY", "{kept}");
    assert_eq!(d.sql("kept", "select 1"), "1");
}

fn sdk_env(d: &Daemon, cmd: &mut Command) {
    let api = Api::of(d);
    let port = d.proxy_addr().rsplit_once(':').unwrap().1.to_string();
    cmd.env("DATABRICKS_HOST", &api.base)
        .env("DATABRICKS_TOKEN", &api.token)
        .env("LAKELET_PROJECT", "local")
        .env("LAKELET_PROXY_PORT", port)
        .env_remove("DATABRICKS_CONFIG_PROFILE");
}

#[test]
fn the_databricks_sdk_drives_the_daemon_and_connects_with_its_credential() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/lakebase_sdk.py");
    let mut cmd = Command::new(test_python());
    cmd.arg(&script);
    sdk_env(&d, &mut cmd);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sdk ok"), "{text}");
}

#[test]
fn schemathesis_finds_no_server_errors_in_the_published_spec() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let api = Api::of(&d);
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    // Its cache goes to the working directory: a scratch one. The project is pinned to the
    // daemon's, so generated requests reach the branch routes rather than 404 on the project.
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("st.toml");
    std::fs::write(&config, "[parameters]\n\"path.project\" = \"local\"\n").unwrap();
    let out = Command::new(test_python().with_file_name("st"))
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            "50",
            "--seed",
            "42",
            "--no-color",
        ])
        .arg(&spec)
        .arg("--url")
        .arg(&api.base)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", api.token))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
    // The daemon survived it and still serves.
    api.ok("GET", P, None);
}

/// A Lakebase stand-in (tests/sdk/lakebase_standin.py) on a free port; killed on drop.
struct StandIn {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl StandIn {
    fn start(token: &str) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/lakebase_standin.py");
        let child = Command::new(test_python())
            .arg(script)
            .arg(&port_file)
            .arg(token)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !port_file.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        StandIn {
            child,
            base: format!("http://127.0.0.1:{}", port.trim()),
            _dir: dir,
        }
    }

    fn requests(&self) -> Vec<Value> {
        let v: Value = ureq::get(format!("{}/_requests", self.base))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        v.as_array().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same CLI session against either target; returns the branch ids listed at the end.
fn cli_session(run: &dyn Fn(&[&str]) -> String, parent: &str) -> Vec<String> {
    run(&[
        "branch",
        "create",
        "feature-a",
        "--from",
        parent,
        "--ttl",
        "2h",
    ]);
    let got: Value = serde_json::from_str(&run(&["--json", "branch", "get", "feature-a"])).unwrap();
    assert_eq!(got["status"]["current_state"], "READY", "{got}");
    assert!(got["name"]
        .as_str()
        .unwrap()
        .ends_with("/branches/feature-a"));
    run(&["branch", "protect", "feature-a"]);
    let got: Value = serde_json::from_str(&run(&["--json", "branch", "get", "feature-a"])).unwrap();
    assert_eq!(got["status"]["is_protected"], true);
    run(&["branch", "unprotect", "feature-a"]);
    let reset: Value =
        serde_json::from_str(&run(&["--json", "branch", "reset", "feature-a"])).unwrap();
    assert!(reset["status"]["source_branch"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{parent}")));
    let list: Value = serde_json::from_str(&run(&["--json", "branch", "list"])).unwrap();
    let ids = list["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch_id"].as_str().unwrap().to_string())
        .collect();
    run(&["branch", "delete", "feature-a", "--purge"]);
    ids
}

#[test]
fn the_cli_speaks_to_a_lakebase_stand_in_and_to_the_daemon_alike() {
    let token = "dapi-test-token";
    let s = StandIn::start(token);
    let lakebase = |args: &[&str]| -> String {
        let out = common::lakelet()
            .args(["--target", "lakebase", "--project", "demo"])
            .args(args)
            .env("DATABRICKS_HOST", &s.base)
            .env("DATABRICKS_TOKEN", token)
            .env_remove("PGUSER")
            .env_remove("DATABRICKS_USER")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lakelet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ids = cli_session(&lakebase, "production");
    assert_eq!(ids, ["feature-a", "production"]);
    // Lakebase has no reset: the client deleted with purge and forked again, polling each
    // operation (the stand-in's are not done when returned).
    let reqs = s.requests();
    let methods: Vec<String> = reqs
        .iter()
        .filter(|r| {
            r["path"] == "/api/2.0/postgres/projects/demo/branches/feature-a"
                || r["path"] == "/api/2.0/postgres/projects/demo/branches"
        })
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["query"]))
        .collect();
    assert!(
        methods.windows(2).any(|w| w[0].starts_with("DELETE")
            && w[0].contains("purge")
            && w[1].starts_with("POST")),
        "{methods:?}"
    );
    assert!(
        reqs.iter()
            .any(|r| r["path"].as_str().unwrap().contains("/operations/")),
        "no operation was polled"
    );

    // connstr: the endpoint's host, the credential as password, TLS, the SCIM identity.
    lakebase(&["branch", "create", "feature-b", "--from", "production"]);
    let c: Value = serde_json::from_str(&lakebase(&["--json", "connstr", "feature-b"])).unwrap();
    assert_eq!(c["host"], "ep-feature-b.database.example.com");
    assert_eq!(c["password"], "lakebase-oauth-token");
    assert_eq!(c["user"], "dev@example.com");
    assert!(
        c["url"].as_str().unwrap().contains("sslmode=require"),
        "{c}"
    );
    // A Lakebase error comes back as the user's message, non-zero.
    let out = common::lakelet()
        .args([
            "--target",
            "lakebase",
            "--project",
            "demo",
            "branch",
            "get",
            "ghost",
        ])
        .env("DATABRICKS_HOST", &s.base)
        .env("DATABRICKS_TOKEN", token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("branch ghost not found"));

    // The same session against the real daemon.
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let ids = cli_session(&|a: &[&str]| d.run(a), "main");
    assert_eq!(ids, ["feature-a", "main"]);
}
