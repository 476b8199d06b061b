//! The migration runner against real Postgres through a real daemon: Flyway's lifecycle
//! (apply, no-op, validate, repair, baseline, out-of-order, undo), failures halfway, two
//! runners at once, and the worked example's Split Column rehearsal on corrupted data.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lakelet, Daemon};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `lakelet --data-dir D ARGS`, returning (success, stdout, stderr).
fn try_run(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = lakelet()
        .arg("--data-dir")
        .arg(&d.dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn history(d: &Daemon, branch: &str) -> Vec<String> {
    d.sql(
        branch,
        "select coalesce(version, '-') || '|' || type || '|' || success \
         from flyway_schema_history order by installed_rank",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn flyway_lifecycle_against_real_postgres() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("migrations");
    std::fs::create_dir(&mig).unwrap();
    let dir = mig.to_str().unwrap();
    // Any Postgres by URL: the proxy's URL for main is just a connection string here.
    let url = d.url("main");
    let m = |args: &[&str]| {
        let mut a = vec!["migrate"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--url", &url, "--dir", dir]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let a = m(args);
        d.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let fails = |args: &[&str]| {
        let a = m(args);
        d.fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // A history Flyway wrote: its DDL, a row with the checksum Flyway's algorithm gives the
    // CRLF file below (see the checksum table in src/migrate/checksum.rs), and its table.
    write(
        &mig,
        "V1__create_t.sql",
        "CREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n",
    );
    d.sql(
        "main",
        "create table flyway_schema_history (installed_rank int not null primary key, \
         version varchar(50), description varchar(200) not null, type varchar(20) not null, \
         script varchar(1000) not null, checksum int, installed_by varchar(100) not null, \
         installed_on timestamp not null default now(), execution_time int not null, \
         success boolean not null); \
         insert into flyway_schema_history values \
         (1, '1', 'create t', 'SQL', 'V1__create_t.sql', 169406234, 'flyway', now(), 5, true); \
         create table t (id int); insert into t values (1);",
    );
    run(&["validate"]);

    // Versioned and repeatable, with placeholders.
    write(
        &mig,
        "V2__add_name.sql",
        "SET lock_timeout = '5s';\nALTER TABLE t ADD COLUMN IF NOT EXISTS name text DEFAULT '${default_name}';\n",
    );
    write(
        &mig,
        "R__view.sql",
        "CREATE OR REPLACE VIEW t_view AS SELECT id, name FROM t;\n",
    );
    write(
        &mig,
        "U2__drop_name.sql",
        "DROP VIEW t_view;\nALTER TABLE t DROP COLUMN name;\n",
    );
    let e = fails(&["migrate"]);
    assert!(
        e.contains("V2__add_name.sql:2: no value for placeholder ${default_name}"),
        "{e}"
    );
    let dry = run(&["migrate", "--dry-run", "--placeholder", "default_name=anon"]);
    assert!(dry.contains("DEFAULT 'anon'"), "{dry}");
    assert_eq!(
        d.sql("main", "select count(*) from flyway_schema_history"),
        "1"
    );
    let r = d.json(
        &m(&["migrate", "--placeholder", "default_name=anon"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r["applied"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["schema_version_after"], "2");
    assert_eq!(d.sql("main", "select name from t_view"), "anon");
    // Re-running is a no-op.
    let r = d.json(
        &m(&["migrate", "--placeholder", "default_name=anon"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r["applied"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(
        history(&d, "main"),
        ["1|SQL|true", "2|SQL|true", "-|SQL|true"]
    );
    // The table has exactly Flyway's columns.
    assert_eq!(
        d.sql(
            "main",
            "select string_agg(column_name || ':' || data_type, ',' order by ordinal_position) \
                       from information_schema.columns where table_name = 'flyway_schema_history'"
        ),
        "installed_rank:integer,version:character varying,description:character varying,\
         type:character varying,script:character varying,checksum:integer,\
         installed_by:character varying,installed_on:timestamp without time zone,\
         execution_time:integer,success:boolean"
    );

    // Editing an applied file: validate and migrate fail naming it; repair realigns.
    write(
        &mig,
        "V2__add_name.sql",
        "SET lock_timeout = '10s';\nALTER TABLE t ADD COLUMN IF NOT EXISTS name text DEFAULT '${default_name}';\n",
    );
    let e = fails(&["validate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("checksum mismatch for migration version 2 (V2__add_name.sql)"),
        "{e}"
    );
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("V2__add_name.sql") && e.contains("nothing was applied"),
        "{e}"
    );
    assert!(run(&["repair"]).contains("realigned 2 - add name"));
    run(&["validate", "--placeholder", "default_name=anon"]);

    // Out of order: refused by default, applied on request.
    write(&mig, "V1_5__late.sql", "CREATE TABLE late (id int);\n");
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("version 1.5 (V1_5__late.sql) was never applied")
            && e.contains("--out-of-order"),
        "{e}"
    );
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from pg_tables where tablename = 'late'"
        ),
        "0"
    );
    run(&[
        "migrate",
        "--out-of-order",
        "--placeholder",
        "default_name=anon",
    ]);
    let info = d.json(&m(&["info"]).iter().map(String::as_str).collect::<Vec<_>>());
    let late = info
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["script"] == "V1_5__late.sql")
        .unwrap();
    assert_eq!(late["state"], "OutOfOrder", "{info}");

    // Undo: the newest applied (1.5) has no undo file; remove it from the picture by
    // applying V3 whose undo exists.
    let e = fails(&["undo"]);
    assert!(e.contains("no undo file") && e.contains("1.5"), "{e}");
    write(
        &mig,
        "V3__add_flag.sql",
        "ALTER TABLE t ADD COLUMN flag boolean;\n",
    );
    write(
        &mig,
        "U3__drop_flag.sql",
        "ALTER TABLE t DROP COLUMN flag;\n",
    );
    run(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(run(&["undo"]).contains("undid version 3"));
    assert_eq!(d.sql("main", "select count(*) from information_schema.columns where table_name = 't' and column_name = 'flag'"), "0");
    assert_eq!(history(&d, "main").last().unwrap(), "3|UNDO_SQL|true");
    let info = d.json(&m(&["info"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        info.as_array()
            .unwrap()
            .iter()
            .any(|i| i["version"] == "3" && i["state"] == "Undone"),
        "{info}"
    );
    // An undone version is pending again.
    run(&["migrate", "--placeholder", "default_name=anon"]);
    assert_eq!(history(&d, "main").last().unwrap(), "3|SQL|true");

    // A transactional migration failing halfway leaves schema and history as they were.
    write(
        &mig,
        "V4__half.sql",
        "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nINSERT INTO half VALUES ('x');\n",
    );
    let before = history(&d, "main");
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("V4__half.sql:3") && e.contains("22P02") && e.contains("rolled back"),
        "{e}"
    );
    assert_eq!(history(&d, "main"), before);
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from pg_tables where tablename = 'half'"
        ),
        "0"
    );

    // Non-transactional statements mixed with transactional ones: refused before running.
    write(
        &mig,
        "V4__half.sql",
        "CREATE TABLE half (id int);\nCREATE INDEX CONCURRENTLY half_id ON half (id);\n",
    );
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("V4__half.sql:2: CREATE INDEX CONCURRENTLY cannot run inside a transaction"),
        "{e}"
    );
    assert_eq!(history(&d, "main"), before);
    // Declared non-transactional and failing at its third statement: the first two stay,
    // the history records the failure, the next run refuses until repaired.
    write(
        &mig,
        "V4__half.sql",
        "-- lakelet:no-transaction\nCREATE TABLE half (id int);\nCREATE INDEX CONCURRENTLY half_id ON half (id);\nCREATE INDEX CONCURRENTLY half_bad ON half (nope);\n",
    );
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("V4__half.sql:4") && e.contains("history records the failure"),
        "{e}"
    );
    assert_eq!(history(&d, "main").last().unwrap(), "4|SQL|false");
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from pg_indexes where indexname = 'half_id'"
        ),
        "1"
    );
    let e = fails(&["migrate", "--placeholder", "default_name=anon"]);
    assert!(
        e.contains("version 4 (V4__half.sql) failed part-way"),
        "{e}"
    );
    d.sql("main", "drop table half");
    write(
        &mig,
        "V4__half.sql",
        "-- lakelet:no-transaction\nCREATE TABLE half (id int);\nCREATE INDEX CONCURRENTLY half_id ON half (id);\n",
    );
    assert!(run(&["repair"]).contains("removed the failed entry for 4 - half"));
    run(&["migrate", "--placeholder", "default_name=anon"]);
    assert_eq!(history(&d, "main").last().unwrap(), "4|SQL|true");

    // A badly named file is an error, not skipped.
    write(&mig, "V5-oops.sql", "select 1;");
    let e = fails(&["info"]);
    assert!(e.contains("V5-oops.sql"), "{e}");
    std::fs::remove_file(mig.join("V5-oops.sql")).unwrap();

    // Baseline: an existing database without history starts at a version.
    d.sql("main", "create database legacy");
    let legacy = url.replacen("/postgres?", "/legacy?", 1);
    assert_ne!(legacy, url);
    let b = |args: &[&str]| {
        let mut a = vec!["migrate"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "--url",
            &legacy,
            "--dir",
            dir,
            "--placeholder",
            "default_name=anon",
        ]);
        try_run(&d, &a)
    };
    assert!(b(&["baseline", "--version", "3"]).0);
    let (ok, _, e) = b(&["baseline", "--version", "3"]);
    assert!(!ok && e.contains("baseline only starts a history"), "{e}");
    let (ok, out, _) = b(&["--json", "migrate"]);
    assert!(!ok);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["failed"]["script"], "R__view.sql", "{r}");
    assert_eq!(r["failed"]["sqlstate"], "42P01", "{r}");
    let applied: Vec<&str> = r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["script"].as_str().unwrap())
        .collect();
    // Only what comes after the baseline (V4) and the repeatable (which needs table t, absent
    // in the legacy database: it fails, proving it ran there and nothing before it did).
    assert_eq!(applied, ["V4__half.sql"], "{r}");
}

#[test]
fn two_runners_at_once_apply_each_migration_once() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("m");
    std::fs::create_dir(&mig).unwrap();
    write(
        &mig,
        "V1__slow.sql",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(2);\n",
    );
    // Non-transactional with CONCURRENTLY while the other runner polls for the lock: a
    // blocking lock wait would deadlock here.
    write(
        &mig,
        "V2__index.sql",
        "CREATE INDEX CONCURRENTLY slow_id ON slow (id);\n",
    );
    write(&mig, "V3__more.sql", "INSERT INTO slow VALUES (1);\n");
    let url = d.url("main");
    let spawn = || {
        lakelet()
            .arg("--data-dir")
            .arg(&d.dir)
            .args(["--json", "migrate", "migrate", "--url", &url, "--dir"])
            .arg(&mig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let n = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["applied"].as_array().unwrap().len()
    };
    // One runner applied all three, the other found nothing to do.
    let mut counts = [n(&a), n(&b)];
    counts.sort();
    assert_eq!(counts, [0, 3]);
    assert_eq!(
        history(&d, "main"),
        ["1|SQL|true", "2|SQL|true", "3|SQL|true"]
    );
    assert_eq!(d.sql("main", "select count(*) from slow"), "1");

    // A runner that cannot get the lock gives up after --lock-timeout, naming the holder.
    // The key is Flyway's: a magic number plus Java's hashCode of the quoted table name.
    let key: i64 = 77_431_708_279_161
        + "\"public\".\"flyway_schema_history\""
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32)) as i64;
    let bindir = common::pg_bindir();
    let addr = d.proxy_addr();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut holder = Command::new(bindir.join("psql"));
    holder
        .args(["-XAtq", "-h", host, "-p", port])
        .arg(&url)
        .args([
            "-c",
            &format!("select pg_advisory_lock({key}), pg_sleep(8)"),
        ]);
    let mut holder = holder.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    write(&mig, "V4__blocked.sql", "CREATE TABLE blocked (id int);\n");
    let (ok, _, e) = try_run(
        &d,
        &[
            "migrate",
            "migrate",
            "--url",
            &url,
            "--dir",
            mig.to_str().unwrap(),
            "--lock-timeout",
            "1s",
        ],
    );
    holder.wait().unwrap();
    assert!(
        !ok && e.contains("another migration runner holds the lock"),
        "{e}"
    );
    assert!(e.contains("psql"), "the holder is named: {e}");
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from pg_tables where tablename = 'blocked'"
        ),
        "0"
    );
}

