//! `lakelet refactor` against real Postgres through a real daemon: every refactoring in the
//! catalog written, rehearsed (each file applied twice), linted clean, applied, its sync
//! exercised by writers of both shapes, refused before its date and while a reader of the
//! old shape remains, then contracted; and bad input refused with nothing written.

mod common;

use std::path::Path;
use std::process::Command;

use common::project::Project;
use common::Daemon;

fn project<'a>(d: &'a Daemon, tmp: &Path) -> Project<'a> {
    Project::new(d, tmp, "app")
}

const SCHEMA: &str = "\
CREATE TABLE inventory (id int PRIMARY KEY, inventory_code text NOT NULL, qty int, legacy text NOT NULL DEFAULT 'x');
INSERT INTO inventory (id, inventory_code, qty)
  SELECT g, 'WH' || lpad((g % 40)::text, 2, '0') || '-' || lpad((g % 997)::text, 5, '0')
            || '-' || lpad(g::text, 6, '0'), g % 100
  FROM generate_series(1, 3000) g;
CREATE TABLE inventory_details (inventory_id int PRIMARY KEY REFERENCES inventory (id), shelf text);
INSERT INTO inventory_details SELECT id, 'S' || (id % 9) FROM inventory;
CREATE TABLE customers (id int PRIMARY KEY, first_name text, last_name text, zip int, region text);
INSERT INTO customers SELECT g, 'F' || g, 'L' || g, 10000 + g, (ARRAY['north','south','east'])[1 + g % 3]
  FROM generate_series(1, 500) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, status text, total numeric);
INSERT INTO orders SELECT g, 1 + g % 500, 'open', CASE WHEN g % 10 = 0 THEN NULL ELSE g END
  FROM generate_series(1, 2000) g;
CREATE TABLE shipments (id int PRIMARY KEY, carrier text);
CREATE TABLE audit_log (id int PRIMARY KEY, line text);
INSERT INTO audit_log VALUES (1, 'first');
";

