//! Governance end to end: a real daemon with a declared policy, several principals acting at
//! once through the CLI, the REST API and the proxy, and the audit rows each action leaves.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const POLICY: &str = r#"
[tiers.main]
production = true

[tiers.staging]
parent = "main"

[tiers.qa]
parent = "staging"

[features]
from = "staging"
ttl = "7d"
name = ["{principal}-*", "ci-pr-*"]

[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
admin = true

[roles.developer]
create_from = ["main", "staging", "qa"]
connect = ["own"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.agent]
create_from = ["staging", "qa"]
connect = ["own"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.ci]
create_from = ["staging", "qa"]
connect = ["features", "staging", "qa"]
migrate = ["features"]
delete = ["features"]
promote = true
audit = true

[masking]
roles = ["developer", "agent"]

[masking.columns]
"public.customers.email" = "email"
"public.customers.name" = "hash"
"public.orders.customer_email" = "email"
"public.customers.phone" = { method = "partial", keep_last = 2 }
"#;

/// A daemon enforcing POLICY, with main seeded and the tiers created by the owner.
fn governed(dir: &Path) -> Daemon {
    let file = dir.join("lakelet.toml");
    std::fs::write(&file, POLICY).unwrap();
    let d = Daemon::up(&["--policy", file.to_str().unwrap()]);
    d.sql(
        "main",
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE, phone text);
         CREATE INDEX ON customers (name);
         INSERT INTO customers SELECT g, 'Customer Name ' || g, 'person' || g || '@example.com',
                '+1-555-' || lpad(g::text, 4, '0') FROM generate_series(1, 2000) g;
         CREATE TABLE orders (id serial PRIMARY KEY, customer_email text, amount int);
         INSERT INTO orders (customer_email, amount)
           SELECT 'person' || (g % 2000 + 1) || '@example.com', g FROM generate_series(1, 5000) g;
         CREATE TABLE filler (id int, pad text);
         INSERT INTO filler SELECT g, repeat('x', 900) FROM generate_series(1, 30000) g;
         CHECKPOINT;",
    );
    d.run(&["branch", "create", "staging", "--from", "main"]);
    d.run(&["branch", "create", "qa", "--from", "staging"]);
    d
}

/// Adds a principal; its secret is the last line of the output.
fn principal(d: &Daemon, name: &str, role: &str) -> String {
    let out = d.run(&["principal", "add", name, "--role", role]);
    out.lines().last().unwrap().trim().to_string()
}

/// `lakelet` as a principal.
fn as_p(d: &Daemon, who: &str, secret: &str, args: &[&str]) -> std::process::Output {
    lakelet()
        .arg("--data-dir")
        .arg(&d.dir)
        .env("LAKELET_PRINCIPAL", who)
        .env("LAKELET_SECRET", secret)
        .args(args)
        .output()
        .unwrap()
}

