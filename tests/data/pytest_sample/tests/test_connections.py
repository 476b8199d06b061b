"""More than one connection to the test's database, and a database for the whole session."""

import psycopg
import pytest

from conftest import MODE, assert_pristine, commit


def test_two_connections(db, connect):
    if MODE == "rollback":
        # What the rollback trick cannot do: the test's transaction is never committed, so a
        # second session (a connection pool, a worker, the app under test) does not see it.
        pytest.xfail("rollback mode: a second connection cannot see the test's uncommitted work")
    assert_pristine(db)
    other = connect()  # lakelet mode: psycopg.connect(**lakelet_db.params)
    with db.cursor() as cur:
        cur.execute("INSERT INTO accounts (name, balance) VALUES ('dave', 25) RETURNING id")
        dave = cur.fetchone()[0]
    commit(db)
    with other.cursor() as cur:
        cur.execute("SELECT id, balance FROM accounts WHERE name = 'dave'")
        assert cur.fetchone() == (dave, 25)
        cur.execute("INSERT INTO orders (account_id, amount) VALUES (%s, 5)", (dave,))
    other.commit()
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE account_id = %s", (dave,))
        assert cur.fetchone()[0] == 1
    commit(db)


def test_session_db(request, db):
    if MODE != "lakelet":
        pytest.skip("lakelet_db_session is lakelet mode's")
    assert_pristine(db)
    session_db = request.getfixturevalue("lakelet_db_session")
    test_db = request.getfixturevalue("lakelet_db")
    assert session_db.branch != test_db.branch
    assert f"options=branch%3D{session_db.branch}" in session_db.url
    with psycopg.connect(**session_db.params) as session_conn:
        assert_pristine(session_conn)
        session_conn.execute("INSERT INTO accounts (name) VALUES ('session-only')")
        session_conn.commit()
    # Two databases, not two names for one: the session branch's write does not show here.
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM accounts WHERE name = 'session-only'")
        assert cur.fetchone()[0] == 0
    db.execute("INSERT INTO accounts (name) VALUES ('test-only')")
    commit(db)
