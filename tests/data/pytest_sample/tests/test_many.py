"""Many small tests (SAMPLE_MANY of them, 12 unless set): the benchmark's bulk."""

import os

import pytest

from conftest import assert_pristine, commit

MANY = int(os.environ.get("SAMPLE_MANY", "12"))


@pytest.mark.parametrize("n", range(MANY))
def test_many(db, n):
    assert_pristine(db)
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO orders (account_id, amount)"
            " SELECT id, %s FROM accounts WHERE name = %s RETURNING id",
            (n + 1, ("alice", "bob", "carol")[n % 3]),
        )
        assert cur.fetchone() is not None
    commit(db)
    with db.cursor() as cur:
        cur.execute("SELECT count(*), sum(amount) FROM orders")
        assert cur.fetchone() == (1, n + 1)
