//! The team workflow on one daemon, the way a team would run it: a bare origin, three clones
//! (developers alice and bob, the agent robot) and a CI runner's clone, each acting as its
//! own principal. They claim features and open PRs at the same time; CI runs every PR (one
//! red, fixed, green); the CI principal merges them in an order that forces a rebase; staging
//! is promoted to main and rolled back. Then the record is checked: unique PR numbers, a
//! fresh branch for every run, valid state files, an agent that never reached production,
//! refusals that name their rule, nothing lost the workflow did not make, and one SQL query
//! over the audit that tells the story.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::checkout::{git, Checkout};
use common::{lakelet, pg_bindir, Daemon};

const TEAM: &str = r#"
[project]
id = "team"

[tiers.main]
production = true

[tiers.staging]
parent = "main"
mask = true

[features]
from = "staging"
ttl = "1d"
name = ["{principal}-*", "ci-pr-*"]

[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
protect = true
admin = true

[roles.developer]
create_from = ["staging"]
connect = ["own", "staging"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.agent]
create_from = ["staging"]
connect = ["own"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.ci]
create_from = ["staging"]
connect = ["features", "staging"]
migrate = ["features"]
reset = ["features"]
delete = ["features"]
promote = true
audit = true

[masking]
roles = ["developer", "agent"]

[masking.columns]
"public.customers.email" = "email"

[migrations]
dir = "migrations"

[ci]
test = "sh db-test.sh"
approvals = 1
"#;

/// One clone of the project and the principal that works in it.
type Seat = Checkout;

trait Team {
    /// Refused, naming `needle`, with the state file as it was.
    fn refused(&self, args: &[&str], needle: &str) -> String;
    /// Commits everything and pushes the current branch.
    fn commit_push(&self, msg: &str);
}

impl Team for Seat {
    fn refused(&self, args: &[&str], needle: &str) -> String {
        self.refused_keeping(args, needle, || self.state_text())
    }

    fn commit_push(&self, msg: &str) {
        self.commit(msg);
        let b = self.git(&["branch", "--show-current"]);
        self.git(&["push", "-q", "origin", &b]);
    }
}

fn principal(d: &Daemon, name: &str, role: &str) -> String {
    let out = d.run(&["principal", "add", name, "--role", role]);
    out.lines().last().unwrap().trim().to_string()
}

fn clone(tmp: &Path, origin: &Path, d: &Daemon, who: &str, role: &str) -> Seat {
    let dir = tmp.join(who);
    git(
        tmp,
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    git(&dir, &["config", "user.name", who]);
    git(
        &dir,
        &["config", "user.email", &format!("{who}@lakelet.invalid")],
    );
    git(&dir, &["branch", "--track", "staging", "origin/staging"]);
    let seat = Seat {
        who: Some((who.into(), principal(d, who, role))),
        dir,
        data: d.dir.clone(),
    };
    seat.ok(&["init"]);
    seat
}

fn api(d: &Daemon, path: &str) -> serde_json::Value {
    let (status, body) = d.http(&d.api_token(), "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn live(d: &Daemon, name: &str) -> bool {
    d.json(&["branch", "list"])["branches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["branch_id"] == name)
}

/// CI's turn on PR `n`: check out the PR's head as origin has it and run `ci pr`.
fn ci_run(ci: &Seat, n: u64, head: &str) -> Output {
    ci.git(&["fetch", "-q", "origin"]);
    ci.git(&["checkout", "-q", "--detach", &format!("origin/{head}")]);
    ci.cmd(&["--json", "ci", "pr", "--number", &n.to_string()])
}

#[test]
fn a_team_of_developers_an_agent_and_ci_on_one_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("lakelet.toml");
    std::fs::write(&policy, TEAM).unwrap();
    let d = Daemon::up(&["--policy", policy.to_str().unwrap()]);
    d.sql(
        "main",
        "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO customers SELECT g, 'person' || g || '@example.com' FROM generate_series(1, 500) g;
         CREATE TABLE inventory (id int PRIMARY KEY, code text NOT NULL);
         INSERT INTO inventory SELECT g, 'C-' || g FROM generate_series(1, 500) g;",
    );
    // The tables were made as the superuser: hand them to the role migrations run as.
    let out = d.run(&["--json", "branch", "own-schema", "main"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["objects"], 2, "{v}");
    assert_eq!(
        d.sql("main", "select string_agg(distinct pg_get_userbyid(relowner), ',') from pg_class where relname in ('customers', 'inventory')"),
        "lakelet_app"
    );
    d.run(&["branch", "create", "staging", "--from", "main"]);

    // The project, as the platform team sets it up. The state file is each clone's own.
    let origin = tmp.path().join("origin.git");
    git(
        tmp.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["config", "user.name", "platform"]);
    git(&seed, &["config", "user.email", "platform@lakelet.invalid"]);
    git(
        &seed,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    std::fs::write(seed.join("lakelet.toml"), TEAM).unwrap();
    let psql = pg_bindir().join("psql");
    std::fs::write(
        seed.join("db-test.sh"),
        format!(
            "{} \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c 'select count(*) from inventory'\n",
            psql.display()
        ),
    )
    .unwrap();
    let o = lakelet()
        .current_dir(&seed)
        .arg("--data-dir")
        .arg(&d.dir)
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(seed.join(".gitignore"), ".lakebase/\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "scaffold"]);
    git(&seed, &["branch", "staging"]);
    git(&seed, &["push", "-q", "origin", "main", "staging"]);

    let alice = clone(tmp.path(), &origin, &d, "alice", "developer");
    let bob = clone(tmp.path(), &origin, &d, "bob", "developer");
    let robot = clone(tmp.path(), &origin, &d, "robot", "agent");
    let ci = clone(tmp.path(), &origin, &d, "ci-runner", "ci");
    // Bob's checkout says features fork from main (a local edit never applied): the
    // daemon's policy is what the gates hold to.
    bob.write(
        "lakelet.toml",
        &TEAM.replace("from = \"staging\"", "from = \"main\""),
    );
    bob.git(&["commit", "-q", "-am", "local: features from main"]);
    // Alice's A/B experiment, made by hand: no cleanup of the workflow may touch it.
    alice.ok(&["branch", "create", "alice-experiment", "--from", "staging"]);

    // 1. At the same time: claim, write a migration, prepare the PR.
    let work = [
        (
            &alice,
            "add-sku",
            "V2__add_sku.sql",
            "ALTER TABLE inventory ADD COLUMN IF NOT EXISTS sku text;",
        ),
        (
            &bob,
            "add-notes",
            "V2__add_notes.sql",
            "ALTER TABLE inventory ADD COLUMN IF NOT EXISTS notes text;",
        ),
        (
            &robot,
            "add-tags",
            "V3__add_tags.sql",
            "ALTER TABLE inventory ADD COLUMN IF NOT EXISTS tags text[];",
        ),
    ];
    std::thread::scope(|s| {
        for (seat, feature, file, sql) in work {
            s.spawn(move || {
                seat.ok(&["scm", "claim", feature]);
                seat.write(
                    &format!("migrations/{file}"),
                    &format!("SET lock_timeout = '5s';\n{sql}\n"),
                );
                seat.git(&["add", "-A"]);
                seat.git(&["commit", "-q", "-m", feature]);
                seat.ok(&["scm", "prepare-pr"]);
            });
        }
    });
    // Every clone sees the same PRs (here, bob's).
    let prs: serde_json::Value = serde_json::from_str(&bob.ok(&["--json", "scm", "prs"])).unwrap();
    let prs = prs.as_array().unwrap();
    let mut numbers: Vec<u64> = prs.iter().map(|p| p["number"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(
        numbers,
        vec![1, 2, 3],
        "one numbering for every clone: {prs:?}"
    );
    let number = |who: &str| -> u64 {
        prs.iter()
            .find(|p| p["opened_by"] == who)
            .unwrap_or_else(|| panic!("no PR by {who}"))["number"]
            .as_u64()
            .unwrap()
    };
    let (na, nb, nr) = (number("alice"), number("bob"), number("robot"));
    for seat in [&alice, &bob, &robot] {
        assert_eq!(seat.state()["state"], "pr-ready");
        assert_eq!(seat.state()["parent_branch"], "staging");
    }
    // The agent prepared its PR against what it may see of staging (a masked fork), and
    // never connected to staging itself.
    let pr_r = &prs.iter().find(|p| p["opened_by"] == "robot").unwrap();
    assert!(pr_r["diff"].as_str().unwrap().contains("tags"), "{pr_r}");
    assert!(
        !live(&d, "robot-view-add-tags"),
        "the view is the gate's own, and goes"
    );

    // Guardrails beneath the policy: on their own branches a developer and an agent write
    // rows and their own objects, but drop nothing the application schema owns; an agent
    // drops nothing at all, not even through the migration role.
    let psql_as = |seat: &Seat, branch: &str, sql: &str| -> (bool, String) {
        let url = seat.ok(&["connstr", branch]);
        let o = Command::new(&psql)
            .args([url.trim(), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    for (seat, b) in [(&alice, "alice-add-sku"), (&robot, "robot-add-tags")] {
        let (ok, out) = psql_as(seat, b, "DROP TABLE inventory");
        assert!(
            !ok && out.contains("must be owner of table inventory"),
            "{out}"
        );
        let (ok, out) = psql_as(seat, b, "TRUNCATE inventory");
        assert!(
            !ok && out.contains("must be owner") || out.contains("permission denied"),
            "{out}"
        );
        let (ok, out) = psql_as(seat, b, "UPDATE inventory SET code = code WHERE id = 1");
        assert!(ok, "{out}");
    }
    let (ok, out) = psql_as(
        &alice,
        "alice-add-sku",
        "CREATE TABLE scratch (x int); DROP TABLE scratch",
    );
    assert!(ok, "a developer drops what she made: {out}");
    let (ok, out) = psql_as(
        &robot,
        "robot-add-tags",
        "SET ROLE lakelet_app; DROP TABLE inventory",
    );
    assert!(
        !ok && out.contains("an agent never drops anything"),
        "{out}"
    );
    let (ok, out) = psql_as(
        &robot,
        "robot-add-tags",
        "CREATE TABLE scratch (x int); DROP TABLE scratch",
    );
    assert!(
        !ok && out.contains("an agent never drops anything"),
        "{out}"
    );
    assert_eq!(
        d.sql("robot-add-tags", "select count(*) from inventory"),
        "500"
    );

    // 2. CI. Alice's first run is red (her test asks for a column she misspelled).
    alice.git(&["switch", "-q", "feature/add-sku"]);
    alice.write(
        "db-test.sh",
        &format!(
            "{} \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c 'select skus from inventory'\n",
            psql.display()
        ),
    );
    alice.commit_push("test the sku");
    let o = ci_run(&ci, na, "feature/add-sku");
    assert!(!o.status.success(), "alice's first run is red");
    alice.refused(&["scm", "wait-ci"], "CI is red");
    alice.write(
        "db-test.sh",
        &format!(
            "{} \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c 'select sku from inventory'\n",
            psql.display()
        ),
    );
    alice.commit_push("fix the test");
    assert!(ci_run(&ci, na, "feature/add-sku").status.success());
    assert!(ci_run(&ci, nb, "feature/add-notes").status.success());
    assert!(ci_run(&ci, nr, "feature/add-tags").status.success());
    for seat in [&alice, &bob, &robot] {
        seat.ok(&["scm", "wait-ci"]);
        assert_eq!(seat.state()["state"], "ci-green");
    }

    // 3. Only a principal that may merge merges; the others are told whom to hand to.
    alice.refused(&["scm", "merge"], "roles.developer.promote");
    let err = robot.refused(&["scm", "merge"], "agents-never-promote");
    assert!(
        err.contains(&format!("lakelet ci merge --number {nr}")),
        "{err}"
    );
    robot.refused(
        &["ci", "merge", "--number", &nr.to_string()],
        "agents-never-promote",
    );
    let o = robot.cmd(&["branch", "create", "robot-prod", "--from", "main"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("agents-never-production"));

    // 4. A PR needs a person's approval of its head, and not its author's.
    let a = na.to_string();
    let err =
        String::from_utf8_lossy(&ci.cmd(&["ci", "merge", "--number", &a]).stderr).into_owned();
    assert!(
        err.contains("has 0 approval(s)") && err.contains("[ci] approvals asks for 1"),
        "{err}"
    );
    alice.refused(&["scm", "approve", &a], "someone else's review");
    robot.refused(&["scm", "approve", &a], "a person's review");
    bob.ok(&["scm", "approve", &a]);
    // CI merges alice's PR: staging migrated, git merged and pushed, the PR marked.
    ci.ok(&["ci", "merge", "--number", &a]);
    alice.ok(&["scm", "merge"]);
    assert_eq!(alice.state()["state"], "merged");
    assert!(d.sql("staging", "select string_agg(column_name, ',') from information_schema.columns where table_name = 'inventory'").contains("sku"));
    assert!(git(&origin, &["log", "--oneline", "staging"]).contains(&format!("(#{na})")));

    // Robot's run tested staging before alice's merge: stale, and refused until it is
    // brought up to date and tested again.
    let n = nr.to_string();
    let err =
        String::from_utf8_lossy(&ci.cmd(&["ci", "merge", "--number", &n]).stderr).into_owned();
    assert!(err.contains("'staging' moved since"), "{err}");
    robot.git(&["fetch", "-q", "origin"]);
    robot.git(&["merge", "-q", "--no-edit", "origin/staging"]);
    robot.git(&["push", "-q", "origin", "feature/add-tags"]);
    assert!(ci_run(&ci, nr, "feature/add-tags").status.success());
    alice.ok(&["scm", "approve", &n]);
    ci.ok(&["ci", "merge", "--number", &n]);
    robot.ok(&["scm", "merge"]);
    assert_eq!(robot.state()["state"], "merged");

    // Bob's V2 collides with alice's V2 once he takes staging: red, renamed, green, merged.
    bob.git(&["fetch", "-q", "origin"]);
    bob.git(&["merge", "-q", "--no-edit", "origin/staging"]);
    bob.git(&["push", "-q", "origin", "feature/add-notes"]);
    assert!(!ci_run(&ci, nb, "feature/add-notes").status.success());
    bob.git(&[
        "mv",
        "migrations/V2__add_notes.sql",
        "migrations/V4__add_notes.sql",
    ]);
    bob.commit_push("renumber after the rebase");
    assert!(ci_run(&ci, nb, "feature/add-notes").status.success());
    alice.ok(&["scm", "approve", &nb.to_string()]);
    ci.ok(&["ci", "merge", "--number", &nb.to_string()]);
    bob.ok(&["scm", "merge"]);
    let cols = d.sql("staging", "select string_agg(column_name, ',' order by column_name) from information_schema.columns where table_name = 'inventory'");
    assert_eq!(cols, "code,id,notes,sku,tags");

    // 5. CI promotes staging into main; then rolls main back.
    ci.git(&["checkout", "-q", "--detach", "origin/staging"]);
    ci.ok(&["promote", "staging"]);
    assert!(d.sql("main", "select string_agg(column_name, ',') from information_schema.columns where table_name = 'inventory'").contains("notes"));
    // Production took a write after the promotion: the rollback would drop it, so it is
    // refused, naming the table, until told to discard it; then a backup keeps it.
    d.sql(
        "main",
        "INSERT INTO customers VALUES (501, 'late@example.com')",
    );
    let err = String::from_utf8_lossy(&ci.cmd(&["rollback", "main"]).stderr).into_owned();
    assert!(
        err.contains("took writes after")
            && err.contains("postgres.public.customers: 500 rows then, 501 now"),
        "{err}"
    );
    let inventory = "select string_agg(column_name, ',') from information_schema.columns where table_name = 'inventory'";
    assert!(d.sql("main", inventory).contains("notes"));
    let out = ci.ok(&["--json", "rollback", "main", "--discard-writes-since"]);
    let rb: serde_json::Value = serde_json::from_str(&out).unwrap();
    let backup = rb["backup"].as_str().unwrap().to_string();
    assert!(!d.sql("main", inventory).contains("notes"));
    assert_eq!(d.sql("main", "select count(*) from customers"), "500");
    d.run(&["branch", "create", "owner-kept-writes", "--from", &backup]);
    assert_eq!(
        d.sql(
            "owner-kept-writes",
            "select email from customers where id = 501"
        ),
        "late@example.com"
    );

    // The record. PRs: unique, all merged by CI.
    for p in api(&d, "/lakelet/v1/prs").as_array().unwrap() {
        assert_eq!(p["state"], "merged", "{p}");
        assert_eq!(p["closed_by"], "ci-runner", "{p}");
    }
    // Runs: every CI run forked its own branch, named for its PR.
    let mut branches = vec![];
    for n in [na, nb, nr] {
        for r in api(&d, &format!("/lakelet/v1/prs/{n}/runs"))
            .as_array()
            .unwrap()
        {
            assert_eq!(r["by"], "ci-runner", "{r}");
            if r["kind"] == "ci" {
                let b = r["branch"].as_str().unwrap().to_string();
                assert!(b.starts_with(&format!("ci-pr-{n}-")), "{r}");
                branches.push(b);
            }
        }
    }
    let mut unique = branches.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        branches.len(),
        "a run branch was reused: {branches:?}"
    );
    assert_eq!(branches.len(), 7, "{branches:?}");
    // Nothing lost: alice's experiment is live; what the workflow deleted was soft.
    assert!(live(&d, "alice-experiment"));
    for b in &branches {
        assert!(!live(&d, b), "{b} outlived its PR");
    }
    d.run(&["branch", "undelete", "alice-add-sku"]);
    // State files: valid, every feature merged.
    for seat in [&alice, &bob, &robot] {
        assert_eq!(seat.state()["state"], "merged");
    }

    // The audit trail tells the story in one query.
    let url = d.run(&["connstr", "main", "--database", "lakelet"]);
    let q = "select string_agg(principal || ' ' || action || ' ' || decision, E'\\n' order by seq) \
             from audit where action like 'pr.%' or action like 'scm.%merge' or action in ('promote.apply', 'rollback')";
    let o = Command::new(&psql)
        .args([url.trim(), "-XAtc", q])
        .output()
        .unwrap();
    let story = String::from_utf8_lossy(&o.stdout).into_owned();
    for line in [
        "alice pr.open allowed",
        "bob pr.open allowed",
        "robot pr.open allowed",
        "ci-runner pr.run allowed",
        "bob pr.approve allowed",
        "alice pr.approve allowed",
        "ci-runner pr.merge allowed",
        "alice scm.merge refused",
        "robot scm.merge refused",
        "alice scm.record-merge allowed",
        "robot scm.record-merge allowed",
        "bob scm.record-merge allowed",
        "ci-runner promote.apply allowed",
        "ci-runner rollback allowed",
    ] {
        assert!(story.contains(line), "{line:?} not in the story:\n{story}");
    }
    // The rollback that would have dropped production's late write: allowed by the policy,
    // failed by the check, and audited with that outcome.
    let q = "select count(*) from audit where action = 'rollback' and decision = 'allowed' and result like '%took writes after%'";
    let o = Command::new(&psql)
        .args([url.trim(), "-XAtc", q])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    // The agent never touched main (every decision about main for it was a refusal).
    let q = "select count(*) from audit where principal = 'robot' and target = 'main' and decision = 'allowed'";
    let o = Command::new(&psql)
        .args([url.trim(), "-XAtc", q])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
}
