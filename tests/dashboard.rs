//! The dashboard's data routes on a real daemon: who may read them (no token → 401, a cookie
//! only for reads, an agent only its own branches and no audit), paging of the tree, the
//! filters, TTL standing, the storage history, and the page itself. `dashboard_browser.rs`
//! drives the page in headless Chromium.

mod common;

use common::*;
use serde_json::Value;

const POLICY: &str = r#"
[tiers.main]

[tiers.staging]
parent = "main"

[features]
from = "staging"
ttl = "7d"
name = ["{principal}-*", "dev-*"]

[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
admin = true
audit = true

[roles.agent]
create_from = ["staging"]
connect = ["own"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]
"#;

fn governed(root: &std::path::Path) -> Daemon {
    let file = root.join("lakelet.toml");
    std::fs::write(&file, POLICY).unwrap();
    let d = Daemon::up(&[
        "--policy",
        file.to_str().unwrap(),
        "--storage-sample-every",
        "300ms",
    ]);
    d.run(&["branch", "create", "staging", "--from", "main"]);
    d
}

fn get(d: &Daemon, secret: &str, path: &str) -> (u16, Value) {
    let (s, text) = d.http(secret, "GET", path, None);
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn names(page: &Value) -> Vec<String> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of the tree at `page_size`, following the tokens.
fn all_pages(d: &Daemon, secret: &str, query: &str, page_size: usize) -> (Vec<Value>, usize) {
    let (mut rows, mut token, mut pages) = (vec![], String::new(), 0);
    loop {
        let (s, p) = get(
            d,
            secret,
            &format!(
                "/lakelet/v1/dashboard/branches?page_size={page_size}&page_token={token}{query}"
            ),
        );
        assert_eq!(s, 200, "{p}");
        assert!(p["rows"].as_array().unwrap().len() <= page_size);
        rows.extend(p["rows"].as_array().unwrap().iter().cloned());
        pages += 1;
        match p["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => {
                assert_eq!(rows.len(), p["total"].as_u64().unwrap() as usize);
                return (rows, pages);
            }
        }
    }
}

#[test]
fn dashboard_routes_page_filter_and_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let d = governed(tmp.path());
    let owner = d.api_token();
    let routes = [
        "/lakelet/v1/dashboard/summary",
        "/lakelet/v1/dashboard/branches",
        "/lakelet/v1/dashboard/branches/main",
        "/lakelet/v1/dashboard/audit",
        "/lakelet/v1/dashboard/scm",
        "/lakelet/v1/dashboard/timeline",
    ];

    // No token, a wrong one: 401 on every data route. The page itself is public and locked
    // down (its data is not).
    for r in routes {
        for secret in ["", "lks_wrong"] {
            let (s, body) = get(&d, secret, r);
            assert_eq!(s, 401, "{r}: {body}");
            assert_eq!(body["error_code"], "UNAUTHENTICATED");
        }
        assert_eq!(get(&d, &owner, r).0, 200, "{r}");
    }
    let page = ureq::get(format!("http://{}/ui/", d.api_addr()))
        .call()
        .unwrap();
    let csp = page.headers().get("content-security-policy").unwrap();
    assert!(csp.to_str().unwrap().contains("default-src 'self'"));
    let js = ureq::get(format!("http://{}/ui/app.js", d.api_addr()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(js.contains("/lakelet/v1/dashboard"), "the embedded script");

    // A tree of 3 levels and 25 features, paged 10 at a time: every branch once, parents
    // before children, depth as deep as its ancestry.
    d.run(&["branch", "create", "dev-00", "--from", "staging"]);
    for i in 1..25 {
        d.run(&[
            "branch",
            "create",
            &format!("dev-{i:02}"),
            "--from",
            "staging",
        ]);
    }
    d.run(&[
        "branch",
        "create",
        "dev-00-child",
        "--from",
        "dev-00",
        "--ttl",
        "2h",
    ]);
    d.run(&[
        "branch",
        "create",
        "before-work",
        "--from",
        "main",
        "--snapshot",
    ]);
    let (rows, pages) = all_pages(&d, &owner, "", 10);
    assert_eq!(pages, 3);
    let order: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut unique = order.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), order.len(), "a branch twice: {order:?}");
    assert_eq!(order.len(), 29);
    for r in &rows {
        if let Some(p) = r["parent"].as_str() {
            let (pi, ci) = (
                order.iter().position(|n| *n == p).unwrap(),
                order.iter().position(|n| *n == r["name"]).unwrap(),
            );
            assert!(pi < ci, "{p} after its child {}", r["name"]);
            assert_eq!(r["depth"], rows[pi]["depth"].as_u64().unwrap() + 1);
        }
    }
    let row = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(row("main")["tier"], true);
    assert_eq!(row("staging")["depth"], 1);
    assert_eq!(row("dev-00-child")["depth"], 3);
    assert_eq!(row("dev-00-child")["ttl"], "expiring");
    assert_eq!(row("before-work")["snapshot"], true);
    assert_eq!(
        row("dev-05")["ttl"],
        "ok",
        "features get the policy's 7d ttl"
    );
    assert!(row("staging")["logical_size"].as_u64().unwrap() > 1 << 20);

    // Filters: by name, by TTL standing; bad ones are 400s naming the parameter.
    let (_, p) = get(&d, &owner, "/lakelet/v1/dashboard/branches?q=DEV-00");
    assert_eq!(names(&p), ["dev-00", "dev-00-child"]);
    let (_, p) = get(&d, &owner, "/lakelet/v1/dashboard/branches?ttl=expiring");
    assert_eq!(names(&p), ["dev-00-child"]);
    for (q, says) in [
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("page_token=abc", "page_token"),
        ("ttl=soon", "ttl must be one of"),
        ("colour=red", "colour"),
    ] {
        let (s, body) = get(&d, &owner, &format!("/lakelet/v1/dashboard/branches?{q}"));
        assert_eq!(s, 400, "{q}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{q}: {body}"
        );
    }

    // An orphan: a snapshot whose branch was (soft-)deleted; it stays, as a root of the tree.
    d.run(&[
        "branch",
        "create",
        "dev-03-snap",
        "--from",
        "dev-03",
        "--snapshot",
    ]);
    d.run(&["branch", "delete", "dev-03"]);
    let (_, p) = get(&d, &owner, "/lakelet/v1/dashboard/branches?ttl=orphan");
    assert_eq!(names(&p), ["dev-03-snap"]);
    assert_eq!(p["rows"][0]["depth"], 0);
    let (_, p) = get(
        &d,
        &owner,
        "/lakelet/v1/dashboard/branches?q=dev-03&show_deleted=true",
    );
    assert_eq!(names(&p), ["dev-03", "dev-03-snap"]);
    assert_eq!(p["rows"][0]["deleted"], true);
    assert_eq!(
        p["rows"][1]["depth"], 3,
        "with its parent shown, under it (main/staging/dev-03)"
    );

    // An agent sees its own branches only, and no audit; the owner sees them too.
    let out = d.run(&["principal", "add", "bot-1", "--role", "agent"]);
    let bot = out.lines().last().unwrap().trim().to_string();
    let o = lakelet()
        .arg("--data-dir")
        .arg(&d.dir)
        .env("LAKELET_PRINCIPAL", "bot-1")
        .env("LAKELET_SECRET", &bot)
        .args(["branch", "create", "bot-1-try", "--from", "staging"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, p) = get(&d, &bot, "/lakelet/v1/dashboard/branches");
    assert_eq!(names(&p), ["bot-1-try"]);
    assert_eq!(p["rows"][0]["owner"], "bot-1");
    let (s, _) = get(&d, &bot, "/lakelet/v1/dashboard/branches/staging");
    assert_eq!(s, 404, "a branch the agent may not see is not there for it");
    assert_eq!(
        get(&d, &bot, "/lakelet/v1/dashboard/branches/bot-1-try").0,
        200
    );
    let (_, sum) = get(&d, &bot, "/lakelet/v1/dashboard/summary");
    assert_eq!(
        (sum["branches"].as_u64(), sum["can_read_audit"].as_bool()),
        (Some(1), Some(false))
    );
    for r in [
        "/lakelet/v1/dashboard/audit",
        "/lakelet/v1/dashboard/timeline",
    ] {
        let (s, body) = get(&d, &bot, r);
        assert_eq!(s, 403, "{r}: {body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("roles.agent.audit"));
    }
    let (_, scm) = get(&d, &bot, "/lakelet/v1/dashboard/scm");
    assert_eq!(scm["features"], serde_json::json!([]));
    let (_, p) = get(&d, &owner, "/lakelet/v1/dashboard/branches?q=bot");
    assert_eq!(names(&p), ["bot-1-try"]);

    // The session cookie: opened with a token (audited), good for reads only.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("http://{}/lakelet/v1/dashboard", d.api_addr());
    let r = agent
        .post(format!("{base}/session"))
        .header("Authorization", format!("Bearer {bot}"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut r = agent
        .get(format!("{base}/branches"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        names(&p),
        ["bot-1-try"],
        "the cookie carries the agent's view"
    );
    let r = agent
        .post(format!("{base}/session"))
        .header("Cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 401, "a cookie never authorizes a change");
    let r = agent
        .post(
            "http://".to_string()
                + &d.api_addr()
                + "/api/2.0/postgres/projects/local/branches?branch_id=bot-1-x",
        )
        .header("Cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = agent
        .get(format!("{base}/summary"))
        .header("Cookie", "lakelet_session=forged")
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);

    // The audit: newest first, paged, filtered; the session's opening is in it.
    d.fails(&["branch", "delete", "main"]);
    let (_, a) = get(&d, &owner, "/lakelet/v1/dashboard/audit?page_size=5");
    let seqs: Vec<u64> = a["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 5);
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let (_, a2) = get(
        &d,
        &owner,
        &format!(
            "/lakelet/v1/dashboard/audit?page_size=5&before={}",
            a["next_before"]
        ),
    );
    assert!(a2["records"][0]["seq"].as_u64().unwrap() < *seqs.last().unwrap());
    let (_, r) = get(&d, &owner, "/lakelet/v1/dashboard/audit?decision=refused");
    let refused = r["records"].as_array().unwrap();
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|r| r["decision"] == "refused"));
    assert!(refused.iter().any(|r| r["target"] == "main"));
    let (_, r) = get(
        &d,
        &owner,
        "/lakelet/v1/dashboard/audit?principal=bot-1&branch=dashboard",
    );
    assert_eq!(r["records"][0]["action"], "dashboard.open");
    let (s, _) = get(&d, &owner, "/lakelet/v1/dashboard/audit?decision=maybe");
    assert_eq!(s, 400);

    // A rollback is on the timeline.
    d.run(&["branch", "restore", "dev-01", "--from", "staging"]);
    let (_, t) = get(&d, &owner, "/lakelet/v1/dashboard/timeline");
    assert_eq!(t[0]["kind"], "rollback", "{t}");
    assert_eq!(t[0]["target"], "dev-01");

    // SCM: a feature's transitions as the gates report them, and its open PR.
    for (event, state) in [
        ("scm.claim", "feature-claimed"),
        ("scm.prepare-pr", "pr-ready"),
    ] {
        let (s, body) = d.http(
            &owner,
            "POST",
            "/lakelet/v1/workflow-events",
            Some(serde_json::json!({ "action": event, "target": "dev-05",
                "args": { "state": state, "feature_id": "F5-reorder" } })),
        );
        assert_eq!(s, 200, "{body}");
    }
    let (s, body) = d.http(
        &owner,
        "POST",
        "/lakelet/v1/prs",
        Some(
            serde_json::json!({ "head": "feature/reorder", "base": "staging",
            "database_branch": "dev-05", "title": "Reorder alerts" }),
        ),
    );
    assert_eq!(s, 200, "{body}");
    let (_, scm) = get(&d, &owner, "/lakelet/v1/dashboard/scm");
    let f = &scm["features"][0];
    assert_eq!(
        (f["branch"].as_str(), f["state"].as_str()),
        (Some("dev-05"), Some("pr-ready")),
        "{scm}"
    );
    assert_eq!(f["feature_id"], "F5-reorder");
    assert_eq!(f["open_prs"][0]["title"], "Reorder alerts");
    assert_eq!(scm["open_prs"].as_array().unwrap().len(), 1);

    // Storage history: the sampler (every 300 ms here) gives each branch a first point, and
    // a write shows as a new one on the branch's plot.
    let history = |b: &str| {
        let (_, v) = get(&d, &owner, &format!("/lakelet/v1/dashboard/branches/{b}"));
        v["history"].as_array().unwrap().clone()
    };
    let first = common::wait_until(std::time::Duration::from_secs(20), || {
        let h = history("dev-02");
        (!h.is_empty()).then_some(h)
    })
    .expect("no storage point for dev-02 within 20 s");
    let points = first.len();
    d.sql("dev-02", "CREATE TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g; CHECKPOINT");
    d.run(&["branch", "stop", "dev-02"]);
    let grew = common::wait_until(std::time::Duration::from_secs(20), || {
        let h = history("dev-02");
        (h.len() > points && h.last().unwrap()["own_bytes"].as_u64() > h[0]["own_bytes"].as_u64())
            .then_some(())
    });
    assert!(
        grew.is_some(),
        "no new storage point after 10 MB were written"
    );
}

/// The page in headless Chromium: it signs in from `lakelet dashboard`'s address, shows the
/// tree the test made (tiers, depth), answers the keyboard, filters the tree and the audit,
/// and shows a branch created meanwhile without a reload. A screenshot is kept in the
/// test's output directory.
#[test]
fn dashboard_in_a_real_browser() {
    use common::browser::Browser;
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let d = governed(tmp.path());
    d.run(&["branch", "create", "dev-a", "--from", "staging"]);
    d.run(&["branch", "create", "dev-a-1", "--from", "dev-a"]);
    d.run(&["branch", "create", "dev-b", "--from", "staging"]);
    d.run(&[
        "branch",
        "create",
        "nightly",
        "--from",
        "staging",
        "--snapshot",
    ]);
    d.fails(&["branch", "delete", "main"]);
    let url = d.json(&["dashboard"])["url"].as_str().unwrap().to_string();
    assert!(url.contains("/ui/#token="));

    let mut b = Browser::launch();
    b.goto(&url);
    b.wait_for(
        "the page ready",
        "document.body.dataset.ready === 'true'",
        Duration::from_secs(30),
    );
    assert_eq!(
        b.eval("location.hash"),
        "",
        "the token left the address bar"
    );
    assert_eq!(b.eval("document.getElementById('login').hidden"), true);

    // The tree: every branch, in tree order, at its depth, tiers marked.
    let rows = b.eval(
        "[...document.querySelectorAll('#tree [role=treeitem]')]
           .map(e => [e.dataset.name, +e.getAttribute('aria-level'), !!e.querySelector('.badge.tier')])",
    );
    assert_eq!(
        rows,
        serde_json::json!([
            ["main", 1, true],
            ["staging", 2, true],
            ["dev-a", 3, false],
            ["dev-a-1", 4, false],
            ["dev-b", 3, false],
            ["nightly", 3, false]
        ])
    );

    // The keyboard: focus the tree, two steps down select staging and show it.
    b.eval("document.getElementById('tree').focus()");
    b.key("ArrowDown", 40);
    b.key("ArrowDown", 40);
    b.wait_for(
        "staging's details",
        "document.getElementById('detail-h').textContent === 'Branch staging'
           && document.querySelector('#detail svg.plot') !== null",
        Duration::from_secs(10),
    );
    assert_eq!(
        b.eval("document.getElementById('tree').getAttribute('aria-activedescendant')"),
        "row-1"
    );

    // The name filter, typed.
    b.eval("document.getElementById('q').focus()");
    b.type_text("dev-b");
    b.wait_for(
        "the tree filtered to dev-b",
        "JSON.stringify([...document.querySelectorAll('#tree .row')].map(e => e.dataset.name)) === '[\"dev-b\"]'",
        Duration::from_secs(10),
    );
    b.eval(
        "const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input'))",
    );
    b.wait_for(
        "the whole tree back",
        "document.querySelectorAll('#tree .row').length === 6",
        Duration::from_secs(10),
    );

    // The audit, filtered to refusals.
    b.eval("document.getElementById('tab-audit').click()");
    b.wait_for(
        "the audit",
        "document.querySelectorAll('#audit tbody tr[data-decision]').length > 1",
        Duration::from_secs(10),
    );
    b.eval(
        "document.getElementById('a-decision').value = 'refused';
         document.getElementById('audit-filters').requestSubmit()",
    );
    let decisions = b.wait_for(
        "only refusals",
        "(() => { const d = [...document.querySelectorAll('#audit tbody tr[data-decision]')].map(r => r.dataset.decision);
                  return d.length > 0 && d.every(x => x === 'refused') ? d : null })()",
        Duration::from_secs(10),
    );
    assert!(!decisions.as_array().unwrap().is_empty());

    // Live: a branch made now appears without a reload (the same document throughout).
    b.eval("window.__sameDocument = 42");
    d.run(&["branch", "create", "dev-live", "--from", "staging"]);
    b.wait_for(
        "dev-live in the tree",
        "document.querySelector('#tree .row[data-name=\"dev-live\"]') !== null",
        Duration::from_secs(15),
    );
    assert_eq!(b.eval("window.__sameDocument"), 42, "the page was reloaded");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard/dashboard.png");
    b.eval("document.getElementById('tab-ttl').click()");
    b.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// The numbers in docs/BENCHMARKS.md: `branch list` and `status` at N branches
/// (LAKELET_DASHBOARD_BRANCHES, default 1,000), and the page's first paint and ready time in
/// Chromium, medians of interleaved rounds. A benchmark, not a test: it asserts nothing about
/// time. `cargo test --release --test dashboard -- --ignored --nocapture bench`
#[test]
#[ignore]
fn bench_listing_and_first_paint() {
    use common::browser::Browser;
    use std::time::{Duration, Instant};
    let n: usize = std::env::var("LAKELET_DASHBOARD_BRANCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let d = Daemon::up(&[]);
    let token = d.api_token();
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..4 {
            let (d, token) = (&d, &token);
            s.spawn(move || {
                for i in (w..n).step_by(4) {
                    let (st, body) = d.http(
                        token,
                        "POST",
                        &format!("/api/2.0/postgres/projects/local/branches?branch_id=b{i:05}"),
                        Some(serde_json::json!({ "spec": {
                            "source_branch": "projects/local/branches/main", "no_expiry": true } })),
                    );
                    assert_eq!(st, 200, "{body}");
                }
            });
        }
    });
    eprintln!("created {n} branches in {:.1} s", t.elapsed().as_secs_f64());
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let time = |args: &[&str]| {
        let t = Instant::now();
        d.run(args);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (mut list, mut status, mut page) = (vec![], vec![], vec![]);
    for _ in 0..7 {
        list.push(time(&["branch", "list", "--json"]));
        status.push(time(&["status", "--json"]));
        let t = Instant::now();
        let (st, _) = d.http(
            &token,
            "GET",
            "/lakelet/v1/dashboard/branches?page_size=200",
            None,
        );
        assert_eq!(st, 200);
        page.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let url = d.json(&["dashboard"])["url"].as_str().unwrap().to_string();
    let (mut fcp, mut ready) = (vec![], vec![]);
    let mut b = Browser::launch();
    for round in 0..7 {
        // A fresh document each round; the session cookie from the first stays.
        let u = if round == 0 {
            url.clone()
        } else {
            url.split('#').next().unwrap().to_string()
        };
        b.goto("about:blank");
        b.goto(&u);
        b.wait_for(
            "ready",
            "document.body && document.body.dataset.ready === 'true'",
            Duration::from_secs(60),
        );
        let v = b.wait_for(
            "the paint timings",
            "(() => { const f = performance.getEntriesByName('first-contentful-paint')[0];
                      const r = performance.getEntriesByName('lakelet-ready')[0];
                      return f && r ? [f.startTime, r.startTime] : null })()",
            Duration::from_secs(20),
        );
        if round > 0 {
            fcp.push(v[0].as_f64().unwrap());
            ready.push(v[1].as_f64().unwrap());
        }
    }
    let shot =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard/bench-{n}.png"));
    b.screenshot(&shot);
    println!("| branches | branch list --json | status --json | API page of 200 | first contentful paint | tree drawn |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {n} | {:.0} ms | {:.0} ms | {:.1} ms | {:.0} ms | {:.0} ms |",
        median(list),
        median(status),
        median(page),
        median(fcp),
        median(ready)
    );
    eprintln!("screenshot: {}", shot.display());
}
