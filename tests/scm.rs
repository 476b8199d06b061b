//! The SCM gate engine end to end: a temporary git repository (with a bare `origin`), a real
//! daemon, the worked example (claim, Split Column, prepare-pr, CI red then green, merge,
//! promote, rollback), and every gate refused out of order, on a hand-edited or corrupted
//! state file, on red CI and on the wrong tier, each leaving everything as it was.

mod common;

use std::path::Path;
use std::process::Command;

use common::checkout::{git, Checkout};
use common::{lakelet, pg_bindir, Daemon};

const POLICY: &str = r#"
[project]
id = "inventory"

[tiers.main]
production = true

[tiers.staging]
parent = "main"

[features]
from = "staging"
ttl = "1d"

[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
protect = true
admin = true

[migrations]
dir = "migrations"

[ci]
test = "sh db-test.sh"
"#;

/// V1: the Split Column refactoring's first step: add the parts, backfill, keep them in
/// sync with `inventory_code` during the transition.
const SPLIT: &str = "
-- applied by ${flyway:user} (a built-in placeholder: prepare-pr must know it)
SET lock_timeout = '5s';
ALTER TABLE inventory ADD COLUMN IF NOT EXISTS location_code text,
                      ADD COLUMN IF NOT EXISTS batch_number int,
                      ADD COLUMN IF NOT EXISTS serial_number int;
UPDATE inventory SET location_code = split_part(inventory_code, '-', 1),
                     batch_number = split_part(inventory_code, '-', 2)::int,
                     serial_number = split_part(inventory_code, '-', 3)::int
 WHERE location_code IS NULL;
CREATE OR REPLACE FUNCTION inventory_split() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.location_code := split_part(NEW.inventory_code, '-', 1);
  NEW.batch_number := split_part(NEW.inventory_code, '-', 2)::int;
  NEW.serial_number := split_part(NEW.inventory_code, '-', 3)::int;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS inventory_split ON inventory;
CREATE TRIGGER inventory_split BEFORE INSERT OR UPDATE OF inventory_code ON inventory
  FOR EACH ROW EXECUTE FUNCTION inventory_split();
";

/// The owner's checkout, and what a refused gate must leave as it was.
type Repo = Checkout;

trait Gates {
    /// A gate that must be refused: non-zero, `needle` in its message, and the state file,
    /// git's branches and HEAD, and the database branches exactly as before.
    fn refused(&self, d: &Daemon, args: &[&str], needle: &str) -> String;
}

impl Gates for Repo {
    fn refused(&self, d: &Daemon, args: &[&str], needle: &str) -> String {
        self.refused_keeping(args, needle, || snapshot(self, d))
    }
}

fn snapshot(r: &Repo, d: &Daemon) -> (String, String, String, Vec<String>) {
    let list = d.json(&["branch", "list"]);
    let branches: Vec<String> = list["branches"]
        .as_array()
        .unwrap()
        .iter()
        .chain(list["snapshots"].as_array().unwrap())
        .map(|b| format!("{} {}", b["name"].as_str().unwrap(), b["uid"]))
        .collect();
    (
        r.state_text(),
        r.git(&["for-each-ref", "--format=%(refname) %(objectname)"]),
        r.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        branches,
    )
}

/// A repository whose own config names a committer: `scm merge` commits, and a fresh CI
/// machine has no global git identity.
fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "lakelet test"]);
    git(dir, &["config", "user.email", "test@lakelet.invalid"]);
}

/// `lakelet init` with no daemon at hand (a data directory where none runs): the files only.
fn scaffold_only(dir: &Path) {
    let none = dir.parent().unwrap().join("no-daemon-here");
    let o = lakelet()
        .current_dir(dir)
        .arg("--data-dir")
        .arg(&none)
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no lakelet daemon runs"));
}

