//! Against a real daemon, under `lakelet test -- cargo test` in a project whose template is
//! tests/data/pytest_sample's (three seeded accounts). Without LAKELET_API_URL this test
//! fails with the crate's message, unless LAKELET_TESTDB_OPTIONAL=1 says that a run without a
//! daemon is expected (then it passes without checking anything).

use std::process::Command;

use lakelet_testdb::TestDb;

fn psql(db: &TestDb, sql: &str) -> String {
    // -X: no ~/.psqlrc. The URL's options win over a PGOPTIONS that `lakelet test` set for
    // its run-wide branch: libpq takes the environment only for what the URL leaves out.
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", db.url(), "-Atc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql on {} ({sql}): {}",
        db.branch(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn two_checkouts_are_two_fresh_databases() {
    if std::env::var_os("LAKELET_API_URL").is_none()
        && std::env::var("LAKELET_TESTDB_OPTIONAL").as_deref() == Ok("1")
    {
        eprintln!("LAKELET_API_URL is not set and LAKELET_TESTDB_OPTIONAL=1: nothing to check");
        return;
    }
    let a =
        TestDb::checkout("lakelet-testdb tests/checkout.rs a").unwrap_or_else(|e| panic!("{e}"));
    let b =
        TestDb::checkout("lakelet-testdb tests/checkout.rs b").unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.branch(), b.branch());
    for db in [&a, &b] {
        let option = format!("options=branch%3D{}", db.branch());
        assert!(db.url().contains(&option), "{} lacks {option}", db.url());
        assert_eq!(psql(db, "select count(*) from accounts"), "3");
    }
    // Two databases, not two names for one.
    psql(&a, "delete from accounts");
    assert_eq!(psql(&a, "select count(*) from accounts"), "0");
    assert_eq!(psql(&b, "select count(*) from accounts"), "3");
    a.release().unwrap_or_else(|e| panic!("{e}"));
    b.release().unwrap_or_else(|e| panic!("{e}"));
}