/// The inventory table of the worked example: `inventory_code` = LOCATION-BATCH-SERIAL.
const INVENTORY: &str = "\
CREATE TABLE inventory (id int PRIMARY KEY, inventory_code text NOT NULL, qty int);
INSERT INTO inventory
  SELECT g, 'WH' || lpad((g % 40)::text, 2, '0') || '-' || lpad((g % 997)::text, 5, '0')
            || '-' || lpad(g::text, 6, '0'), g % 100
  FROM generate_series(1, 10000) g;
";

/// The Split Column migration: add the columns, backfill with substring arithmetic, keep
/// them in sync with inventory_code during the transition. Idempotent as written.
const SPLIT: &str = "\
SET lock_timeout = '5s';
ALTER TABLE inventory ADD COLUMN IF NOT EXISTS location_code text,
  ADD COLUMN IF NOT EXISTS batch_number int, ADD COLUMN IF NOT EXISTS serial_number int;
UPDATE inventory SET location_code = substr(inventory_code, 1, 4),
  batch_number = substr(inventory_code, 6, 5)::int,
  serial_number = substr(inventory_code, 12)::int;
CREATE OR REPLACE FUNCTION inventory_split_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.location_code := substr(NEW.inventory_code, 1, 4);
  NEW.batch_number := substr(NEW.inventory_code, 6, 5)::int;
  NEW.serial_number := substr(NEW.inventory_code, 12)::int;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS inventory_split_sync ON inventory;