#[test]
fn every_refactoring_expands_syncs_and_contracts() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let p = project(&d, tmp.path());
    std::fs::write(p.dir.join("migrations/V1__schema.sql"), SCHEMA).unwrap();
    p.run(&["migrate", "migrate", "--branch", "main"]);

    let r = |kind: &str, args: &[&str]| {
        let mut a = vec!["refactor", kind];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--branch", "main", "--transition", "3s"]);
        p.json(&a)
    };
    let split = r(
        "split-column",
        &[
            "inventory.inventory_code",
            "--into",
            "location_code,batch_number,serial_number",
            "--using",
            "substr(inventory_code, 1, 4), substr(inventory_code, 6, 5)::int, substr(inventory_code, 12)::int",
            "--reverse",
            "location_code || '-' || lpad(batch_number::text, 5, '0') || '-' || lpad(serial_number::text, 6, '0')",
        ],
    );
    assert_eq!(
        split["files"],
        serde_json::json!([
            "V2__split_column_inventory_inventory_code_expand.sql",
            "V3__split_column_inventory_inventory_code_backfill.sql"
        ]),
        "{split}"
    );
    r(
        "merge-columns",
        &[
            "customers.first_name,last_name",
            "--into",
            "full_name",
            "--using",
            "first_name || ' ' || last_name",
            "--reverse",
            "split_part(full_name, ' ', 1), split_part(full_name, ' ', 2)",
        ],
    );
    r("rename-column", &["orders.status", "--to", "state"]);
    r(
        "replace-type",
        &["customers.zip", "--type", "text", "--to", "zip_code"],
    );
    r("introduce-not-null", &["orders.total", "--default", "0"]);
    let one = r(
        "introduce-default",
        &["shipments.carrier", "--default", "'ups'"],
    );
    assert!(one["contract_staged"].is_null(), "one phase: {one}");
    r(
        "add-foreign-key",
        &["orders.customer_id", "--references", "customers(id)"],
    );
    r(
        "introduce-lookup-table",
        &["customers.region", "--to", "regions"],
    );
    r("drop-column", &["inventory.legacy"]);
    r("rename-table", &["audit_log", "--to", "event_log"]);
    r(
        "move-column",
        &[
            "inventory.qty",
            "--to",
            "inventory_details",
            "--via",
            "inventory_id",
        ],
    );

    // The transitions file lists ten in flight (introduce-default has none).
    let status = p.json(&["refactor", "status"]);
    assert_eq!(status.as_array().unwrap().len(), 10, "{status}");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.dir.join(".lakebase/transitions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["version"], 1);

    // Every generated file: clean under lint (what is flagged is acknowledged with a reason)…
    let lint = p.json(&["migrate", "lint", "--branch", "main"]);
    assert_eq!(lint["unacknowledged"], 0, "{lint:#}");
    // …and re-runnable: the rehearsal applies each twice and the schema does not move.
    let rehearsal = p.json(&["migrate", "rehearse", "--branch", "main"]);
    assert_eq!(rehearsal["ok"], true, "{rehearsal:#}");
    assert!(
        rehearsal["migrations"].as_array().unwrap().len() >= 14,
        "{rehearsal}"
    );

    p.run(&["migrate", "migrate", "--branch", "main"]);
    let q = |sql: &str| d.sql("main", sql);
    // Backfilled.
    assert_eq!(
        q("select location_code, batch_number, serial_number from inventory where id = 42"),
        "WH02|42|42"
    );
    assert_eq!(q("select full_name from customers where id = 7"), "F7 L7");
    assert_eq!(
        q("select count(*) from orders where state = 'open'"),
        "2000"
    );
    assert_eq!(q("select zip_code from customers where id = 3"), "10003");
    assert_eq!(q("select count(*) from orders where total is null"), "0");
    assert_eq!(q("select count(*) from regions"), "3");
    assert_eq!(
        q("select count(*) from customers where region_id is null"),
        "0"
    );
    assert_eq!(
        q("select qty from inventory_details where inventory_id = 42"),
        "42"
    );
    assert_eq!(
        q("select line from audit_log"),
        "first",
        "the old name still reads"
    );
    // Writers of the old shape: the new one follows.
    q("insert into inventory (id, inventory_code) values (9001, 'WH07-00123-000456')");
    assert_eq!(
        q("select location_code || '|' || batch_number || '|' || serial_number from inventory where id = 9001"),
        "WH07|123|456"
    );
    q("update orders set status = 'shipped' where id = 1");
    assert_eq!(q("select state from orders where id = 1"), "shipped");
    q("insert into orders (id, customer_id, status) values (5001, 1, 'open')");
    assert_eq!(
        q("select total from orders where id = 5001"),
        "0",
        "old writers get the default"
    );
    q("insert into customers (id, first_name, last_name, zip, region) values (900, 'A', 'B', 123, 'west')");
    assert_eq!(
        q("select r.value from customers c join regions r on r.id = c.region_id where c.id = 900"),
        "west"
    );
    q("update inventory set qty = 7 where id = 42");
    assert_eq!(
        q("select qty from inventory_details where inventory_id = 42"),
        "7"
    );
    q("insert into audit_log values (2, 'through the view')");
    assert_eq!(q("select count(*) from event_log"), "2");
    assert_eq!(
        q("insert into shipments (id) values (1) returning carrier"),
        "ups"
    );
    // Writers of the new shape: the old one follows.
    q("insert into inventory (id, location_code, batch_number, serial_number) values (9002, 'WH01', 5, 6)");
    assert_eq!(
        q("select inventory_code from inventory where id = 9002"),
        "WH01-00005-000006"
    );
    q("update orders set state = 'closed' where id = 2");
    assert_eq!(q("select status from orders where id = 2"), "closed");
    q("update customers set full_name = 'Ada Lovelace' where id = 8");
    assert_eq!(
        q("select first_name || '/' || last_name from customers where id = 8"),
        "Ada/Lovelace"
    );
    q("update inventory_details set qty = 99 where inventory_id = 43");
    assert_eq!(q("select qty from inventory where id = 43"), "99");
    // A new foreign key checks new writes at once.
    let out = Command::new("psql")
        .arg(d.url("main"))
        .args([
            "-c",
            "insert into orders (id, customer_id) values (6000, 99999)",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("orders_customer_id_fkey"));

    // Before its date: refused, by `refactor contract` and by lint on a hand-copied file.
    p.run(&[
        "refactor",
        "drop-column",
        "inventory_details.shelf",
        "--branch",
        "main",
        "--transition",
        "30d",
    ]);
    let e = p.fails(&[
        "refactor",
        "contract",
        "drop_column_inventory_details_shelf",
        "--branch",
        "main",
    ]);
    assert!(
        e.contains("not contracting") && e.contains("may not run before"),
        "{e}"
    );
    let staged = p
        .dir
        .join(".lakebase/transitions/drop_column_inventory_details_shelf.contract.sql");
    std::fs::copy(&staged, p.dir.join("migrations/V99__early.sql")).unwrap();
    let (ok, out, _) = p.try_run(&["--json", "migrate", "lint", "--branch", "main"]);
    assert!(!ok, "lint fails on it");
    let lint: serde_json::Value = serde_json::from_str(&out).unwrap();
    let early: Vec<&serde_json::Value> = lint["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "contract-too-early")
        .collect();
    assert_eq!(early.len(), 1, "{lint:#}");
    assert_eq!(early[0]["script"], "V99__early.sql");
    std::fs::remove_file(p.dir.join("migrations/V99__early.sql")).unwrap();

    std::thread::sleep(std::time::Duration::from_secs(4));
    // A reader of the old shape blocks its contract until it moves.
    q("create view codes as select id, inventory_code from inventory");
    let e = p.fails(&[
        "refactor",
        "contract",
        "split_column_inventory_inventory_code",
        "--branch",
        "main",
    ]);
    assert!(e.contains("view codes reads"), "{e}");
    q("drop view codes");
    let ids: Vec<String> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transition"]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        p.run(&["refactor", "contract", id, "--branch", "main"]);
    }
    let lint = p.json(&["migrate", "lint", "--branch", "main"]);
    assert_eq!(lint["unacknowledged"], 0, "{lint:#}");
    let rehearsal = p.json(&["migrate", "rehearse", "--branch", "main"]);
    assert_eq!(rehearsal["ok"], true, "{rehearsal:#}");
    p.run(&["migrate", "migrate", "--branch", "main"]);

    // The old shapes are gone, the new ones hold the data, nothing of lakelet's is left.
    let cols = q("select string_agg(table_name || '.' || column_name, ',' order by 1) from information_schema.columns \
                  where table_schema = 'public' and table_name in ('inventory', 'customers', 'orders')");
    for gone in [
        "inventory.inventory_code",
        "inventory.legacy",
        "inventory.qty",
        "customers.first_name",
        "customers.zip",
        "customers.region",
        "orders.status",
    ] {
        assert!(
            !cols.split(',').any(|c| c == gone),
            "{gone} still there: {cols}"
        );
    }
    assert_eq!(
        q("select count(*) from pg_proc where proname like 'lakelet_sync_%'"),
        "0"
    );
    assert_eq!(
        q("select count(*) from pg_trigger where tgname like 'lakelet_sync_%'"),
        "0"
    );
    assert_eq!(q("select to_regclass('audit_log') is null"), "t");
    assert_eq!(q("select attnotnull from pg_attribute where attrelid = 'orders'::regclass and attname = 'total'"), "t");
    assert_eq!(
        q("select convalidated from pg_constraint where conname = 'orders_customer_id_fkey'"),
        "t"
    );
    assert_eq!(q("select batch_number from inventory where id = 9002"), "5");
    let status = p.json(&["refactor", "status"]);
    let states: Vec<(&str, &str)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["transition"]["id"].as_str().unwrap(),
                s["transition"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    for (id, state) in states {
        let want = if id == "drop_column_inventory_details_shelf" {
            "expanding"
        } else {
            "contracting"
        };
        assert_eq!(state, want, "{id}");
    }
    let n = p.migrations().len();
    assert!(n > 20, "{:?}", p.migrations());
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let p = project(&d, tmp.path());
    std::fs::write(p.dir.join("migrations/V1__schema.sql"), SCHEMA).unwrap();
    p.run(&["migrate", "migrate", "--branch", "main"]);
    d.sql(
        "main",
        "update inventory set inventory_code = 'WH01-0x001-000001' where id in (5, 6)",
    );
    let before = p.migrations();
    let cases: &[(&[&str], &str)] = &[
        (
            &["split-column", "nosuch.code", "--into", "a", "--using", "1"],
            "no table \"nosuch\"",
        ),
        (
            &[
                "split-column",
                "inventory.nosuch",
                "--into",
                "a",
                "--using",
                "1",
            ],
            "no column \"nosuch\" in public.inventory",
        ),
        (
            &[
                "split-column",
                "inventory.qty",
                "--into",
                "a,b",
                "--using",
                "1, 2",
            ],
            "splits a text column; public.inventory.qty is integer",
        ),
        (
            &[
                "split-column",
                "inventory.inventory_code",
                "--into",
                "loc,batch",
                "--using",
                "substr(inventory_code, 1, 4), substr(inventory_code, 6, 5)::int",
            ],
            "fails on 2 row(s) of public.inventory",
        ),
        (
            &[
                "split-column",
                "inventory.inventory_code",
                "--into",
                "a,b",
                "--using",
                "nosuch_fn(inventory_code), 1",
            ],
            "is not a valid expression",
        ),
        (
            &[
                "split-column",
                "inventory.inventory_code",
                "--into",
                "a,b",
                "--using",
                "1",
            ],
            "needs 2 --using expression(s)",
        ),
        (
            &["replace-type", "inventory.qty", "--type", "integer"],
            "already integer",
        ),
        (
            &["replace-type", "inventory.qty", "--type", "nosuchtype"],
            "no type \"nosuchtype\"",
        ),
        (
            &["introduce-not-null", "inventory.inventory_code"],
            "already NOT NULL",
        ),
        (
            &[
                "add-foreign-key",
                "orders.status",
                "--references",
                "customers(id)",
            ],
            "needs the same type",
        ),
        (
            &["rename-column", "orders.status", "--to", "total"],
            "already has a column \"total\"",
        ),
        (&["drop-column", "orders.id"], "part of the primary key"),
    ];
    for (args, want) in cases {
        let mut a = vec!["refactor"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--branch", "main"]);
        let e = p.fails(&a);
        assert!(e.contains(want), "{args:?}: expected {want:?} in:\n{e}");
        let (ok, _, err) = p.try_run(&[&["--json"], a.as_slice()].concat());
        assert!(!ok);
        let j: serde_json::Value = serde_json::from_str(err.trim())
            .unwrap_or_else(|_| panic!("a JSON error for {args:?}: {err}"));
        assert!(
            j["message"].as_str().unwrap_or_default().contains(want),
            "{j}"
        );
    }
    assert_eq!(p.migrations(), before, "nothing written");
    assert!(!p.dir.join(".lakebase/transitions.json").exists());
    // A transitions file broken by hand is named, not ignored.
    std::fs::create_dir_all(p.dir.join(".lakebase")).unwrap();
    std::fs::write(
        p.dir.join(".lakebase/transitions.json"),
        r#"{"version": 1, "transitions": [{"id": "x"}]}"#,
    )
    .unwrap();
    let e = p.fails(&["refactor", "status"]);
    assert!(
        e.contains("does not match its schema") && e.contains("refactoring"),
        "{e}"
    );
}
