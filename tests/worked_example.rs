//! ../shared/PRACTICES.md's worked example, end to end through the CLI, on a real daemon:
//! split `inventory_code` with `lakelet refactor split-column`; corrupt about 1% of the codes
//! with two recipes on a throwaway branch and see every row that breaks the generated
//! backfill, grouped by recipe; fix the expression and rehearse green; run an experiment of
//! the columns design against an `inventory_attributes` design on the same read workload and
//! record the decision; contract after the (test-shortened) transition. The figures, the
//! files written, the audit rows, and that nothing is left behind are asserted.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::project::Project;
use common::Daemon;

const INVENTORY: &str = "\
CREATE TABLE inventory (id bigint PRIMARY KEY, inventory_code text NOT NULL, qty int);
INSERT INTO inventory
  SELECT g, 'WH' || lpad((g % 40)::text, 2, '0') || '-' || lpad((g % 997)::text, 5, '0')
            || '-' || lpad(g::text, 6, '0'), g % 100
  FROM generate_series(1, 10000) g;
";

const USING: &str =
    "substr(inventory_code, 1, 4), substr(inventory_code, 6, 5)::int, substr(inventory_code, 12)::int";

/// The common read path, as each design answers it.
const COLUMNS: &str = "\
SET lock_timeout = '5s';
CREATE INDEX IF NOT EXISTS inventory_location_batch ON inventory (location_code, batch_number);
CREATE OR REPLACE FUNCTION inventory_at(loc text, batch int) RETURNS SETOF inventory
  LANGUAGE sql STABLE AS $$ SELECT * FROM inventory WHERE location_code = loc AND batch_number = batch $$;
";
const LOOKUP: &str = "\
SET lock_timeout = '5s';
CREATE TABLE IF NOT EXISTS inventory_attributes (
  inventory_id bigint NOT NULL REFERENCES inventory (id), name text NOT NULL, value text NOT NULL,
  PRIMARY KEY (inventory_id, name));
INSERT INTO inventory_attributes
  SELECT id, 'location', location_code FROM inventory WHERE location_code IS NOT NULL
  UNION ALL SELECT id, 'batch', batch_number::text FROM inventory WHERE batch_number IS NOT NULL
  ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS inventory_attributes_value ON inventory_attributes (name, value);
CREATE OR REPLACE FUNCTION inventory_at(loc text, batch int) RETURNS SETOF inventory
  LANGUAGE sql STABLE AS $$
    SELECT i.* FROM inventory i
      JOIN inventory_attributes l ON l.inventory_id = i.id AND l.name = 'location' AND l.value = loc
      JOIN inventory_attributes b ON b.inventory_id = i.id AND b.name = 'batch' AND b.value = batch::text $$;
";
const READS: &str = "\
-- lakelet:weight 8
SELECT count(*) FROM inventory_at('WH' || lpad((random() * 39)::int::text, 2, '0'), (random() * 996)::int);
-- lakelet:weight 2
SELECT sum(qty) FROM inventory_at('WH07', 7);
";

