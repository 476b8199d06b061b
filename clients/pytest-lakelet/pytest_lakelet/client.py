"""The lakelet test-pool client: check a fresh database branch out of the pool, release it.

No pytest in here, so other runners (unittest, behave, a plain script) can use it too:

    from pytest_lakelet.client import checkout, release

    db = checkout(label="my-suite::test_x")
    try:
        conn = psycopg.connect(**db.params)      # or db.url with any libpq-style client
        ...
    finally:
        release(db.branch)

Configuration is read from the environment at call time (not at import), as
`lakelet test -- <command>` sets it:

- LAKELET_API_URL        the daemon's API, e.g. http://127.0.0.1:41234/lakelet/v1
- LAKELET_API_TOKEN      its bearer token
- LAKELET_TEST_TEMPLATE  the template the branches are forked from
- LAKELET_TEST_RUN       the id of this run (optional; lets the daemon reap a run's leftovers)
- LAKELET_PGUSER, LAKELET_PGPASSWORD (optional)   the proxy's credentials

Only the standard library is used (urllib.request), so installing the plugin pulls in nothing
but pytest.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

__all__ = [
    "LakeletDatabase",
    "LakeletError",
    "LakeletConfigError",
    "LakeletApiError",
    "LakeletUnreachableError",
    "checkout",
    "release",
]

#: The longest label the daemon takes; longer ones are cut (the label is only for humans).
MAX_LABEL = 200

#: Seconds to wait for an answer. A checkout normally takes milliseconds (the pool is warm),
#: but waits when the pool is empty; this bounds it so a stuck daemon fails the test instead of
#: hanging the run.
TIMEOUT = 120.0

_HINT = (
    "run the tests under `lakelet test -- pytest …`, or set LAKELET_API_URL, "
    'LAKELET_API_TOKEN and LAKELET_TEST_TEMPLATE (README, "A fresh database per test")'
)


class LakeletError(Exception):
    """Anything that kept a checkout or release from working."""


class LakeletConfigError(LakeletError):
    """A variable the client needs is not in the environment."""


class LakeletUnreachableError(LakeletError):
    """The daemon could not be reached (not running, wrong URL, timed out)."""


class LakeletApiError(LakeletError):
    """The daemon answered with an error status; `status`, `error_code` and `message` say which."""

    def __init__(self, text: str, status: int, error_code: Optional[str], message: str):
        super().__init__(text)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class LakeletDatabase:
    """One branch checked out of the pool: a database of its own, as the template left it."""

    #: The branch's name, e.g. ``test-ab12cd34-k2x9q1``; what `release` takes.
    branch: str
    #: ``postgresql://user[:password]@host:port/database?options=branch%3D<branch>``, for any
    #: libpq-style client (psql, psycopg, SQLAlchemy, node-postgres, ...).
    url: str
    #: Keyword parameters for ``psycopg.connect(**params)`` / ``psycopg2.connect(**params)``:
    #: host, port, user, password (when there is one), dbname, options=``branch=<branch>``.
    params: Dict[str, Any] = field(repr=False)
    #: Whether the pool had a branch ready (False: the checkout waited for one to be made).
    hit: bool
    #: How long the checkout waited inside the daemon, in milliseconds.
    wait_ms: float
    #: The template the branch was forked from.
    template: str
    host: str
    port: int
    database: str

    @property
    def options(self) -> str:
        """The startup option that selects the branch at lakelet's proxy."""
        return f"branch={self.branch}"

    def __repr__(self) -> str:
        # Not the URL or params: they carry the proxy's password, and reprs end up in test logs.
        return (
            f"LakeletDatabase(branch={self.branch!r}, template={self.template!r}, "
            f"hit={self.hit!r}, wait_ms={self.wait_ms!r}, host={self.host!r}, "
            f"port={self.port!r}, database={self.database!r})"
        )


@dataclass(frozen=True)
class _Config:
    api_url: str
    token: str
    template: str
    run: Optional[str]
    user: str
    password: Optional[str]


def _require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise LakeletConfigError(f"pytest-lakelet: {name} is not set: {_HINT}")
    return value


def _config() -> _Config:
    return _Config(
        api_url=_require("LAKELET_API_URL").rstrip("/"),
        token=_require("LAKELET_API_TOKEN"),
        template=_require("LAKELET_TEST_TEMPLATE"),
        run=os.environ.get("LAKELET_TEST_RUN") or None,
        # lakelet test always sets LAKELET_PGUSER; `postgres` is the user `lakelet up` creates.
        user=os.environ.get("LAKELET_PGUSER") or "postgres",
        password=os.environ.get("LAKELET_PGPASSWORD") or None,
    )