fn ok_as(d: &Daemon, who: &str, secret: &str, args: &[&str]) -> String {
    let o = as_p(d, who, secret, args);
    assert!(
        o.status.success(),
        "{who}: lakelet {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails, naming `rule`.
fn refused_as(d: &Daemon, who: &str, secret: &str, args: &[&str], rule: &str) {
    let o = as_p(d, who, secret, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{who}: lakelet {args:?} succeeded");
    assert!(err.contains(rule), "{who}: lakelet {args:?}: {err}");
}

/// The REST API as a principal: (status, body as JSON).
fn api(d: &Daemon, secret: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text) = d.http(secret, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const P: &str = "/api/2.0/postgres/projects/local";

fn create_body(source: &str, extra: Value) -> Value {
    let mut spec = serde_json::json!({ "source_branch": format!("projects/local/branches/{source}"), "no_expiry": true });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::json!({ "spec": spec })
}

/// Runs `sql` through the proxy as `user`/`password` on `branch` (database `db`); the rows as
/// text, or the SQLSTATE of the error.
fn pg(
    d: &Daemon,
    user: &str,
    password: &str,
    branch: &str,
    db: &str,
    sql: &str,
) -> Result<Vec<Vec<String>>, String> {
    let (host, port) = d
        .proxy_addr()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse::<u16>().unwrap()))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&host)
            .port(port)
            .user(user)
            .password(password)
            .dbname(db);
        // An empty branch: only the database name says where (`postgres@main`).
        if !branch.is_empty() {
            cfg.options(format!("branch={branch}"));
        }
        let (client, conn) = match cfg.connect(tokio_postgres::NoTls).await {
            Ok(x) => x,
            Err(e) => {
                return Err(e
                    .code()
                    .map(|c| c.code().to_string())
                    .unwrap_or_else(|| e.to_string()))
            }
        };
        tokio::spawn(conn);
        let msgs = client.simple_query(sql).await.map_err(|e| {
            e.code()
                .map(|c| c.code().to_string())
                .unwrap_or_else(|| e.to_string())
        })?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

fn one(rows: Result<Vec<Vec<String>>, String>) -> String {
    rows.unwrap()[0][0].clone()
}

#[test]
fn every_rule_holds_in_every_shape_for_principals_acting_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = governed(tmp.path());
    let alice = principal(&d, "alice", "developer");
    let bot = principal(&d, "bot", "agent");
    let ci = principal(&d, "ci1", "ci");
    // A snapshot of production, by the owner: agents may not branch from it either.
    d.run(&[
        "branch",
        "create",
        "main-snap",
        "--from",
        "main",
        "--snapshot",
    ]);
    d.run(&["branch", "create", "owner-x", "--from", "staging"]);
    // A tier the policy protects says so, though nobody set its own flag; a feature does not.
    for (b, protected) in [("staging", true), ("qa", true), ("owner-x", false)] {
        let v = d.json(&["branch", "get", b]);
        assert_eq!(v["status"]["is_protected"], protected, "{b}: {v}");
        assert_eq!(v["spec"]["is_protected"], protected, "{b}: {v}");
    }
    // Identity is the same everywhere: the CLI's --as claims need the matching secret.
    let o = as_p(&d, "alice", &bot, &["whoami"]);
    assert!(!o.status.success(), "alice with bot's secret");
    assert!(ok_as(&d, "bot", &bot, &["whoami"]).contains("bot (role agent)"));

    std::thread::scope(|s| {
        // The developer: masked copies only, own features only.
        s.spawn(|| {
            ok_as(&d, "alice", &alice, &["branch", "create", "alice-feat", "--from", "main"]);
            refused_as(&d, "alice", &alice, &["branch", "create", "bob-feat", "--from", "staging"], "features.name");
            let (st, b) = api(&d, &alice, "POST", &format!("{P}/branches?branch_id=alice-api"), Some(create_body("staging", serde_json::json!({}))));
            assert_eq!(st, 200, "{b}");
            // Connects to its own feature with write access, as a non-superuser that writes
            // rows and its own objects (the schema's owner only through a migration).
            let who = one(pg(&d, "alice", &alice, "alice-feat", "postgres", "select current_user || ' ' || (select rolsuper from pg_roles where rolname = current_user)"));
            assert_eq!(who, "lakelet_writer false");
            pg(&d, "alice", &alice, "alice-feat", "postgres", "insert into orders (customer_email, amount) values ('x@y', 1)").unwrap();
            // Never to raw data, in any shape.
            for (b, db) in [("main", "postgres"), ("staging", "postgres"), ("qa", "postgres")] {
                assert_eq!(pg(&d, "alice", &alice, b, db, "select 1"), Err("42501".into()), "alice on {b}");
            }
            let (st, _) = api(&d, &alice, "POST", "/api/2.0/postgres/credentials", Some(serde_json::json!({ "endpoint": "projects/local/branches/main/endpoints/primary" })));
            assert_eq!(st, 403);
            refused_as(&d, "alice", &alice, &["branch", "delete", "staging"], "tiers.staging.protected");
            refused_as(&d, "alice", &alice, &["branch", "reset", "qa"], "tiers.qa.protected");
            refused_as(&d, "alice", &alice, &["branch", "delete", "owner-x"], "roles.developer.delete");
            refused_as(&d, "alice", &alice, &["principal", "add", "mallory", "--role", "platform"], "roles.developer.admin");
            refused_as(&d, "alice", &alice, &["audit"], "roles.developer.audit");
        });
        // The agent: never production, never promotion, whatever the route.
        s.spawn(|| {
            for args in [
                vec!["branch", "create", "bot-a", "--from", "main"],
                vec!["branch", "create", "bot-c", "--from", "main", "--at", "1"],
                vec!["branch", "create", "bot-d", "--from", "main", "--snapshot"],
            ] {
                refused_as(&d, "bot", &bot, &args, "agents-never-production");
            }
            for body in [
                create_body("main", serde_json::json!({})),
                create_body("main", serde_json::json!({ "source_branch_lsn": "0/1" })),
            ] {
                let (st, b) = api(&d, &bot, "POST", &format!("{P}/branches?branch_id=bot-x"), Some(body));
                assert_eq!((st, b["error_code"].as_str()), (403, Some("PERMISSION_DENIED")), "{b}");
                assert!(b["message"].as_str().unwrap().contains("agents-never-production"), "{b}");
            }
            let (st, b) = api(&d, &bot, "POST", &format!("{P}/branches?branch_id=bot-y"), Some(serde_json::json!({ "spec": { "source_snapshot": "projects/local/snapshots/main-snap", "no_expiry": true } })));
            assert_eq!(st, 403, "{b}");
            let (st, _) = api(&d, &bot, "POST", &format!("{P}/snapshots?snapshot_id=bot-snap"), Some(serde_json::json!({ "spec": { "source_branch": "projects/local/branches/main", "no_expiry": true } })));
            assert_eq!(st, 403);
            ok_as(&d, "bot", &bot, &["branch", "create", "bot-work", "--from", "staging"]);
            // Its own branch may not be restored from production either.
            let (st, b) = api(&d, &bot, "POST", &format!("{P}/branches/bot-work/restore"), Some(serde_json::json!({ "source_branch": "projects/local/branches/main" })));
            assert_eq!(st, 403, "{b}");
            for db in ["postgres", "postgres@main"] {
                let branch = if db.contains('@') { "qa" } else { "main" };
                // `postgres@main` with branch=qa in options names two branches; use the
                // fallback alone for that shape.
                let r = if db.contains('@') {
                    pg(&d, "bot", &bot, "", db, "select 1")
                } else {
                    pg(&d, "bot", &bot, branch, db, "select 1")
                };
                assert_eq!(r, Err("42501".into()), "bot on main via {db}");
            }
            assert_eq!(pg(&d, "bot", &bot, "bot-work", "postgres", "select count(*) from customers").unwrap()[0][0], "2000");
            refused_as(&d, "bot", &bot, &["promote", "--grant-only", "bot-work", "staging"], "agents-never-promote");
            let (st, _) = api(&d, &bot, "POST", "/lakelet/v1/promotions", Some(serde_json::json!({ "from": "qa", "to": "staging" })));
            assert_eq!(st, 403);
            refused_as(&d, "bot", &bot, &["gc"], "roles.agent.admin");
            refused_as(&d, "bot", &bot, &["down"], "roles.agent.admin");
            assert_eq!(pg(&d, "bot", &bot, "main", "lakelet", "select count(*) from audit"), Err("42501".into()));
        });
        // CI: features and read-only tiers; promotion one link at a time, with a grant.
        s.spawn(|| {
            ok_as(
                &d,
                "ci1",
                &ci,
                &["branch", "create", "ci-pr-1", "--from", "qa"],
            );
            assert_eq!(
                one(pg(
                    &d,
                    "ci1",
                    &ci,
                    "staging",
                    "postgres",
                    "select count(*) from customers"
                )),
                "2000"
            );
            assert_eq!(
                pg(
                    &d,
                    "ci1",
                    &ci,
                    "staging",
                    "postgres",
                    "insert into orders (amount) values (1)"
                ),
                Err("42501".into()),
                "staging is read-only for ci"
            );
            refused_as(
                &d,
                "ci1",
                &ci,
                &["promote", "--grant-only", "qa", "main"],
                "promotion-chain",
            );
            refused_as(
                &d,
                "ci1",
                &ci,
                &["promote", "--grant-only", "ci-pr-1", "staging"],
                "promotion-chain",
            );
            refused_as(
                &d,
                "ci1",
                &ci,
                &["branch", "delete", "qa"],
                "tiers.qa.protected",
            );
            let g: Value = serde_json::from_str(&ok_as(
                &d,
                "ci1",
                &ci,
                &["--json", "promote", "--grant-only", "ci-pr-1", "qa"],
            ))
            .unwrap();
            let token = g["token"].as_str().unwrap();
            assert_eq!(g["user"], "ci1");
            pg(
                &d,
                "ci1",
                token,
                "qa",
                "postgres",
                "create table promoted (id int); insert into promoted values (1)",
            )
            .unwrap();
            // The grant is for qa only.
            assert_eq!(
                pg(&d, "ci1", token, "staging", "postgres", "select 1"),
                Err("28P01".into())
            );
            ok_as(
                &d,
                "ci1",
                &ci,
                &["promote", "--grant-only", "qa", "staging"],
            );
            let audit: Vec<Value> = serde_json::from_str(&ok_as(
                &d,
                "ci1",
                &ci,
                &["--json", "audit", "--principal", "bot"],
            ))
            .unwrap();
            assert!(!audit.is_empty());
        });
    });

    // The masked features hold masked data.
    let email = one(pg(
        &d,
        "alice",
        &alice,
        "alice-api",
        "postgres",
        "select email from customers where id = 1",
    ));
    assert!(
        email.ends_with("@example.com") && email != "person1@example.com",
        "{email}"
    );

    // Every action left its row, allowed or refused, with the rule.
    let recs: Vec<Value> = serde_json::from_str(&d.run(&["--json", "audit"])).unwrap();
    let has = |p: &str, action: &str, decision: &str, rule: &str, via: &str| {
        recs.iter().any(|r| {
            r["principal"] == p
                && r["action"] == action
                && r["decision"] == decision
                && r["rule"].as_str().unwrap().contains(rule)
                && r["via"] == via
        })
    };
    assert!(has(
        "bot",
        "branch.create",
        "refused",
        "agents-never-production",
        "cli"
    ));
    assert!(has(
        "bot",
        "branch.create",
        "refused",
        "agents-never-production",
        "api"
    ));
    assert!(has(
        "bot",
        "snapshot.create",
        "refused",
        "agents-never-production",
        "api"
    ));
    assert!(has(
        "bot",
        "branch.restore",
        "refused",
        "agents-never-production",
        "api"
    ));
    assert!(has(
        "bot",
        "connect",
        "refused",
        "agents-never-production",
        "proxy"
    ));
    assert!(has(
        "bot",
        "merge",
        "refused",
        "agents-never-promote",
        "cli"
    ));
    assert!(has(
        "bot",
        "branch.create",
        "allowed",
        "masking.roles",
        "cli"
    ));
    assert!(has("alice", "connect", "refused", "masking.roles", "proxy"));
    assert!(has(
        "alice",
        "connect",
        "allowed",
        "roles.developer.migrate",
        "proxy"
    ));
    assert!(has(
        "alice",
        "credential.create",
        "refused",
        "masking.roles",
        "api"
    ));
    assert!(has(
        "alice",
        "branch.delete",
        "refused",
        "tiers.staging.protected",
        "cli"
    ));
    assert!(has("ci1", "promote", "refused", "promotion-chain", "cli"));
    assert!(has("ci1", "merge", "allowed", "promotion-chain", "cli"));
    assert!(has("ci1", "connect", "allowed", "promotion-chain", "proxy"));
    assert!(has(
        "owner",
        "principal.add",
        "allowed",
        "roles.platform.admin",
        "cli"
    ));
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "dense sequence numbers"
    );
    for r in &recs {
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        if r["decision"] == "allowed" {
            assert!(!r["result"].as_str().unwrap().is_empty(), "{r}");
        }
    }

    // One SQL query reads the same trail, with the branches and their usage.
    let pw = std::fs::read_to_string(d.dir.join("password")).unwrap();
    let rows = pg(
        &d,
        "postgres",
        pw.trim(),
        "main",
        "lakelet",
        "select count(*), count(*) filter (where decision = 'refused' and principal = 'bot'),
                (select count(*) from branches where kind = 'tier'),
                (select count(*) from usage where own_bytes > 0)
         from audit",
    )
    .unwrap();
    let refused_bot = recs
        .iter()
        .filter(|r| r["decision"] == "refused" && r["principal"] == "bot")
        .count();
    assert!(rows[0][0].parse::<usize>().unwrap() >= recs.len());
    assert_eq!(rows[0][1].parse::<usize>().unwrap(), refused_bot);
    assert_eq!(rows[0][2], "3");
    assert!(rows[0][3].parse::<u32>().unwrap() >= 1);
    // CI reads it too, and cannot change it.
    assert_eq!(
        pg(&d, "ci1", &ci, "main", "lakelet", "delete from audit"),
        Err("42501".into())
    );

    // A change to the policy is audited; a broken one is refused with its line and changes
    // nothing; only an admin role may apply one.
    let file = tmp.path().join("lakelet.toml");
    std::fs::write(
        &file,
        POLICY.replace("[roles.ci]\n", "[roles.ci]\nbogus = 1\n"),
    )
    .unwrap();
    let err = d.fails(&["policy", "apply"]);
    assert!(
        err.contains("lakelet.toml:") && err.contains("bogus"),
        "{err}"
    );
    refused_as(
        &d,
        "bot",
        &bot,
        &["branch", "create", "bot-z", "--from", "main"],
        "agents-never-production",
    );
    std::fs::write(
        &file,
        format!("{POLICY}\n[principals.alice]\nrole = \"developer\"\n"),
    )
    .unwrap();
    refused_as(&d, "ci1", &ci, &["policy", "apply"], "roles.ci.admin");
    d.run(&["policy", "apply"]);
    let changes: Vec<Value> =
        serde_json::from_str(&d.run(&["--json", "audit", "--action", "policy"])).unwrap();
    let results: Vec<(&str, &str)> = changes
        .iter()
        .map(|r| {
            (
                r["decision"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        results
            .iter()
            .any(|(d, r)| *d == "allowed" && r.starts_with("error:")),
        "{results:?}"
    );
    assert!(results.iter().any(|(d, _)| *d == "refused"), "{results:?}");
    assert!(
        results.iter().any(|(d, r)| *d == "allowed" && *r == "ok"),
        "{results:?}"
    );
    assert!(changes
        .iter()
        .any(|r| r["args"]["from"] != r["args"]["to"] && r["result"] == "ok"));
}

#[test]
fn masked_branches_never_show_raw_values() {
    let tmp = tempfile::tempdir().unwrap();
    let d = governed(tmp.path());
    let alice = principal(&d, "alice", "developer");
    ok_as(
        &d,
        "alice",
        &alice,
        &["branch", "create", "alice-m", "--from", "main"],
    );
    let q = |sql: &str| pg(&d, "alice", &alice, "alice-m", "postgres", sql);

    // Emails keep their domain and hide the person; names are hashed; phones keep 2 digits.
    let row = &q("select name, email, phone from customers where id = 7").unwrap()[0];
    assert!(
        row[0].len() == 32 && row[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{row:?}"
    );
    assert!(
        row[1].ends_with("@example.com") && !row[1].starts_with("person7@"),
        "{row:?}"
    );
    assert_eq!(row[2], "*********07", "{row:?}");
    // Equal values stay equal: joins on the masked key still match every order.
    assert_eq!(
        one(q(
            "select count(*) from orders o join customers c on c.email = o.customer_email"
        )),
        "5000"
    );
    assert_eq!(
        one(q("select count(distinct email) from customers")),
        "2000"
    );
    // No query finds a raw value: not by value, not in statistics, not in files.
    assert_eq!(
        one(q(
            "select count(*) from customers where email like 'person%' or name like 'Customer%'"
        )),
        "0"
    );
    assert_eq!(
        one(q(
            "select count(*) from orders where customer_email like 'person%'"
        )),
        "0"
    );
    let stats = one(q("select coalesce(string_agg(most_common_vals::text || coalesce(histogram_bounds::text, ''), ' '), '') from pg_stats where tablename in ('customers', 'orders')"));
    assert!(
        !stats.contains("person") && !stats.contains("Customer"),
        "raw values in pg_stats: {stats}"
    );
    assert_eq!(q("select pg_read_binary_file('base')"), Err("42501".into()));
    assert_eq!(q("copy customers to program 'cat'"), Err("42501".into()));
    assert_eq!(q("set role postgres"), Err("42501".into()));
    // The index on name was rebuilt from masked values.
    assert_eq!(one(q("set enable_seqscan = off; select count(*) from customers where name >= 'C' and name < 'D'")), "0");

    // Masking wrote only the masked tables: the 27 MB filler table stays shared.
    let usage: Value = d.json(&["branch", "usage", "alice-m"]);
    let own = usage["own_bytes"].as_u64().unwrap();
    let filler: u64 = d
        .sql("main", "select pg_relation_size('filler')")
        .parse()
        .unwrap();
    assert!(filler > 20 << 20);
    let plain = {
        d.run(&["branch", "create", "owner-plain", "--from", "main"]);
        d.sql("owner-plain", "checkpoint");
        d.json(&["branch", "usage", "owner-plain"])["own_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(
        own < plain + filler / 2,
        "masking diverged {own} bytes (a started copy: {plain}; filler {filler})"
    );

    // A reset brings the parent's raw data back: it is masked again before anyone connects.
    ok_as(&d, "alice", &alice, &["branch", "reset", "alice-m"]);
    assert_eq!(
        one(q(
            "select count(*) from customers where email like 'person%'"
        )),
        "0"
    );
    // A point-in-time child of the masked branch, or of main, is masked too.
    let t = d.sql(
        "main",
        "select to_char(now() at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok_as(
        &d,
        "alice",
        &alice,
        &[
            "branch",
            "create",
            "alice-pit",
            "--from",
            "main",
            "--at",
            &t,
        ],
    );
    assert_eq!(
        one(pg(
            &d,
            "alice",
            &alice,
            "alice-pit",
            "postgres",
            "select count(*) from customers where email like 'person%'"
        )),
        "0"
    );
    ok_as(
        &d,
        "alice",
        &alice,
        &["branch", "create", "alice-child", "--from", "alice-m"],
    );
    assert_eq!(
        one(pg(
            &d,
            "alice",
            &alice,
            "alice-child",
            "postgres",
            "select count(*) from customers where name like 'Customer%'"
        )),
        "0"
    );
    // The owner still sees the raw data on main.
    assert_eq!(
        d.sql("main", "select email from customers where id = 7"),
        "person7@example.com"
    );
}

#[test]
fn malformed_policies_are_refused_with_the_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("[tiers.a]\nparent = \"b\"\n[tiers.b]\nparent = \"a\"\n[roles.platform]\n", ":2:10: tiers.a.parent", "cycle"),
        ("[tiers.main]\n[tiers.qa]\nparent = \"stagng\"\n[roles.platform]\n", ":3:10: tiers.qa.parent", "unknown tier \"stagng\""),
        ("[tiers.main]\n[roles.platform]\n[roles.dev]\ncreate_from = [\"prod\"]\n", ":4:16: roles.dev.create_from", "unknown tier \"prod\""),
        ("[tiers.main]\n[roles.platform]\n[principals.bob]\nrole = \"dba\"\n", ":4:8: principals.bob.role", "unknown role"),
        ("[tiers.main]\n[roles.platform]\n[masking]\nroles = [\"ghost\"]\n", ":4:10: masking.roles", "unknown role"),
        ("[tiers.main]\nproduction = true\n[roles.platform]\n[roles.agent]\nconnect = [\"main\"]\n", ":5:12: roles.agent.connect", "agents never"),
        ("[tiers.main]\n[roles.platform]\npromte = true\n", ":3:1", "unknown field `promte`"),
        ("[tiers.main]\n[roles.platform\n", ":2:", ""),
    ];
    for (i, (text, at, what)) in cases.iter().enumerate() {
        let f = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let out = lakelet()
            .args(["policy", "check"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            err.contains(&format!("bad{i}.toml{at}")) && err.contains(what),
            "case {i}: {err}"
        );
        // The daemon refuses to start on it, and leaves nothing running.
        if i == 0 {
            let dd = tmp.path().join("data");
            let out = lakelet()
                .arg("--data-dir")
                .arg(&dd)
                .args(["up", "--api-port", "0", "--proxy-port", "0", "--policy"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("cycle"));
            assert!(!dd.join("daemon.json").exists());
        }
    }
    // The starter `lakelet init` writes is valid.
    let out = lakelet()
        .current_dir(tmp.path())
        .args(["init"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = lakelet()
        .current_dir(tmp.path())
        .args(["policy", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A workflow event is held to its reporter's own rights (issue 23): an agent or a developer
/// cannot write "scm.merge allowed" into the trail, an unknown event is refused, each refusal
/// is audited as one, and no allowed row carries the client's word (`scm-gate`) as its rule.
#[test]
fn forged_workflow_events_are_refused_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lakelet.toml");
    std::fs::write(&file, POLICY).unwrap();
    let d = Daemon::up(&["--policy", file.to_str().unwrap()]);
    let bot = principal(&d, "bot", "agent");
    let alice = principal(&d, "alice", "developer");
    let ci = principal(&d, "ci1", "ci");
    let event = |secret: &str, action: &str, target: &str, refused: &str| {
        api(
            &d,
            secret,
            "POST",
            "/lakelet/v1/workflow-events",
            Some(serde_json::json!({ "action": action, "target": target, "refused": refused })),
        )
    };
    let cases = [
        (
            &bot,
            "scm.merge",
            "main",
            "",
            403,
            "refused",
            "agents-never-promote",
        ),
        (
            &bot,
            "promote.apply",
            "staging",
            "",
            403,
            "refused",
            "agents-never-promote",
        ),
        (
            &bot,
            "promote.staging",
            "main",
            "",
            403,
            "refused",
            "workflow-events",
        ),
        (
            &alice,
            "ci.merge",
            "staging",
            "",
            403,
            "refused",
            "roles.developer.promote",
        ),
        (
            &bot,
            "scm.claim",
            "feature/x",
            "",
            200,
            "allowed",
            "workflow-events",
        ),
        (
            &bot,
            "scm.merge",
            "feature/x",
            "the gate said no",
            200,
            "refused",
            "scm-gate",
        ),
        (
            &ci,
            "ci.merge",
            "staging",
            "",
            200,
            "allowed",
            "workflow-events",
        ),
    ];
    for (secret, action, target, refused, status, _, rule) in cases {
        let (got, body) = event(secret, action, target, refused);
        assert_eq!(got, status, "{action} {target}: {body}");
        if status == 403 {
            assert!(body.to_string().contains(rule), "{action}: {body}");
        }
    }
    let rows = d.json(&["audit"]);
    let rows: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            ["scm.", "ci.", "promote."]
                .iter()
                .any(|p| r["action"].as_str().unwrap().starts_with(p))
        })
        .collect();
    assert_eq!(rows.len(), cases.len(), "one row per report: {rows:#?}");
    for ((_, action, target, _, _, decision, rule), r) in cases.iter().zip(&rows) {
        assert_eq!(
            (r["action"].as_str(), r["target"].as_str()),
            (Some(*action), Some(*target))
        );
        assert_eq!(r["decision"], *decision, "{r}");
        assert_eq!(r["rule"], *rule, "{r}");
    }
    assert!(!rows
        .iter()
        .any(|r| r["decision"] == "allowed" && r["rule"] == "scm-gate"));
}

/// Audit completeness (issue 23): every state-changing route of the REST API (docs/openapi.yaml
/// and /lakelet/v1), called once by a principal the policy refuses and once by one it allows,
/// leaves exactly one audit row per call, with that caller, action, decision, and, when
/// allowed, the real outcome ("ok" only once the action has happened).
#[test]
fn every_state_change_leaves_exactly_one_audit_row() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lakelet.toml");
    std::fs::write(&file, POLICY).unwrap();
    let d = Daemon::up(&["--policy", file.to_str().unwrap()]);
    d.run(&["branch", "create", "staging", "--from", "main"]);
    let bot = principal(&d, "bot", "agent");
    let plat = principal(&d, "plat", "platform");
    let ci = principal(&d, "ci1", "ci");
    let rows_of = |who: &str| -> Vec<Value> {
        std::fs::read_to_string(d.dir.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["principal"] == who)
            .collect()
    };
    // One call: its status class, and exactly one new row of `who` saying `action`/`decision`.
    let call = |who: &str,
                secret: &str,
                method: &str,
                path: &str,
                body: Value,
                action: &str,
                allowed: bool| {
        let before = rows_of(who).len();
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = api(&d, secret, method, path, body);
        if allowed {
            assert!(
                (200..300).contains(&status),
                "{who} {method} {path}: {status} {answer}"
            );
        } else {
            assert_eq!(status, 403, "{who} {method} {path}: {answer}");
        }
        // An operation (import) is audited once it has an outcome.
        let mut rows = rows_of(who);
        for _ in 0..600 {
            if rows.len() > before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            rows = rows_of(who);
        }
        let new = &rows[before..];
        assert_eq!(new.len(), 1, "{who} {method} {path}: {new:#?}");
        let r = &new[0];
        assert_eq!(r["action"], action, "{who} {method} {path}: {r}");
        assert_eq!(
            r["decision"],
            if allowed { "allowed" } else { "refused" },
            "{r}"
        );
        if allowed {
            assert_eq!(r["result"], "ok", "{who} {method} {path}: {r}");
        }
        answer
    };
    let both = |method: &str, path: &str, body: Value, action: &str| {
        call("bot", &bot, method, path, body.clone(), action, false);
        call("plat", &plat, method, path, body, action, true)
    };
    let br = |name: &str| format!("{P}/branches/{name}");
    let v1 = "/lakelet/v1";
    // Lakebase's routes.
    call(
        "bot",
        &bot,
        "POST",
        &format!("{P}/branches?branch_id=bot-a"),
        create_body("main", serde_json::json!({})),
        "branch.create",
        false,
    );
    call(
        "plat",
        &plat,
        "POST",
        &format!("{P}/branches?branch_id=plat-a"),
        create_body("staging", serde_json::json!({})),
        "branch.create",
        true,
    );
    both(
        "PATCH",
        &format!("{}?update_mask=spec.is_protected", br("plat-a")),
        serde_json::json!({ "spec": { "is_protected": false } }),
        "branch.update",
    );
    both(
        "POST",
        &format!("{}/reset", br("plat-a")),
        serde_json::json!({}),
        "branch.reset",
    );
    both(
        "POST",
        &format!("{}/restore", br("plat-a")),
        serde_json::json!({ "source_branch": "projects/local/branches/staging" }),
        "branch.restore",
    );
    call(
        "bot",
        &bot,
        "POST",
        &format!("{P}/snapshots?snapshot_id=bot-s"),
        serde_json::json!({ "spec": { "source_branch": "projects/local/branches/main", "no_expiry": true } }),
        "snapshot.create",
        false,
    );
    call(
        "plat",
        &plat,
        "POST",
        &format!("{P}/snapshots?snapshot_id=staging-s"),
        serde_json::json!({ "spec": { "source_branch": "projects/local/branches/staging", "no_expiry": true } }),
        "snapshot.create",
        true,
    );
    call(
        "plat",
        &plat,
        "POST",
        &format!("{P}/snapshots?snapshot_id=staging-t"),
        serde_json::json!({ "spec": { "source_branch": "projects/local/branches/staging", "no_expiry": true } }),
        "snapshot.create",
        true,
    );
    both(
        "DELETE",
        &format!("{P}/snapshots/staging-t"),
        Value::Null,
        "snapshot.delete",
    );
    both(
        "POST",
        "/api/2.0/postgres/credentials",
        serde_json::json!({ "endpoint": "projects/local/branches/plat-a/endpoints/primary" }),
        "credential.create",
    );
    // lakelet's own routes.
    both(
        "POST",
        &format!("{v1}/branches/plat-a/restore-point"),
        serde_json::json!({}),
        "branch.restore_point",
    );
    both(
        "POST",
        &format!("{v1}/branches/plat-a/start"),
        serde_json::json!({}),
        "compute.start",
    );
    both(
        "POST",
        &format!("{v1}/branches/plat-a/stop"),
        serde_json::json!({}),
        "compute.stop",
    );
    both("POST", &format!("{v1}/gc"), serde_json::json!({}), "gc");
    both(
        "POST",
        &format!("{v1}/principals"),
        serde_json::json!({ "name": "eve", "role": "developer" }),
        "principal.add",
    );
    both(
        "DELETE",
        &format!("{v1}/principals/eve"),
        Value::Null,
        "principal.remove",
    );
    both(
        "POST",
        &format!("{v1}/policy/apply"),
        serde_json::json!({}),
        "policy.apply",
    );
    both(
        "POST",
        &format!("{v1}/promotions"),
        serde_json::json!({ "from": "plat-a", "to": "staging" }),
        "merge",
    );
    both(
        "POST",
        &format!("{v1}/rollbacks"),
        serde_json::json!({ "tier": "staging", "snapshot": "staging-s" }),
        "rollback",
    );
    both(
        "POST",
        &format!("{v1}/workflow-events"),
        serde_json::json!({ "action": "scm.merge", "target": "feature/a" }),
        "scm.merge",
    );
    call(
        "bot",
        &bot,
        "GET",
        &format!("{v1}/audit"),
        Value::Null,
        "audit.read",
        false,
    );
    call(
        "ci1",
        &ci,
        "GET",
        &format!("{v1}/audit"),
        Value::Null,
        "audit.read",
        true,
    );
    let src = common::initdb(tmp.path());
    both(
        "POST",
        &format!("{v1}/import"),
        serde_json::json!({ "branch": "imported", "pgdata": src }),
        "import",
    );
    both("DELETE", &br("plat-a"), Value::Null, "branch.delete");
    both(
        "POST",
        &format!("{}/undelete", br("plat-a")),
        serde_json::json!({}),
        "branch.undelete",
    );
    both(
        "POST",
        &format!("{v1}/shutdown"),
        serde_json::json!({}),
        "shutdown",
    );
}

/// A daemon started without a lakelet.toml takes one with `lakelet policy apply` run in the
/// project (issue 24): the CLI sends the file, the daemon validates, enforces and audits it.
/// Without a file on either side the error says where to run it.
#[test]
fn policy_apply_loads_a_policy_into_a_daemon_started_without_one() {
    let d = Daemon::up(&[]);
    let project = tempfile::tempdir().unwrap();
    let apply = |dir: &Path| {
        lakelet()
            .current_dir(dir)
            .arg("--data-dir")
            .arg(&d.dir)
            .args(["--json", "policy", "apply"])
            .output()
            .unwrap()
    };
    let o = apply(project.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("lakelet policy apply` in the project"),
        "{err}"
    );
    std::fs::write(project.path().join("lakelet.toml"), POLICY).unwrap();
    let o = apply(project.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.json(&["policy", "show"])["declared"], true);
    // Enforced at once: an agent may not branch from production.
    let bot = principal(&d, "bot", "agent");
    refused_as(
        &d,
        "bot",
        &bot,
        &["branch", "create", "bot-x", "--from", "main"],
        "agents-never-production",
    );
    // With --json the refusal is JSON too, with the code and the rule.
    let o = as_p(
        &d,
        "bot",
        &bot,
        &["--json", "branch", "create", "bot-x", "--from", "main"],
    );
    assert!(!o.status.success());
    let e: Value = serde_json::from_slice(&o.stderr).expect("a JSON error on stderr");
    assert_eq!(e["error_code"], "PERMISSION_DENIED", "{e}");
    assert_eq!(e["rule"], "agents-never-production", "{e}");
    // The server's own code when it answered; an error of the CLI's own (no project here)
    // is CLI_ERROR.
    let nowhere = tempfile::tempdir().unwrap();
    let e: Value = serde_json::from_slice(&apply(nowhere.path()).stderr).expect("JSON");
    assert_eq!(e["error_code"], "INVALID_PARAMETER_VALUE", "{e}");
    let o = lakelet()
        .current_dir(nowhere.path())
        .args(["--json", "scm", "state"])
        .output()
        .unwrap();
    let e: Value = serde_json::from_slice(&o.stderr).expect("a JSON error on stderr");
    assert_eq!(e["error_code"], "CLI_ERROR", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("lakelet init"),
        "{e}"
    );
    let rows = d.json(&["audit", "--action", "policy.apply"]);
    let last = rows.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["decision"], &last["result"]),
        (&"allowed".into(), &"ok".into()),
        "{last}"
    );
    assert!(
        last["target"].as_str().unwrap().ends_with("lakelet.toml"),
        "{last}"
    );
}

/// `lakelet branch share` (issue 24): a feature's owner lets a teammate in, read-only and for
/// a while; nobody else can, no tier can be shared, taking it back shuts the door, and every
/// step is audited.
#[test]
fn an_owner_shares_a_feature_with_a_teammate_and_takes_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = governed(tmp.path());
    let alice = principal(&d, "alice", "developer");
    let bob = principal(&d, "bob", "developer");
    ok_as(
        &d,
        "alice",
        &alice,
        &["branch", "create", "alice-f", "--from", "staging"],
    );
    let count = "select count(*) from customers";
    assert_eq!(
        pg(&d, "bob", &bob, "alice-f", "postgres", count),
        Err("42501".into())
    );
    refused_as(
        &d,
        "bob",
        &bob,
        &["branch", "share", "alice-f", "--with", "bob"],
        "shares",
    );
    refused_as(
        &d,
        "alice",
        &alice,
        &["branch", "share", "staging", "--with", "bob"],
        "shares",
    );
    ok_as(
        &d,
        "alice",
        &alice,
        &[
            "branch",
            "share",
            "alice-f",
            "--with",
            "bob",
            "--read-only",
            "--ttl",
            "1h",
        ],
    );
    assert_eq!(
        one(pg(&d, "bob", &bob, "alice-f", "postgres", count)),
        "2000"
    );
    assert_eq!(
        pg(
            &d,
            "bob",
            &bob,
            "alice-f",
            "postgres",
            "delete from customers"
        ),
        Err("42501".into()),
        "a read-only share writes nothing"
    );
    ok_as(
        &d,
        "alice",
        &alice,
        &["branch", "unshare", "alice-f", "--with", "bob"],
    );
    assert_eq!(
        pg(&d, "bob", &bob, "alice-f", "postgres", count),
        Err("42501".into())
    );
    let rows = d.json(&["audit"]);
    let story: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap().contains("share"))
        .map(|r| {
            (
                r["principal"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
                r["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("bob", "branch.share", "refused"),
        ("alice", "branch.share", "refused"),
        ("alice", "branch.share", "allowed"),
        ("alice", "branch.unshare", "allowed"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(story, want);
    let connects = d.json(&["audit", "--action", "connect", "--principal", "bob"]);
    assert!(
        connects
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "shares" && r["decision"] == "allowed"),
        "{connects:#}"
    );
}
