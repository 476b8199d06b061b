"""The sample's fixtures: a `db` connection to a pristine database, three ways.

LAKELET_SAMPLE_MODE picks how each test gets its pristine database:

- ``lakelet`` (default): a branch of the template from lakelet's pool, through the
  pytest-lakelet plugin's ``lakelet_db`` fixture; the test commits for real.
- ``rollback``: the classic trick. One connection per worker to SAMPLE_NATIVE_URL; each test
  runs inside a transaction that is rolled back at its end, so ``commit(conn)`` must be a
  no-op. Everything a test does stays invisible to a second connection, and tests running in
  parallel on the one database wait on each other's locks.
- ``template``: per test ``CREATE DATABASE … TEMPLATE $SAMPLE_TEMPLATE_DB`` on the server of
  SAMPLE_NATIVE_URL (an admin connection to another database than the template: Postgres
  refuses to copy a template anyone is connected to), dropped after the test.

Tests import ``commit`` and ``assert_pristine`` from here (``from conftest import …``).
"""

from __future__ import annotations

import itertools
import os
from decimal import Decimal
from typing import Callable, Iterator, List

import psycopg
import pytest
from psycopg import sql

MODE = os.environ.get("LAKELET_SAMPLE_MODE", "lakelet")
if MODE not in ("lakelet", "rollback", "template"):
    raise pytest.UsageError(
        f"LAKELET_SAMPLE_MODE={MODE!r}: expected lakelet (the default), rollback or template"
    )

#: What db/seeds/01_accounts.sql puts in.
SEEDED = {"alice": Decimal("100.00"), "bob": Decimal("50.00"), "carol": Decimal("0.00")}

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def commit(conn: psycopg.Connection) -> None:
    """The tests' COMMIT: real, except in rollback mode, where the test's transaction must stay
    open so that it can be rolled back at the end."""
    if MODE != "rollback":
        conn.commit()


def assert_pristine(conn: psycopg.Connection) -> None:
    """The database is as the migrations and seeds left it: nothing another test did shows."""
    with conn.cursor() as cur:
        cur.execute("SELECT name, balance FROM accounts ORDER BY name")
        assert dict(cur.fetchall()) == SEEDED
        cur.execute("SELECT coalesce(sum(balance), 0) FROM accounts")
        assert cur.fetchone()[0] == Decimal("150.00")
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 'accounts' AND column_name = 'nickname'"
        )
        assert cur.fetchone()[0] == 0, "accounts.nickname exists: another test's ALTER TABLE shows"
        cur.execute("SELECT to_regclass('public.audit_log') IS NULL")
        assert cur.fetchone()[0], "table audit_log exists: another test's CREATE TABLE shows"


def _native_url() -> str:
    url = os.environ.get("SAMPLE_NATIVE_URL")
    if not url:
        pytest.fail(f"LAKELET_SAMPLE_MODE={MODE} needs SAMPLE_NATIVE_URL", pytrace=False)
    return url


# --- rollback mode ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _worker_connection() -> Iterator[psycopg.Connection]:
    """rollback mode: this worker's one connection (not autocommit: every test is a transaction)."""
    conn = psycopg.connect(_native_url())
    yield conn
    conn.close()


# --- template mode ------------------------------------------------------------------------

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def _admin_connection() -> Iterator[psycopg.Connection]:
    """template mode: this worker's autocommit connection for CREATE/DROP DATABASE."""
    conn = psycopg.connect(_native_url(), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def _template_database(_admin_connection: psycopg.Connection) -> Iterator[str]:
    """template mode: a database of its own for this test, copied from SAMPLE_TEMPLATE_DB."""
    template = os.environ.get("SAMPLE_TEMPLATE_DB")
    if not template:
        pytest.fail("LAKELET_SAMPLE_MODE=template needs SAMPLE_TEMPLATE_DB", pytrace=False)
    name = f"t_{WORKER}_{next(_numbers)}"
    # A run that was killed may have left one behind under the same name.
    _admin_connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin_connection.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    )
    try:
        yield name
    finally:
        _admin_connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the fixtures the tests use -----------------------------------------------------------


@pytest.fixture
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[[], psycopg.Connection]]:
    """A function that opens one more connection to this test's database (closed at teardown).

    In rollback mode that is a second session on the shared database: it sees only committed
    data, so not what the test did in its (never committed) transaction.
    """
    opened: List[psycopg.Connection] = []
    if MODE == "lakelet":
        lakelet_db = request.getfixturevalue("lakelet_db")

        def open_one() -> psycopg.Connection:
            return psycopg.connect(**lakelet_db.params)

    elif MODE == "template":
        name = request.getfixturevalue("_template_database")

        def open_one() -> psycopg.Connection:
            return psycopg.connect(_native_url(), dbname=name)

    else:

        def open_one() -> psycopg.Connection:
            return psycopg.connect(_native_url())

    def connect_() -> psycopg.Connection:
        conn = open_one()
        opened.append(conn)
        return conn

    try:
        yield connect_
    finally:
        # Before the database goes away (lakelet_db's release, the DROP DATABASE): the fixtures
        # this one asked for are torn down after it.
        for conn in opened:
            conn.close()


@pytest.fixture
def db(request: pytest.FixtureRequest, connect: Callable[[], psycopg.Connection]) -> Iterator[psycopg.Connection]:
    """A connection to a pristine database of this test's own (rollback mode: a transaction)."""
    if MODE == "rollback":
        conn = request.getfixturevalue("_worker_connection")
        conn.rollback()  # start clean, whatever the worker's previous test left
        try:
            yield conn
        finally:
            conn.rollback()
    else:
        yield connect()  # closed by `connect`, before the database is released or dropped
