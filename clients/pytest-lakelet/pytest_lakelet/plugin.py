"""pytest plugin: a fresh lakelet database branch per test, module or session.

Loaded by itself once the package is installed (the ``pytest11`` entry point ``lakelet``).
The fixtures check a branch out of the daemon's warm pool (forked from the template that
``lakelet test`` built from the project's migrations and seeds) and release it at teardown,
whatever the test did. See README.md beside this package.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from typing import Iterator, List

import pytest

from . import client
from .client import LakeletDatabase


class LakeletReleaseWarning(UserWarning):
    """A branch could not be given back (the daemon reaps it with its run anyway)."""


def _label(base: str) -> str:
    # The xdist worker first, so that cutting a long node id to 200 characters keeps it.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{worker} {base}" if worker else base


class _HoldInterrupt:
    """Hold a Ctrl-C (SIGINT) back while a checkout or release is in flight.

    Interrupted half way, a checkout leaves a branch that the daemon made but whose name we
    never read, and a release may not reach the daemon: either way the branch stays checked
    out until the daemon reaps the run. So the first SIGINT is only noted (``interrupted``),
    and the caller raises KeyboardInterrupt once the exchange is over; a second one interrupts
    at once, for a daemon that does not answer. Only in the main thread, and only while SIGINT
    has Python's default handler (someone else's handler is left alone).
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def __enter__(self) -> "_HoldInterrupt":
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum: int, frame: object) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _lease(label: str) -> Iterator[LakeletDatabase]:
    with _HoldInterrupt() as held:
        try:
            db = client.checkout(label)
        except client.LakeletError as e:
            error = str(e)
        else:
            error = None
    if error is not None:
        # Outside the except block, so that pytest shows the message once, not chained; and
        # pytrace=False: the message says all there is, a traceback into urllib does not help.
        pytest.fail(error, pytrace=False)
    try:
        if held.interrupted:
            raise KeyboardInterrupt  # now that the finally below gives the branch back
        yield db
    finally:
        # Always given back: passed, failed, errored, skipped inside, or interrupted (pytest
        # tears fixtures down on KeyboardInterrupt too). A failing release must not replace
        # the test's own outcome, so it is a warning, not an error.
        with _HoldInterrupt() as held:
            try:
                client.release(db.branch)
            except client.LakeletError as e:  # its message names the branch and the cause
                warnings.warn(LakeletReleaseWarning(str(e)), stacklevel=1)
            except Exception as e:  # noqa: BLE001 - whatever it is, report it and go on
                warnings.warn(
                    LakeletReleaseWarning(f"pytest-lakelet: could not release branch {db.branch!r}: {e!r}"),
                    stacklevel=1,
                )
        if held.interrupted:
            raise KeyboardInterrupt


@pytest.fixture
def lakelet_db(request: pytest.FixtureRequest) -> Iterator[LakeletDatabase]:
    """A fresh database for this test: a branch of the template, released after the test.

    Has ``branch``, ``url`` (postgresql://… with ``options=branch%3D<branch>``), ``params``
    (``psycopg.connect(**params)``), ``hit``, ``wait_ms`` and ``template``.
    """
    yield from _lease(_label(request.node.nodeid))


@pytest.fixture(scope="module")
def lakelet_db_module(request: pytest.FixtureRequest) -> Iterator[LakeletDatabase]:
    """A fresh database shared by the tests of one module, released after its last test."""
    yield from _lease(_label(request.module.__name__))


@pytest.fixture(scope="session")
def lakelet_db_session() -> Iterator[LakeletDatabase]:
    """A fresh database for the whole session (with pytest-xdist: one per worker)."""
    yield from _lease(_label("session"))


def pytest_report_header(config: pytest.Config) -> List[str]:
    url = os.environ.get("LAKELET_API_URL")
    if not url:
        return ["lakelet: LAKELET_API_URL is not set (not under `lakelet test`); lakelet_db fixtures will fail"]
    template = os.environ.get("LAKELET_TEST_TEMPLATE") or "(LAKELET_TEST_TEMPLATE is not set)"
    run = os.environ.get("LAKELET_TEST_RUN")
    return [f"lakelet: template {template}" + (f", run {run}" if run else "") + f", api {url}"]