CREATE TRIGGER inventory_split_sync BEFORE INSERT OR UPDATE OF inventory_code ON inventory
  FOR EACH ROW EXECUTE FUNCTION inventory_split_sync();
";

#[test]
fn rehearsal_of_the_split_column_on_corrupted_data_reports_the_rows_that_break() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("m");
    std::fs::create_dir(&mig).unwrap();
    let dir = mig.to_str().unwrap();
    write(&mig, "V86__inventory.sql", INVENTORY);
    d.run(&["migrate", "migrate", "--branch", "main", "--dir", dir]);
    write(&mig, "V87__split_inventory_code.sql", SPLIT);

    // Clean data: the rehearsal applies V87, runs it again, and the schema does not move.
    let r = rehearse(&d, &["--branch", "main", "--dir", dir]);
    assert_eq!(r["ok"], true, "{r}");
    let step = &r["migrations"][0];
    assert_eq!(step["script"], "V87__split_inventory_code.sql");
    assert_eq!(step["first_run"]["rows_affected"], 10000);
    assert_eq!(step["second_run"]["idempotent"], true, "{r}");

    // A branch with about 1% of codes damaged (embedded spaces, missing digits, trailing
    // blanks), made by hand so the test knows which rows must break the arithmetic.
    d.run(&["branch", "create", "dirty", "--from", "main", "--ttl", "1h"]);
    d.sql(
        "dirty",
        "update inventory set inventory_code = case id % 3 \
           when 0 then overlay(inventory_code placing ' ' from 8 for 0) \
           when 1 then regexp_replace(inventory_code, '[0-9]', '') \
           else inventory_code || ' ' end \
         where id % 97 = 0",
    );
    // Which rows break: where the substrings the migration takes are not integers.
    let expected: Vec<i64> = d
        .sql(
            "dirty",
            "select id from inventory where substr(inventory_code, 6, 5) !~ '^\\s*[0-9]+\\s*$' \
             or substr(inventory_code, 12) !~ '^\\s*[0-9]+\\s*$' order by id",
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        expected.len() > 10 && expected.len() < 103,
        "{}",
        expected.len()
    );
    let (ok, out, _) = try_run(
        &d,
        &[
            "--json", "migrate", "rehearse", "--branch", "dirty", "--dir", dir, "--rows", "500",
        ],
    );
    assert!(!ok, "a breaking rehearsal exits non-zero");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &r["migrations"][0]["failed"];
    assert_eq!(f["sqlstate"], "22P02", "{r}");
    assert_eq!(f["line"], 4, "the UPDATE: {r}");
    assert_eq!(
        f["breaking"]["count"],
        expected.len(),
        "every breaking row counted: {r}"
    );
    let mut got: Vec<i64> = f["breaking"]["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let row: serde_json::Value = serde_json::from_str(b["row"].as_str().unwrap()).unwrap();
            row["id"].as_i64().unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "exactly the rows that break");

    // The same through --corrupt on a fresh throwaway branch of main.
    let r = failed_rehearsal(&d, dir, &["--corrupt", "inventory.inventory_code:1"]);
    let c = &r["corrupted"][0];
    let rows = c["rows"].as_u64().unwrap();
    assert!((50..=200).contains(&rows), "about 1% of 10,000: {r}");
    assert!(c["recipes"]["embedded-space"].as_u64().unwrap() > 0, "{r}");
    let count = r["migrations"][0]["failed"]["breaking"]["count"]
        .as_u64()
        .unwrap();
    assert!(count > 0, "{r}");
    // Every breaking row was damaged by a recipe, and the grouping adds up.
    let by = r["migrations"][0]["breaking_by_recipe"]
        .as_object()
        .unwrap();
    assert!(!by.contains_key("undamaged"), "{r}");
    assert_eq!(
        by.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        count,
        "{r}"
    );

    // The fixed script (unparseable parts become NULL) passes on the dirty branch.
    write(
        &mig,
        "V87__split_inventory_code.sql",
        &common::tolerant_split(SPLIT),
    );
    let r = rehearse(&d, &["--branch", "dirty", "--dir", dir]);
    assert_eq!(r["ok"], true, "{r}");

    // A non-idempotent migration is caught by the second run.
    write(
        &mig,
        "V88__not_idempotent.sql",
        "ALTER TABLE inventory ADD COLUMN note text;\n",
    );
    let (ok, out, _) = try_run(
        &d,
        &[
            "--json", "migrate", "rehearse", "--branch", "main", "--dir", dir,
        ],
    );
    assert!(!ok);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let second = &r["migrations"][1]["second_run"];
    assert!(
        second["error"].as_str().unwrap().contains("already exists"),
        "{r}"
    );
    std::fs::remove_file(mig.join("V88__not_idempotent.sql")).unwrap();

    // Rehearsals leave no branch behind and never touch their source.
    let branches = d.run(&["branch", "list"]);
    assert!(!branches.contains("rehearse-"), "{branches}");
    assert_eq!(history(&d, "main"), ["86|SQL|true"]);
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from information_schema.columns where column_name = 'batch_number'"
        ),
        "0"
    );
}

