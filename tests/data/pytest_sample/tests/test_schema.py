"""A test that changes the schema and commits: no other test may see the new column or table."""

from conftest import assert_pristine, commit


def test_alter_schema(db):
    assert_pristine(db)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE accounts ADD COLUMN nickname text")
        cur.execute(
            "CREATE TABLE audit_log ("
            " id bigserial PRIMARY KEY,"
            " account_id bigint NOT NULL REFERENCES accounts,"
            " event text NOT NULL,"
            " at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("UPDATE accounts SET nickname = upper(name)")
        cur.execute("INSERT INTO audit_log (account_id, event) SELECT id, 'nicknamed' FROM accounts")
    commit(db)
    with db.cursor() as cur:
        cur.execute("SELECT nickname FROM accounts ORDER BY name")
        assert [r[0] for r in cur.fetchall()] == ["ALICE", "BOB", "CAROL"]
        cur.execute("SELECT count(*) FROM audit_log")
        assert cur.fetchone()[0] == 3