# The daemon is local: never send its token through an HTTP proxy from http_proxy/HTTP_PROXY.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(cfg: _Config, path: str, body: Dict[str, Any], what: str, timeout: float) -> Dict[str, Any]:
    url = f"{cfg.api_url}{path}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {cfg.token}",
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as e:  # a non-2xx answer
        raw = e.read() or b""
        e.close()
        code, message = _error_body(raw, e.reason)
        shown = f"{message} ({code})" if code else message
        raise LakeletApiError(
            f"pytest-lakelet: {what} failed: HTTP {e.code} from {url}: {shown}", e.code, code, message
        ) from None
    except urllib.error.URLError as e:
        raise _unreachable(url, e.reason) from None
    except (OSError, http.client.HTTPException) as e:  # reset, timeout while reading, ...
        raise _unreachable(url, e) from None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise LakeletError(
            f"pytest-lakelet: {what}: HTTP {status} from {url} with a body that is not a JSON "
            f"object: {raw[:200]!r}"
        )
    return answer


def _error_body(raw: bytes, reason: Any) -> "tuple[Optional[str], str]":
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        code = body.get("error_code")
        return (str(code) if code else None), str(body["message"])
    text = raw.decode("utf-8", "replace").strip()[:500]
    return None, text or str(reason or "no message")


def _unreachable(url: str, reason: Any) -> LakeletUnreachableError:
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, (socket.timeout, TimeoutError)):
        why = "timed out"
    else:
        why = str(reason)
    return LakeletUnreachableError(
        f"pytest-lakelet: cannot reach the lakelet daemon at {url} ({why}): start it with "
        "`lakelet up`, or run the tests under `lakelet test -- pytest …`"
    )


def _quote(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _url_host(host: str) -> str:
    if host.startswith("/"):  # a Unix socket directory: percent-encoded, as libpq takes it
        return _quote(host)
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        return f"[{host}]"
    return host


def connection_url(user: str, password: Optional[str], host: str, port: int, database: str, branch: str) -> str:
    """``postgresql://user[:password]@host:port/database?options=branch%3D<branch>``."""
    auth = _quote(user) + (f":{_quote(password)}" if password else "")
    return (
        f"postgresql://{auth}@{_url_host(host)}:{port}/{_quote(database)}"
        f"?options=branch%3D{_quote(branch)}"
    )


def checkout(label: Optional[str] = None, *, timeout: float = TIMEOUT) -> LakeletDatabase:
    """Take a fresh branch of the template out of the daemon's warm pool.

    `label` names the user in the daemon's listings (a test id, say); it is cut to 200
    characters. Raises `LakeletConfigError` when the environment lacks the API's URL, token or
    template, `LakeletUnreachableError` when the daemon does not answer, `LakeletApiError` when it
    answers with an error.
    """
    cfg = _config()
    body: Dict[str, Any] = {"template": cfg.template}
    if cfg.run:
        body["run"] = cfg.run
    if label:
        body["label"] = label[:MAX_LABEL]
    what = f"checkout of a database from template {cfg.template!r}"
    answer = _post(cfg, "/test/checkout", body, what, timeout)
    try:
        branch = str(answer["branch"])
        # The answer says where the proxy is; the LAKELET_PG* variables are a fallback.
        host = str(answer.get("host") or os.environ["LAKELET_PGHOST"])
        port = int(answer.get("port") or os.environ["LAKELET_PGPORT"])
        database = str(answer.get("database") or os.environ["LAKELET_PGDATABASE"])
    except (KeyError, TypeError, ValueError) as e:
        raise LakeletError(f"pytest-lakelet: {what}: the answer lacks {e}: {answer!r}") from None
    params: Dict[str, Any] = {"host": host, "port": port, "user": cfg.user}
    if cfg.password:
        params["password"] = cfg.password
    params["dbname"] = database
    params["options"] = f"branch={branch}"
    return LakeletDatabase(
        branch=branch,
        url=connection_url(cfg.user, cfg.password, host, port, database, branch),
        params=params,
        hit=bool(answer.get("hit", False)),
        wait_ms=float(answer.get("wait_ms") or 0.0),
        template=str(answer.get("template") or cfg.template),
        host=host,
        port=port,
        database=database,
    )


def release(branch: str, *, timeout: float = TIMEOUT) -> bool:
    """Give a checked-out branch back: the daemon deletes it (softly; the pool is refilled).

    Returns the daemon's ``released`` flag. Raises like `checkout`.
    """
    cfg = _config()
    answer = _post(cfg, "/test/release", {"branch": branch}, f"release of branch {branch!r}", timeout)
    return bool(answer.get("released", True))
