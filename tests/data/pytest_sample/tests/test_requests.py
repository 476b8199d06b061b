"""Tests whose behaviour the caller chooses: a failure (SAMPLE_FAIL=1) and a sleep
(SAMPLE_SLEEP=seconds, to interrupt a run while tests hold their databases)."""

import os
import time

from conftest import assert_pristine, commit


def test_fail_on_request(db):
    assert_pristine(db)
    db.execute("UPDATE accounts SET balance = 0")
    commit(db)
    assert os.environ.get("SAMPLE_FAIL") != "1", "failing on request (SAMPLE_FAIL=1)"


def test_sleep_on_request(db):
    assert_pristine(db)  # the database is checked out by now
    db.execute("DELETE FROM accounts WHERE name = 'carol'")
    commit(db)
    time.sleep(float(os.environ.get("SAMPLE_SLEEP", "0")))
    assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 2