/// A rehearsal of main with the migrations in `dir` that must fail: its --json report.
fn failed_rehearsal(d: &Daemon, dir: &str, extra: &[&str]) -> serde_json::Value {
    let mut a = vec![
        "--json", "migrate", "rehearse", "--branch", "main", "--dir", dir,
    ];
    a.extend_from_slice(extra);
    let (ok, out, err) = try_run(d, &a);
    assert!(!ok, "the rehearsal should fail: {out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn rehearse(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["migrate", "rehearse"];
    a.extend_from_slice(args);
    d.json(&a)
}

#[test]
fn lint_flags_dangerous_changes_until_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path();
    write(
        mig,
        "V1__risky.sql",
        "ALTER TABLE orders ADD COLUMN region text NOT NULL;\n\
         CREATE INDEX orders_region ON orders (region);\n\
         ALTER TABLE orders DROP COLUMN legacy;\n",
    );
    let out = lakelet()
        .args(["--json", "migrate", "lint", "--dir"])
        .arg(mig)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for want in [
        "add-column-not-null-without-default",
        "create-index-without-concurrently",
        "drop-column",
        "missing-lock-timeout",
    ] {
        assert!(rules.contains(&want), "{want} in {rules:?}");
    }
    // The safe forms, and an acknowledged drop, pass.
    write(
        mig,
        "V1__risky.sql",
        "SET lock_timeout = '5s';\n\
         ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'eu';\n\
         -- lakelet:allow drop-column legacy has been unread since V40\n\
         ALTER TABLE orders DROP COLUMN legacy;\n",
    );
    write(
        mig,
        "V2__index.sql",
        "CREATE INDEX CONCURRENTLY orders_region ON orders (region);\n",
    );
    let out = lakelet()
        .args(["--json", "migrate", "lint", "--dir"])
        .arg(mig)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{r}");
    assert_eq!(r["unacknowledged"], 0);
    let f = &r["findings"][0];
    assert_eq!(f["rule"], "drop-column");
    assert_eq!(f["acknowledged"], "legacy has been unread since V40");
}