#[test]
fn the_inventory_service_splits_a_column_end_to_end() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let p = Project::new(&d, tmp.path(), "inventory-service");
    p.write("migrations/V86__inventory.sql", INVENTORY);
    p.json(&["migrate", "migrate", "--branch", "main"]);

    // 1. The refactoring: expand migrations written, the contract staged, the transition
    //    recorded.
    let split = p.json(&[
        "refactor",
        "split-column",
        "inventory.inventory_code",
        "--branch",
        "main",
        "--into",
        "location_code,batch_number,serial_number",
        "--using",
        USING,
        "--id",
        "split_inventory_code",
        "--transition",
        "20s",
    ]);
    assert_eq!(
        split["files"],
        serde_json::json!([
            "V87__split_inventory_code_expand.sql",
            "V88__split_inventory_code_backfill.sql"
        ])
    );
    let expand = p.read("migrations/V87__split_inventory_code_expand.sql");
    assert!(
        expand.contains("ADD COLUMN IF NOT EXISTS location_code text"),
        "{expand}"
    );
    assert!(
        expand.contains("batch_number integer"),
        "types from the expressions: {expand}"
    );
    assert!(p
        .read("migrations/V88__split_inventory_code_backfill.sql")
        .starts_with("-- lakelet:no-transaction"));
    let contract = p.read(".lakebase/transitions/split_inventory_code.contract.sql");
    assert!(
        contract.contains("DROP COLUMN IF EXISTS inventory_code"),
        "{contract}"
    );
    let status = p.json(&["refactor", "status"]);
    assert_eq!(status[0]["transition"]["state"], "expanding");
    assert_eq!(status[0]["due"], false);
    // Before its date the contract is refused.
    let (_, e) = p.json_failing(&[
        "refactor",
        "contract",
        "split_inventory_code",
        "--branch",
        "main",
    ]);
    assert!(e.contains("may not run before"), "{e}");

    // 2. Destructive test: about 1% of the codes damaged by two recipes on a throwaway branch.
    //    Every damaged row breaks the substring arithmetic of the backfill, and each is
    //    counted, grouped by the recipe that broke it.
    let corrupt = "inventory.inventory_code:1@missing-digit,embedded-space";
    let (r, _) = p.json_failing(&[
        "migrate",
        "rehearse",
        "--branch",
        "main",
        "--corrupt",
        corrupt,
        "--seed",
        "7",
        "--rows",
        "5",
    ]);
    let damaged = &r["corrupted"][0];
    let rows = damaged["rows"].as_u64().unwrap();
    assert!((50..=200).contains(&rows), "about 1% of 10,000: {r:#}");
    let by_damage = &damaged["recipes"];
    assert!(
        by_damage["missing-digit"].as_u64().unwrap() > 0
            && by_damage["embedded-space"].as_u64().unwrap() > 0,
        "{r:#}"
    );
    let failed = r["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| !m["failed"].is_null())
        .unwrap();
    assert_eq!(
        failed["script"], "V88__split_inventory_code_backfill.sql",
        "{r:#}"
    );
    assert_eq!(failed["failed"]["sqlstate"], "22P02");
    let breaking = &failed["failed"]["breaking"];
    assert_eq!(
        breaking["count"].as_u64().unwrap(),
        rows,
        "every damaged row breaks it, and every one is counted: {r:#}"
    );
    assert_eq!(
        breaking["sample"].as_array().unwrap().len(),
        5,
        "a sample is shown"
    );
    assert_eq!(
        &failed["breaking_by_recipe"], by_damage,
        "grouped by recipe: {r:#}"
    );
    // Reproducible: the same seed damages the same rows the same way.
    let (again, _) = p.json_failing(&[
        "migrate",
        "rehearse",
        "--branch",
        "main",
        "--corrupt",
        corrupt,
        "--seed",
        "7",
        "--rows",
        "5",
    ]);
    assert_eq!(again["corrupted"][0]["recipes"], *by_damage);

    // 3. The fix: parts that are not numbers become NULL instead of failing; rehearsal green.
    let fixed = common::tolerant_split(&expand);
    assert_ne!(fixed, expand);
    p.write("migrations/V87__split_inventory_code_expand.sql", &fixed);
    let r = p.json(&[
        "migrate",
        "rehearse",
        "--branch",
        "main",
        "--corrupt",
        corrupt,
        "--seed",
        "7",
    ]);
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["migrations"].as_array().unwrap().len(), 2);
    p.json(&["migrate", "migrate", "--branch", "main"]);
    assert_eq!(
        d.sql("main", "select location_code || ' ' || batch_number || ' ' || serial_number from inventory where id = 1234"),
        "WH34 237 1234"
    );

    // 4. The experiment: the columns design against an inventory_attributes design, on the
    //    same read workload, side by side; the decision recorded and audited.
    p.write("designs/columns/V100__columns_read_path.sql", COLUMNS);
    p.write("designs/lookup/V100__inventory_attributes.sql", LOOKUP);
    p.write("reads.sql", READS);
    let dec = p.json(&[
        "experiment",
        "--title",
        "Split inventory_code: columns or an inventory_attributes table",
        "--from",
        "main",
        "--design",
        "columns=designs/columns",
        "--design",
        "lookup=designs/lookup",
        "--workload",
        "reads.sql",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--transactions",
        "100",
        "--choose",
        "columns",
        "--reason",
        "One index answers the common read path; the attribute table needs two joins and twice the rows.",
    ]);
    assert_eq!(dec["number"], 1);
    assert_eq!(dec["chosen"], "columns");
    let designs = dec["designs"].as_array().unwrap();
    assert_eq!(designs.len(), 2);
    for f in designs {
        assert_eq!(f["transactions"], 300, "3 measured runs of 100: {f}");
        for k in [
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "throughput_tps",
            "fork_ms",
            "migrate_ms",
        ] {
            assert!(f[k].as_f64().unwrap() > 0.0, "{k}: {f}");
        }
        assert!(
            f["p50_ms"].as_f64() <= f["p95_ms"].as_f64()
                && f["p95_ms"].as_f64() <= f["p99_ms"].as_f64()
        );
        assert_eq!(f["runs_tps"].as_array().unwrap().len(), 3);
        assert_eq!(f["migrations"].as_array().unwrap().len(), 1);
    }
    let lookup = designs.iter().find(|f| f["design"] == "lookup").unwrap();
    let columns = designs.iter().find(|f| f["design"] == "columns").unwrap();
    assert!(
        lookup["tables_bytes"].as_i64() > columns["tables_bytes"].as_i64(),
        "the attribute table costs storage: {dec:#}"
    );
    let md_path = PathBuf::from(dec["markdown"].as_str().unwrap());
    assert_eq!(md_path.parent().unwrap(), p.dir.join("docs/decisions"));
    assert!(md_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("0001-split-inventory-code-columns-or-"));
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(
        md.contains("| columns ✓ |") && md.contains("| lookup |"),
        "{md}"
    );
    assert!(
        md.contains("One index answers the common read path"),
        "{md}"
    );
    assert!(
        md.contains("--never` keeps it"),
        "the kept branch's expiry is said: {md}"
    );
    let js: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(md_path.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(js["chosen"], "columns");
    // The loser is soft-deleted (restorable), the winner kept.
    let kept = dec["kept_branch"].as_str().unwrap().to_string();
    let lost = dec["soft_deleted"][0].as_str().unwrap().to_string();
    let live = d.run(&["branch", "list"]);
    assert!(live.contains(&kept) && !live.contains(&lost), "{live}");
    assert!(d.run(&["branch", "list", "--show-deleted"]).contains(&lost));
    // Audited, with its real outcome.
    let url = d.run(&["connstr", "main", "--database", "lakelet"]);
    let q = "select decision || ' ' || target from audit where action = 'experiment.decide'";
    let o = Command::new("psql")
        .args([url.trim(), "-XAtc", q])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("allowed {kept}")
    );

    // 5. Contract after the transition: once due, the contract migration is written, lints
    //    clean, rehearses green and drops the old column.
    let after = status[0]["transition"]["contract_after"]
        .as_str()
        .unwrap()
        .to_string();
    loop {
        let s = p.json(&["refactor", "status", "--branch", "main"]);
        if s[0]["due"] == true {
            assert_eq!(s[0]["readers"], serde_json::json!([]), "{s}");
            assert_eq!(s[0]["applied"].as_array().unwrap().len(), 2, "{s}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let c = p.json(&[
        "refactor",
        "contract",
        "split_inventory_code",
        "--branch",
        "main",
    ]);
    assert_eq!(
        c["file"], "V89__split_inventory_code_contract.sql",
        "after {after}"
    );
    let lint = p.json(&["migrate", "lint", "--branch", "main"]);
    assert_eq!(lint["unacknowledged"], 0, "{lint:#}");
    assert_eq!(
        p.json(&["migrate", "rehearse", "--branch", "main"])["ok"],
        true
    );
    p.json(&["migrate", "migrate", "--branch", "main"]);
    assert_eq!(
        d.sql("main", "select count(*) from information_schema.columns where table_name = 'inventory' and column_name = 'inventory_code'"),
        "0"
    );
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from inventory where batch_number is not null"
        ),
        "10000"
    );
    let t: serde_json::Value = serde_json::from_str(&p.read(".lakebase/transitions.json")).unwrap();
    assert_eq!(t["transitions"][0]["state"], "contracting");
    assert_eq!(
        t["transitions"][0]["contract_migration"],
        "V89__split_inventory_code_contract.sql"
    );

    // Nothing left behind: main and the kept design's branch; no rehearsal branch.
    let mut names: Vec<String> = d.json(&["branch", "list"])["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["name"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    let mut want = vec!["main".to_string(), kept];
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn experiments_refuse_bad_input_and_choose_by_the_metric() {
    let d = Daemon::up(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let p = Project::new(&d, tmp.path(), "svc");
    p.write(
        "migrations/V1__inventory.sql",
        "CREATE TABLE inventory (id bigint PRIMARY KEY, location_code text, batch_number int, qty int);\n\
         INSERT INTO inventory SELECT g, 'WH' || (g % 40), g % 997, g % 100 FROM generate_series(1, 5000) g;\n",
    );
    p.json(&["migrate", "migrate", "--branch", "main"]);
    p.write("designs/columns/V100__columns_read_path.sql", COLUMNS);
    p.write("designs/lookup/V100__inventory_attributes.sql", LOOKUP);
    p.write("reads.sql", READS);
    let base = [
        "experiment",
        "--title",
        "t",
        "--from",
        "main",
        "--workload",
        "reads.sql",
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--design", "columns=designs/columns"],
            "two or more designs",
        ),
        (
            &[
                "--design",
                "a=designs/columns",
                "--design",
                "a=designs/lookup",
            ],
            "two designs are named",
        ),
        (
            &[
                "--design",
                "columns=designs/columns",
                "--design",
                "b=designs/nosuch",
            ],
            "designs/nosuch",
        ),
        (
            &[
                "--design",
                "columns=designs/columns",
                "--design",
                "lookup=designs/lookup",
                "--choose",
                "other",
            ],
            "names no design",
        ),
        (
            &["--design", "columns", "--design", "lookup=designs/lookup"],
            "NAME=MIGRATIONS_DIR",
        ),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = base.iter().chain(args.iter()).copied().collect();
        let (_, e) = p.json_failing(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // A design whose migration fails: its branch and the others are deleted, no record.
    p.write("designs/broken/V100__broken.sql", "SELECT 1/0;\n");
    let mut a: Vec<&str> = base.to_vec();
    a.extend([
        "--design",
        "columns=designs/columns",
        "--design",
        "broken=designs/broken",
    ]);
    let (_, e) = p.json_failing(&a);
    assert!(
        e.contains("design broken") && e.contains("division by zero"),
        "{e}"
    );
    assert!(!p.dir.join("docs/decisions").exists());
    let live = d.json(&["branch", "list"]);
    assert_eq!(
        live["branches"].as_array().unwrap().len(),
        1,
        "only main: {live}"
    );

    // Chosen by the metric when nobody names one: the attribute table costs more storage.
    let dec = p.json(&[
        "experiment",
        "--title",
        "Storage of the two designs",
        "--from",
        "main",
        "--workload",
        "reads.sql",
        "--design",
        "columns=designs/columns",
        "--design",
        "lookup=designs/lookup",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--transactions",
        "20",
        "--metric",
        "storage",
    ]);
    assert_eq!(dec["chosen"], "columns", "{dec:#}");
    assert_eq!(dec["chosen_by"], "best storage");

    // A pgbench script as the workload: its per-transaction log is read back.
    p.write(
        "bench.sql",
        "\\set b random(0, 996)\nSELECT count(*) FROM inventory_at('WH7', :b);\n",
    );
    let dec = p.json(&[
        "experiment",
        "--title",
        "pgbench",
        "--from",
        "main",
        "--workload",
        "bench.sql",
        "--pgbench",
        "--design",
        "columns=designs/columns",
        "--design",
        "lookup=designs/lookup",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--transactions",
        "25",
    ]);
    assert_eq!(dec["number"], 2);
    for f in dec["designs"].as_array().unwrap() {
        assert_eq!(f["transactions"], 50, "{f}");
        assert!(f["p95_ms"].as_f64().unwrap() > 0.0);
    }
    assert!(dec["workload"].as_str().unwrap().starts_with("pgbench -f"));
}