fn has_branch(d: &Daemon, name: &str) -> bool {
    d.json(&["branch", "list"])["branches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["branch_id"] == name)
}

fn columns(d: &Daemon, branch: &str) -> String {
    d.sql(
        branch,
        "select string_agg(column_name, ',' order by column_name) from information_schema.columns where table_name = 'inventory'",
    )
}

#[test]
fn the_worked_example_through_every_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let d = Daemon::up(&["--policy", policy.to_str().unwrap()]);
    d.sql(
        "main",
        "CREATE TABLE inventory (id int PRIMARY KEY, inventory_code text NOT NULL);
         INSERT INTO inventory SELECT g, 'L' || (g % 17) || '-' || (g % 300) || '-' || g
           FROM generate_series(1, 2000) g;",
    );
    let repo = Repo::owner(tmp.path().join("repo"), d.dir.clone());
    let origin = tmp.path().join("origin.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", origin.to_str().unwrap()],
    );
    std::fs::create_dir_all(&repo.dir).unwrap();
    init_repo(&repo.dir);
    git(
        &repo.dir,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    repo.write("lakelet.toml", POLICY);
    let psql = pg_bindir().join("psql");
    repo.write(
        "db-test.sh",
        &format!("{} \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c 'select serial_no from inventory limit 1'\n", psql.display()),
    );

    // init keeps our lakelet.toml and scaffolds the rest; the tiers come from doctor --fix.
    let out = repo.ok(&["init"]);
    assert!(
        out.contains("kept") && out.contains("scaffold-complete"),
        "{out}"
    );
    let s = repo.state();
    assert_eq!(s["state"], "scaffold-complete");
    assert_eq!(s["tier_topology"], 2);
    assert_eq!(s["project_id"], "inventory");
    for f in [
        ".github/workflows/pr.yml",
        ".github/workflows/merge.yml",
        ".github/workflows/cleanup-orphans.yml",
    ] {
        assert!(repo.dir.join(f).is_file(), "{f}");
    }
    assert!(repo.dir.join("migrations").is_dir());
    // With the daemon running, init made the missing tier; the entry tier's git branch
    // waits for a first commit.
    assert!(out.contains("created 'staging' from 'main'"), "{out}");
    assert!(out.contains("`git branch staging`"), "{out}");
    assert!(has_branch(&d, "staging"));
    repo.write(".gitignore", ".lakebase/\n");
    repo.commit("scaffold");
    git(&repo.dir, &["branch", "staging"]);
    repo.ok(&["scm", "doctor", "--fix"]);
    git(&repo.dir, &["push", "-q", "origin", "main", "staging"]);

    // A teammate's fresh clone has origin's tiers as remote-tracking branches only: claim
    // says how to track the entry tier rather than to make a new one.
    let clone2 = Repo::owner(tmp.path().join("clone2"), d.dir.clone());
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "-b",
            "main",
            origin.to_str().unwrap(),
            clone2.dir.to_str().unwrap(),
        ],
    );
    scaffold_only(&clone2.dir);
    clone2.refused(
        &d,
        &["scm", "claim", "other"],
        "`git branch --track staging origin/staging`",
    );
    // Against the daemon, init makes that branch itself.
    let out = clone2.ok(&["init"]);
    assert!(
        out.contains("git branch 'staging' tracks origin/staging"),
        "{out}"
    );

    // Out of order, and the wrong tier.
    repo.refused(&d, &["scm", "prepare-pr"], "needs feature-claimed");
    repo.refused(&d, &["scm", "wait-ci", "--local"], "needs pr-ready");
    repo.refused(&d, &["scm", "merge"], "needs ci-green");
    repo.refused(&d, &["scm", "abandon"], "no feature in flight");
    repo.refused(
        &d,
        &["scm", "claim", "split-inventory", "--parent", "main"],
        "entry tier 'staging'",
    );
    repo.refused(&d, &["scm", "claim", "Split_Inventory"], "is invalid");

    // 1. Claim: a git branch and a database branch forked from staging, paired.
    repo.ok(&["scm", "claim", "split-inventory"]);
    let claimed = repo.state();
    assert_eq!(claimed["state"], "feature-claimed");
    assert_eq!(claimed["branch"], "feature/split-inventory");
    assert_eq!(claimed["parent_branch"], "staging");
    let feature = "owner-split-inventory";
    let b = d.json(&["branch", "get", feature]);
    assert_eq!(b["uid"], claimed["lakebase_branch_uid"]);
    assert_eq!(
        git(&repo.dir, &["branch", "--show-current"]),
        "feature/split-inventory"
    );
    repo.refused(&d, &["scm", "claim", "other"], "in flight");
    repo.refused(&d, &["scm", "wait-ci", "--local"], "needs pr-ready");
    repo.refused(&d, &["scm", "merge"], "needs ci-green");

    // 2. The migration; uncommitted, it cannot reach a PR.
    repo.write("migrations/V1__split_inventory_code.sql", SPLIT);
    repo.refused(&d, &["scm", "prepare-pr"], "uncommitted changes");
    repo.commit("V1: split inventory_code");

    // Hand edits and corruption block the gate and are left for the user to fix.
    let state_path = repo.dir.join(".lakebase/workflow-state.json");
    let good = std::fs::read_to_string(&state_path).unwrap();
    for (bad, needle) in [
        (
            good.replace(
                claimed["lakebase_branch_uid"].as_str().unwrap(),
                "br-0000000000000000",
            ),
            "uid",
        ),
        (good.replace("\"staging\"", "\"main\""), "wrong tier"),
        (
            good.replace("\"feature-claimed\"", "\"pr-ready\""),
            "pr_url",
        ),
        (good.replace("\"version\": 1", "\"version\": 2"), "version"),
        (
            good.replace("\"claimed_at\"", "\"claimed_by\""),
            "claimed_by",
        ),
        (good[..good.len() / 2].to_string(), "not JSON"),
    ] {
        std::fs::write(&state_path, &bad).unwrap();
        repo.refused(&d, &["scm", "prepare-pr"], needle);
        assert_eq!(std::fs::read_to_string(&state_path).unwrap(), bad);
    }
    std::fs::write(&state_path, &good).unwrap();

    // A migration that cannot run as written is refused before anything is rehearsed.
    repo.write(
        "migrations/V2__typo.sql",
        "select '${no_such_placeholder}';\n",
    );
    repo.commit("V2: a typo");
    repo.refused(&d, &["scm", "prepare-pr"], "no_such_placeholder");
    git(&repo.dir, &["reset", "-q", "--hard", "HEAD~1"]);

    // 3. prepare-pr: validated, rehearsed, diffed, pushed.
    let out = repo.ok(&["scm", "prepare-pr"]);
    assert!(out.contains("pull request #1"), "{out}");
    let ready = repo.state();
    assert_eq!(ready["state"], "pr-ready");
    let diff = std::fs::read_to_string(repo.dir.join(".lakebase/schema-diff.md")).unwrap();
    assert!(
        diff.contains("location_code") && diff.contains("serial_number"),
        "{diff}"
    );
    let head = git(&repo.dir, &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&origin, &["rev-parse", "feature/split-inventory"]),
        head
    );
    assert!(!has_branch(&d, "ci-pr-1-1"));
    repo.refused(&d, &["scm", "merge"], "needs ci-green");
    repo.refused(&d, &["scm", "prepare-pr"], "needs feature-claimed");
    repo.refused(&d, &["scm", "wait-ci"], "no CI run has tested HEAD");

    // 4. CI, red: the test asks for a column the migration does not make.
    // The run itself happens (and keeps its branch for diagnosis); the gate changes nothing.
    let o = repo.cmd(&["scm", "wait-ci", "--local"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("CI is red") && err.contains("test:"),
        "{err}"
    );
    assert_eq!(repo.state(), ready);
    assert!(
        has_branch(&d, "ci-pr-1-1"),
        "the red run keeps its branch for diagnosis"
    );
    // A red run is recorded, so waiting again without a new commit is red again.
    repo.refused(&d, &["scm", "wait-ci"], "CI is red");

    // Fixed, committed, but not pushed: CI would test something origin does not have.
    repo.write(
        "db-test.sh",
        &format!("{} \"$DATABASE_URL\" -XAtq -v ON_ERROR_STOP=1 -c 'select location_code, batch_number, serial_number from inventory limit 1'\n", psql.display()),
    );
    repo.commit("test the split columns");
    repo.refused(&d, &["scm", "wait-ci", "--local"], "git push");
    git(
        &repo.dir,
        &["push", "-q", "origin", "feature/split-inventory"],
    );

    // 5. CI green for HEAD.
    repo.ok(&["scm", "wait-ci", "--local"]);
    let green = repo.state();
    assert_eq!(green["state"], "ci-green");
    // The run is the daemon's record, at the URL the state file carries.
    let run_url = green["ci_run_url"].as_str().unwrap();
    let path = &run_url[run_url.find("/lakelet/v1").unwrap()..];
    let (status, body) = d.http(&d.api_token(), "GET", path, None);
    assert_eq!(status, 200, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["conclusion"], "success");
    assert_eq!(run["branch"], "ci-pr-1-2", "every run forks its own branch");
    assert_eq!(run["by"], "owner");
    assert_eq!(run["sha"], git(&repo.dir, &["rev-parse", "HEAD"]));
    let comment = std::fs::read_to_string(run["comment"].as_str().unwrap()).unwrap();
    assert!(comment.contains("location_code"), "{comment}");
    assert!(columns(&d, "ci-pr-1-2").contains("serial_number"));
    assert!(
        !has_branch(&d, "ci-pr-1-1"),
        "the red run's branch is soft-deleted when the next run forks its own"
    );
    assert!(!columns(&d, "staging").contains("serial_number"));

    // A new commit after green: merge is refused until CI is green for it.
    repo.write("README", "inventory service\n");
    repo.commit("readme");
    git(
        &repo.dir,
        &["push", "-q", "origin", "feature/split-inventory"],
    );
    repo.refused(&d, &["scm", "merge"], "CI was green for");
    git(&repo.dir, &["reset", "-q", "--hard", "HEAD~1"]);
    git(
        &repo.dir,
        &["push", "-q", "-f", "origin", "feature/split-inventory"],
    );

    // 6. Merge: staging migrated behind a snapshot, git merged and pushed, branches deleted.
    repo.ok(&["scm", "merge"]);
    let merged = repo.state();
    assert_eq!(merged["state"], "merged");
    assert!(merged["merged_at"].is_string() && merged["migrate_run_url"].is_string());
    assert!(columns(&d, "staging").contains("serial_number"));
    assert_eq!(
        d.sql(
            "staging",
            "select count(*) from inventory where serial_number is null"
        ),
        "0"
    );
    assert!(!columns(&d, "main").contains("serial_number"));
    assert!(!has_branch(&d, "ci-pr-1-2") && !has_branch(&d, feature));
    // Soft-deleted, not purged: a merge deletes nothing for good.
    d.run(&["branch", "undelete", feature]);
    d.run(&["branch", "delete", feature]);
    let snaps = d.json(&["branch", "list"])["snapshots"].clone();
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["snapshot_id"]
                .as_str()
                .unwrap()
                .starts_with("staging-pre-merge-pr-1-")
        })
        .unwrap_or_else(|| panic!("the merge snapshot is kept for a while: {snaps}"));
    assert!(
        snap["status"]["expire_time"].is_string(),
        "and expires ([ci] snapshot_ttl): {snap}"
    );
    assert_eq!(git(&repo.dir, &["branch", "--show-current"]), "staging");
    assert_eq!(
        git(&origin, &["rev-parse", "staging"]),
        git(&repo.dir, &["rev-parse", "staging"])
    );
    repo.refused(&d, &["scm", "merge"], "needs ci-green");

    // 7. Promote staging → main behind a kept snapshot; then roll main back.
    repo.refused(&d, &["promote", "main"], "root tier");
    let out = repo.ok(&["--json", "promote", "staging"]);
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["tier"], "main");
    assert_eq!(p["snapshot_kept"], true);
    assert!(columns(&d, "main").contains("serial_number"));
    repo.refused(&d, &["promote", "staging"], "nothing to promote");
    repo.ok(&["rollback", "main"]);
    assert!(!columns(&d, "main").contains("serial_number"));
    assert_eq!(d.sql("main", "select count(*) from inventory"), "2000");

    // 8. The next feature starts from merged; abandoning it leaves nothing behind.
    repo.ok(&["scm", "claim", "attributes"]);
    assert!(has_branch(&d, "owner-attributes"));
    repo.ok(&["scm", "abandon", "--delete-branch"]);
    assert_eq!(repo.state()["state"], "scaffold-complete");
    assert!(!has_branch(&d, "owner-attributes"));
    assert!(!git(&repo.dir, &["branch"]).contains("feature/attributes"));

    // Every transition, and every refusal, is in the audit trail.
    let audit = d.json(&["audit", "--limit", "1000"]).to_string();
    for a in [
        "scm.claim",
        "scm.prepare-pr",
        "scm.wait-ci",
        "scm.merge",
        "scm.abandon",
        "ci.pr",
        "ci.merge",
        "promote.apply",
        "rollback",
    ] {
        assert!(audit.contains(&format!("\"{a}\"")), "{a} not audited");
    }
    assert!(audit.contains("refused"));
}

