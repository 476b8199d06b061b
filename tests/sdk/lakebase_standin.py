"""A stand-in for a Databricks workspace's Lakebase `postgres` v1 API, for testing lakelet's
`--target lakebase` offline. It replays the documented request and response shapes (those of
the Databricks SDK's `postgres` service): resource names, Operation envelopes that are *not*
done when returned (the client must poll `GET /api/2.0/postgres/{operation}`), list paging,
the Databricks error body, bearer auth, SCIM `Me`, and the credentials endpoint. It keeps state
in memory and has no Postgres behind it: connecting is not part of what it stands in for.

Usage: python3 lakebase_standin.py PORT_FILE TOKEN. Writes the port it listens on to PORT_FILE.
`GET /_requests` returns every request it served, for tests to check what the client did.
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT_FILE, TOKEN = sys.argv[1], sys.argv[2]
PROJECT = "demo"
lock = threading.Lock()
branches = {}
operations = {}
requests_log = []


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def branch_resource(bid, spec):
    name = f"projects/{PROJECT}/branches/{bid}"
    return {
        "name": name,
        "branch_id": bid,
        "parent": f"projects/{PROJECT}",
        "uid": "br-" + uuid.uuid4().hex[:16],
        "create_time": now(),
        "update_time": now(),
        "spec": spec,
        "status": {
            "branch_id": bid,
            "current_state": "READY",
            "default": bid == "production",
            "is_protected": bool(spec.get("is_protected")),
            "expire_time": spec.get("expire_time"),
            "logical_size_bytes": "30720000",
            "source_branch": spec.get("source_branch"),
            "source_branch_lsn": "0/1A2B3C4D" if spec.get("source_branch") else None,
        },
    }


branches["production"] = branch_resource("production", {"no_expiry": True})


def operation(resource, response):
    """An operation that becomes done on its first poll, as a slow control plane's would."""
    name = f"{resource}/operations/{uuid.uuid4()}"
    operations[name] = {"name": name, "done": False, "polls": 0, "response": response}
    return {"name": name, "done": False}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error_code": code, "message": message})

    def handle_any(self, method):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        with lock:
            requests_log.append({"method": method, "path": url.path, "query": q, "body": body})
        if url.path == "/_requests":
            return self.reply(200, requests_log)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.error(401, "UNAUTHENTICATED", "invalid access token")
        if url.path == "/api/2.0/preview/scim/v2/Me":
            return self.reply(200, {"userName": "dev@example.com", "id": "42"})
        prefix = f"/api/2.0/postgres/projects/{PROJECT}/branches"
        with lock:
            if url.path == "/api/2.0/postgres/credentials" and method == "POST":
                return self.reply(200, {"token": "lakebase-oauth-token", "expire_time": now()})
            if url.path.startswith("/api/2.0/postgres/") and "/operations/" in url.path:
                name = url.path[len("/api/2.0/postgres/"):]
                op = operations.get(name)
                if not op:
                    return self.error(404, "NOT_FOUND", f"operation {name} not found")
                op["polls"] += 1
                if op["polls"] >= 1:
                    op["done"] = True
                out = {"name": op["name"], "done": op["done"]}
                if op["done"]:
                    out["response"] = op["response"]
                return self.reply(200, out)
            if url.path == prefix and method == "POST":
                bid = q.get("branch_id", "")
                if bid in branches:
                    return self.error(409, "ALREADY_EXISTS", f"branch {bid} already exists")
                spec = body.get("spec", {})
                src = spec.get("source_branch", "")
                if src.rsplit("/", 1)[-1] not in branches:
                    return self.error(400, "INVALID_PARAMETER_VALUE", f"source branch {src} not found")
                b = branch_resource(bid, spec)
                branches[bid] = b
                return self.reply(200, operation(b["name"], b))
            if url.path == prefix and method == "GET":
                ids = sorted(branches)
                start = int(q.get("page_token") or 0)
                # One per page, whatever was asked: the client must follow next_page_token.
                size = 1
                page = ids[start:start + size]
                out = {"branches": [branches[i] for i in page]}
                if start + size < len(ids):
                    out["next_page_token"] = str(start + size)
                return self.reply(200, out)
            if url.path.startswith(prefix + "/"):
                rest = url.path[len(prefix) + 1:].split("/")
                bid = rest[0]
                b = branches.get(bid)
                if b is None:
                    return self.error(404, "NOT_FOUND", f"branch {bid} not found")
                if len(rest) == 1 and method == "GET":
                    return self.reply(200, b)
                if len(rest) == 1 and method == "DELETE":
                    if b["status"]["is_protected"]:
                        return self.error(400, "INVALID_STATE", "branch is protected")
                    del branches[bid]
                    return self.reply(200, operation(b["name"], {}))
                if len(rest) == 1 and method == "PATCH":
                    for path in q.get("update_mask", "").split(","):
                        if path == "spec.is_protected":
                            v = bool(body.get("spec", {}).get("is_protected"))
                            b["spec"]["is_protected"] = v
                            b["status"]["is_protected"] = v
                        elif path:
                            return self.error(400, "INVALID_PARAMETER_VALUE", f"cannot update {path}")
                    return self.reply(200, operation(b["name"], b))
                if rest[1:] == ["endpoints"] and method == "GET":
                    return self.reply(200, {"endpoints": [{
                        "name": f"{b['name']}/endpoints/ep-primary",
                        "endpoint_id": "ep-primary",
                        "parent": b["name"],
                        "status": {
                            "endpoint_type": "ENDPOINT_TYPE_READ_WRITE",
                            "current_state": "ACTIVE",
                            "hosts": {"host": f"ep-{bid}.database.example.com"},
                        },
                    }]})
        return self.error(404, "NOT_FOUND", f"no route {method} {url.path}")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_PATCH(self):
        self.handle_any("PATCH")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