#[test]
fn corruption_recipes_damage_every_kind_of_column_and_every_breaking_row_is_counted() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("m");
    std::fs::create_dir(&mig).unwrap();
    let dir = mig.to_str().unwrap();
    write(
        &mig,
        "V1__people.sql",
        "CREATE TABLE people (id bigint PRIMARY KEY, code text NOT NULL, nick text, born date,
           email text, handle varchar(10) UNIQUE);
         INSERT INTO people SELECT g, 'P' || lpad(g::text, 6, '0'), 'n' || g,
           date '1950-01-01' + (g % 20000), 'p' || g || '@example.com', 'h' || g
         FROM generate_series(1, 4000) g;\n",
    );
    d.run(&["migrate", "migrate", "--branch", "main", "--dir", dir]);
    // One case per recipe family: the migration that the damage breaks, and the rows counted.
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "people.born:5@out-of-range-date",
            "ALTER TABLE people ADD CONSTRAINT born_sane CHECK (born BETWEEN '1900-01-01' AND '2100-01-01');\n",
            "23514",
            &["out-of-range-date"],
        ),
        (
            "people.nick:5@null",
            "ALTER TABLE people ALTER COLUMN nick SET NOT NULL;\n",
            "23502",
            &["null"],
        ),
        (
            "people.code:5@wrong-case,overlong-string",
            "ALTER TABLE people ADD CONSTRAINT code_ok CHECK (code = upper(code) AND length(code) <= 10);\n",
            "23514",
            &["overlong-string", "wrong-case"],
        ),
        (
            "people.code:5@trailing-blank,embedded-space",
            "UPDATE people SET id = id WHERE (substr(code, 2))::int > 0;\n",
            "22P02",
            &["embedded-space"],
        ),
    ];
    for (spec, sql, state, recipes) in cases {
        write(&mig, "V2__change.sql", sql);
        let r = failed_rehearsal(&d, dir, &["--corrupt", spec, "--rows", "3"]);
        let damaged = r["corrupted"][0]["rows"].as_u64().unwrap();
        assert!((100..=300).contains(&damaged), "about 5% of 4,000: {r}");
        let step = &r["migrations"][0];
        assert_eq!(step["failed"]["sqlstate"], *state, "{spec}: {r:#}");
        let by = step["breaking_by_recipe"].as_object().unwrap();
        let names: Vec<&String> = by.keys().collect();
        assert_eq!(
            names, *recipes,
            "{spec}: grouped by the recipes that break it: {r:#}"
        );
        let count = step["failed"]["breaking"]["count"].as_u64().unwrap();
        assert_eq!(by.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), count);
        if recipes.len() == r["corrupted"][0]["recipes"].as_object().unwrap().len() {
            assert_eq!(count, damaged, "{spec}: every damaged row breaks it: {r:#}");
        } else {
            // A trailing blank is one a cast forgives: only the embedded spaces break it.
            assert_eq!(
                count,
                r["corrupted"][0]["recipes"]["embedded-space"]
                    .as_u64()
                    .unwrap()
            );
        }
        assert_eq!(
            step["failed"]["breaking"]["sample"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
    // Duplicates where no constraint stops them, then the unique index that needs them gone.
    write(
        &mig,
        "V2__change.sql",
        "CREATE UNIQUE INDEX people_email ON people (email);\n",
    );
    let r = failed_rehearsal(&d, dir, &["--corrupt", "people.email:2@duplicate-key"]);
    assert_eq!(r["migrations"][0]["failed"]["sqlstate"], "23505", "{r:#}");
    // Damage Postgres itself would stop is refused by name, before anything runs.
    for (spec, want) in [
        ("people.code@null", "NOT NULL"),
        ("people.handle@duplicate-key", "unique index"),
        (
            "people.handle@overlong-string",
            "character varying(10) already refuses",
        ),
        ("people.born@missing-digit", "needs a text column"),
        ("people.nosuch@null", "no column nosuch"),
    ] {
        let (ok, _, err) = try_run(
            &d,
            &[
                "migrate",
                "rehearse",
                "--branch",
                "main",
                "--dir",
                dir,
                "--corrupt",
                spec,
            ],
        );
        assert!(!ok && err.contains(want), "{spec}: {err}");
    }
    let branches = d.run(&["branch", "list"]);
    assert!(!branches.contains("rehearse-"), "{branches}");
}