/// Orphans: a ci-pr branch whose PR is gone, a feature branch whose git branch is gone.
#[test]
fn orphans_are_found_and_only_orphans_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let d = Daemon::up(&["--policy", policy.to_str().unwrap()]);
    d.run(&["branch", "create", "staging", "--from", "main"]);
    let repo = Repo::owner(tmp.path().join("repo"), d.dir.clone());
    std::fs::create_dir_all(&repo.dir).unwrap();
    init_repo(&repo.dir);
    repo.write("lakelet.toml", POLICY);
    repo.ok(&["init"]);
    repo.write(".gitignore", ".lakebase/\n");
    repo.commit("scaffold");
    git(&repo.dir, &["branch", "staging"]);
    git(&repo.dir, &["branch", "feature/kept"]);
    for b in ["ci-pr-3", "owner-kept", "owner-gone"] {
        d.run(&["branch", "create", b, "--from", "staging", "--ttl", "1h"]);
    }
    // Every run forks its own branch from the base, never one an earlier run left behind.
    repo.write("db-test.sh", "true\n");
    repo.write("migrations/V1__a.sql", "create table a (id int);\n");
    let run = |out: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        assert_eq!(v["conclusion"], "success", "{v}");
        v
    };
    let pr = ["--json", "ci", "pr", "--number", "9", "--base", "staging"];
    assert_eq!(run(&repo.ok(&pr))["branch"], "ci-pr-9-1");
    let second = run(&repo.ok(&pr));
    assert_eq!(second["branch"], "ci-pr-9-2");
    assert!(
        second["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("soft-deleted the earlier runs' ci-pr-9-1"),
        "{second}"
    );
    assert!(!has_branch(&d, "ci-pr-9-1") && has_branch(&d, "ci-pr-9-2"));
    // Cleanup touches only what runs recorded: the hand-made ci-pr-3 stays.
    let out = repo.ok(&[
        "--json",
        "ci",
        "cleanup-orphans",
        "--open-prs",
        "4",
        "--dry-run",
    ]);
    let v: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(v, vec!["ci-pr-9-2"]);
    assert!(has_branch(&d, "ci-pr-9-2"), "a dry run deletes nothing");
    repo.ok(&["ci", "cleanup-orphans", "--open-prs", "4"]);
    assert!(!has_branch(&d, "ci-pr-9-2") && has_branch(&d, "ci-pr-3"));
    d.run(&["branch", "undelete", "ci-pr-9-2"]);
    // owner-gone looks like an orphaned feature, but the workflow never made it (someone's
    // experiment): it is left alone.
    let out = repo.ok(&["--json", "scm", "recover-orphans"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["deleted"], serde_json::json!([]), "{r}");
    assert_eq!(r["left_alone"], serde_json::json!(["owner-gone"]), "{r}");
    assert!(has_branch(&d, "owner-kept") && has_branch(&d, "owner-gone"));
    assert!(has_branch(&d, "staging") && has_branch(&d, "main"));
    let o = repo.cmd(&["ci", "cleanup-orphans", "--open-prs", "x"]);
    assert!(!o.status.success());

    // A merge needs a green run of the head on the tier as it is now: staging moved.
    repo.write("migrations/V2__b.sql", "create table b (id int);\n");
    repo.ok(&["migrate", "migrate", "--branch", "staging"]);
    let o = repo.cmd(&["ci", "merge", "--number", "9", "--base", "staging"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("'staging' moved since"),
        "{err}"
    );
    assert_eq!(run(&repo.ok(&pr))["branch"], "ci-pr-9-3");
    assert_eq!(d.sql("ci-pr-9-3", "select count(*) from b"), "0");
    let o = repo.cmd(&["ci", "pr", "--number", "9", "--base", "main-ish"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a tier"));

    // A failing migration at merge: the tier's snapshot and the run's branch stay, for
    // rollback.
    repo.write(
        "migrations/V3__boom.sql",
        "create table c (id int);\nselect 1/0;\n",
    );
    let o = repo.cmd(&["ci", "merge", "--number", "9", "--base", "staging"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("is kept") && err.contains("lakelet rollback staging"),
        "{err}"
    );
    assert!(has_branch(&d, "ci-pr-9-3"));
    let list = d.json(&["branch", "list"]);
    let snap = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["snapshot_id"].as_str())
        .find(|s| s.starts_with("staging-pre-merge-pr-9-"))
        .expect("the pre-migration snapshot is kept")
        .to_string();
    assert_eq!(
        d.sql(
            "staging",
            "select count(*) from pg_tables where tablename = 'c'"
        ),
        "0"
    );
    let o = repo.cmd(&["rollback", "main", "--to", &snap]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("its own snapshots only"));
    repo.ok(&["rollback", "staging", "--to", &snap]);
    assert_eq!(d.sql("staging", "select count(*) from b"), "0");
    // Still the tier it was: protected, and forked features still name it.
    assert!(d
        .fails(&["branch", "delete", "staging"])
        .contains("protected"));
    std::fs::remove_file(repo.dir.join("migrations/V3__boom.sql")).unwrap();
    assert_eq!(run(&repo.ok(&pr))["branch"], "ci-pr-9-4");

    // A claimed feature that lost both its branches: recover-orphans resets the state.
    std::fs::remove_dir_all(repo.dir.join("migrations")).unwrap();
    repo.commit("tests");
    git(&repo.dir, &["switch", "-q", "staging"]);
    git(&repo.dir, &["merge", "-q", "main"]);
    repo.ok(&["scm", "claim", "lost"]);
    assert_eq!(repo.state()["state"], "feature-claimed");
    d.run(&["branch", "delete", "owner-lost", "--purge"]);
    git(&repo.dir, &["switch", "-q", "staging"]);
    git(&repo.dir, &["branch", "-D", "feature/lost"]);
    repo.refused(&d, &["scm", "prepare-pr"], "is gone");
    let out = repo.ok(&["--json", "scm", "recover-orphans"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["state_reset"], true, "{r}");
    assert_eq!(repo.state()["state"], "scaffold-complete");

    // A feature the workflow made, whose git branch is gone and which the state no longer
    // names: soft-deleted, so it can be brought back.
    repo.ok(&["scm", "claim", "orph"]);
    git(&repo.dir, &["switch", "-q", "staging"]);
    git(&repo.dir, &["branch", "-D", "feature/orph"]);
    std::fs::remove_file(repo.dir.join(".lakebase/workflow-state.json")).unwrap();
    let out = repo.ok(&["--json", "scm", "recover-orphans"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["deleted"], serde_json::json!(["owner-orph"]), "{r}");
    assert!(!has_branch(&d, "owner-orph"));
    d.run(&["branch", "undelete", "owner-orph"]);
    assert!(has_branch(&d, "owner-orph"));
    assert!(has_branch(&d, "owner-gone"), "still left alone");
}

/// The gates hold to the policy the daemon enforces, not to whichever lakelet.toml is checked
/// out: against a daemon with none they say how to load one, and once it is loaded a
/// checkout that says otherwise is overruled.
#[test]
fn the_daemons_policy_is_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::up(&[]);
    let repo = Repo::owner(tmp.path().join("repo"), d.dir.clone());
    std::fs::create_dir_all(&repo.dir).unwrap();
    init_repo(&repo.dir);
    repo.write("lakelet.toml", POLICY);
    // Scaffolded with no daemon at hand: the files only.
    scaffold_only(&repo.dir);
    repo.write(".gitignore", ".lakebase/\n");
    repo.commit("scaffold");
    repo.refused(
        &d,
        &["scm", "claim", "early"],
        "`lakelet policy apply` loads",
    );
    // `lakelet up` then `lakelet init`, the order a newcomer follows, leaves it ready: the
    // policy applied, the tiers made, the entry tier's git branch made.
    let out = repo.ok(&["init"]);
    assert!(out.contains("the daemon now enforces"), "{out}");
    assert!(out.contains("created 'staging' from 'main'"), "{out}");
    assert!(
        out.contains("git branch 'staging' (the entry tier) made at HEAD"),
        "{out}"
    );
    // A local edit says features fork from main; the daemon says staging.
    repo.write(
        "lakelet.toml",
        &POLICY.replace("from = \"staging\"", "from = \"main\""),
    );
    repo.commit("features from main, locally");
    let o = repo.cmd(&["scm", "claim", "truth"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("differs from the policy the daemon enforces")
    );
    assert_eq!(repo.state()["parent_branch"], "staging");
    let b = d.json(&["branch", "get", "owner-truth"]);
    assert!(
        b["status"]["source_branch"]
            .as_str()
            .unwrap()
            .ends_with("/staging"),
        "{b}"
    );
    assert!(
        b["status"]["expire_time"].is_string(),
        "the feature TTL applies: {b}"
    );
}

/// Runs a generated workflow's shell steps here, as GitHub would on a runner with lakelet on
/// PATH and the repository variable LAKELET_TARGET=local: each `run:` with GitHub's
/// expressions filled in from `github`, in order, a step after a failure only when its `if:`
/// says `always()`. Steps that need GitHub itself (`uses:`, the `gh` CLI) are left out.
/// Returns each step's name, whether it passed, and its output.
fn run_workflow(dir: &Path, file: &str, github: &[(&str, &str)]) -> Vec<(String, bool, String)> {
    let text = std::fs::read_to_string(dir.join(".github/workflows").join(file)).unwrap();
    let y: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let fill = |s: &str| -> String {
        let mut out = s.to_string();
        for (k, v) in github {
            out = out.replace(&format!("${{{{ {k} }}}}"), v);
        }
        out
    };
    let bindir = Path::new(env!("CARGO_BIN_EXE_lakelet")).parent().unwrap();
    let path = format!("{}:{}", bindir.display(), std::env::var("PATH").unwrap());
    let mut env: Vec<(String, String)> = y["env"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), String::new()))
        .collect();
    env.push(("LAKELET_TARGET".into(), "local".into()));
    env.push(("LAKELET_PROXY_PORT".into(), "0".into()));
    env.push(("PATH".into(), path));
    let mut out = vec![];
    let mut failed = false;
    for job in y["jobs"].as_object().unwrap().values() {
        for step in job["steps"].as_array().unwrap() {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            let cond = step["if"].as_str().unwrap_or("");
            if run.contains("gh ") || (failed && !cond.contains("always()")) {
                continue;
            }
            if cond.contains("env.LAKELET_TARGET") && !cond.contains("== 'local'") {
                continue;
            }
            let o = Command::new("bash")
                .args(["-e", "-c", &fill(run)])
                .current_dir(dir)
                .env_remove("LAKELET_DATA_DIR")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap();
            failed |= !o.status.success();
            out.push((
                step["name"].as_str().unwrap_or("?").to_string(),
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr),
            ));
        }
    }
    out
}

/// The generated workflows run as written on a runner with no cloud: a PR's run (its own
/// daemon started, the tiers made, the PR's branch migrated and tested, the daemon stopped),
/// then the merge's, which migrates the tier.
#[test]
fn the_generated_workflows_run_here() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::owner(tmp.path().join("repo"), tmp.path().join("unused"));
    std::fs::create_dir_all(&repo.dir).unwrap();
    init_repo(&repo.dir);
    repo.write("lakelet.toml", POLICY);
    repo.write("db-test.sh", "test -n \"$DATABASE_URL\"\n");
    repo.write(
        "migrations/V1__items.sql",
        "SET lock_timeout = '5s';\nCREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY);\n",
    );
    repo.write(".gitignore", ".lakelet/\n.lakebase/\n");
    repo.ok(&["init"]);
    repo.commit("a project");
    let github = [
        ("github.event.pull_request.number", "1"),
        ("github.base_ref", "staging"),
    ];
    for file in ["pr.yml", "merge.yml"] {
        let steps = run_workflow(&repo.dir, file, &github);
        let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
        for (name, ok, out) in &steps {
            assert!(ok, "{file}: step {name:?} failed:\n{out}");
        }
        assert_eq!(names.first(), Some(&"Install lakelet"), "{file}: {names:?}");
        assert!(
            names.contains(&"Start lakelet (local target)"),
            "{file}: {names:?}"
        );
        assert_eq!(
            names.last(),
            Some(&"Stop lakelet (local target)"),
            "{file}: {names:?}"
        );
        let all: String = steps.iter().map(|s| s.2.as_str()).collect();
        assert!(all.contains("1 migrations applied"), "{file}:\n{all}");
        assert!(
            !repo.dir.join(".lakelet/daemon.json").exists(),
            "{file} left its daemon running"
        );
    }
}

/// The workflows `lakelet init` writes are YAML, and every lakelet command they run exists
/// with the flags they pass.
#[test]
fn the_generated_workflows_call_real_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let o = lakelet()
        .current_dir(tmp.path())
        .args(["--project", "demo", "init"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join(".lakebase/workflow-state.json")).unwrap(),
    )
    .unwrap();
    assert!(lakelet::scm::state::violations(&state).is_empty());
    assert_eq!(state["project_id"], "demo");
    assert_eq!(
        state["tier_topology"], 3,
        "the starter's features fork from qa, two links below main: every tier receives \
         migrations"
    );
    let mut calls = 0;
    for f in ["pr.yml", "merge.yml", "cleanup-orphans.yml", "promote.yml"] {
        let text = std::fs::read_to_string(tmp.path().join(".github/workflows").join(f)).unwrap();
        let y: serde_json::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(
            y["jobs"].as_object().is_some_and(|j| !j.is_empty()),
            "{f} has no jobs"
        );
        assert!(y["on"].is_object(), "{f} has no trigger");
        for job in y["jobs"].as_object().unwrap().values() {
            for step in job["steps"].as_array().unwrap() {
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                // Each line that runs lakelet: the command alone, up to a shell operator or a
                // command substitution.
                for line in run
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("lakelet "))
                {
                    let words: Vec<&str> = line
                        .split_whitespace()
                        .take_while(|w| !["||", "&&", "|", ";"].contains(w))
                        .map(|w| w.split("$(").next().unwrap())
                        .take_while(|w| !w.is_empty() && *w != "\"")
                        .collect();
                    let path: Vec<&str> = words[1..]
                        .iter()
                        .take_while(|w| !w.starts_with('-') && !w.starts_with('"'))
                        .copied()
                        .collect();
                    let flags: Vec<&str> = words
                        .iter()
                        .filter(|w| w.starts_with("--"))
                        .copied()
                        .collect();
                    let mut args = path.clone();
                    args.push("--help");
                    let help = lakelet().args(&args).output().unwrap();
                    assert!(
                        help.status.success(),
                        "{f}: `lakelet {}` does not exist",
                        path.join(" ")
                    );
                    let help = String::from_utf8_lossy(&help.stdout);
                    for flag in flags {
                        assert!(
                            help.contains(flag),
                            "{f}: `lakelet {}` has no {flag}",
                            path.join(" ")
                        );
                    }
                    calls += 1;
                }
            }
        }
    }
    // Each workflow runs its ci (or promote) command, and up, init and down for a local target.
    assert_eq!(calls, 4 * 4, "the lakelet commands the workflows run");
    // And a made-up command would have been caught.
    assert!(!lakelet()
        .args(["ci", "deploy", "--help"])
        .output()
        .unwrap()
        .status
        .success());
}
