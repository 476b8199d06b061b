"""Tests that change data and commit: each would break the others without a fresh database."""

from decimal import Decimal

from conftest import assert_pristine, commit


def test_orders_move_balances(db):
    assert_pristine(db)
    with db.cursor() as cur:
        # Accounts first, then orders, in every test: tests sharing one database (rollback
        # mode) then take their row locks in one order and wait instead of deadlocking.
        cur.execute("UPDATE accounts SET balance = balance - 30 WHERE name = 'alice'")
        cur.execute("UPDATE accounts SET balance = balance - 20 WHERE name = 'bob'")
        cur.execute(
            "INSERT INTO orders (account_id, amount)"
            " SELECT id, amount FROM accounts JOIN (VALUES ('alice', 30.00), ('bob', 20.00)) AS o(name, amount)"
            " USING (name)"
        )
    commit(db)
    with db.cursor() as cur:
        cur.execute("SELECT name, balance FROM accounts ORDER BY name")
        assert cur.fetchall() == [("alice", Decimal("70.00")), ("bob", Decimal("30.00")), ("carol", Decimal("0.00"))]
        cur.execute("SELECT count(*), sum(amount) FROM orders")
        assert cur.fetchone() == (2, Decimal("50.00"))
        cur.execute("SELECT sum(balance) + (SELECT sum(amount) FROM orders) FROM accounts")
        assert cur.fetchone()[0] == Decimal("150.00")


def test_delete_everything(db):
    assert_pristine(db)
    with db.cursor() as cur:
        cur.execute("DELETE FROM orders")
        cur.execute("DELETE FROM accounts")
    commit(db)
    with db.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM orders)")
        assert cur.fetchone() == (0, 0)
