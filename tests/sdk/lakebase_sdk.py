"""Drives the local lakelet daemon with the official Databricks SDK's `postgres` service, as a
tool written for Lakebase would, then connects through the proxy with the issued credential.

Run by tests/api.rs with DATABRICKS_HOST and DATABRICKS_TOKEN set to the daemon's API, and
LAKELET_PROJECT to its project. Every step asserts; the first failure exits non-zero.
"""
import os
import sys

import psycopg2
from databricks.sdk import WorkspaceClient
from databricks.sdk.common.types.fieldmask import FieldMask
from databricks.sdk.errors import DatabricksError, NotFound
from databricks.sdk.service.postgres import Branch, BranchSpec, Snapshot, SnapshotSpec
from google.protobuf.duration_pb2 import Duration

project = os.environ["LAKELET_PROJECT"]
parent = f"projects/{project}"
w = WorkspaceClient(host=os.environ["DATABRICKS_HOST"], token=os.environ["DATABRICKS_TOKEN"])
pg = w.postgres

proj = pg.get_project(parent)
assert proj.status.default_branch == f"{parent}/branches/main", proj
print("project", proj.name, "retention", proj.status.history_retention_duration)

ttl = Duration()
ttl.FromSeconds(3600)
op = pg.create_branch(
    parent=parent,
    branch=Branch(spec=BranchSpec(source_branch=f"{parent}/branches/main", ttl=ttl)),
    branch_id="sdk-dev",
)
b = op.wait()
assert b.name == f"{parent}/branches/sdk-dev", b
assert b.status.current_state.value == "READY", b.status
assert b.status.expire_time is not None, b.status
print("created", b.name, "expires", b.status.expire_time.ToJsonString())

names = [x.name for x in pg.list_branches(parent=parent)]
assert f"{parent}/branches/sdk-dev" in names and f"{parent}/branches/main" in names, names
# Paging: one per page must still see every branch.
paged = [x.name for x in pg.list_branches(parent=parent, page_size=1)]
assert paged == sorted(names), (paged, names)

got = pg.get_branch(f"{parent}/branches/sdk-dev")
assert got.status.source_branch == f"{parent}/branches/main", got.status

upd = pg.update_branch(
    name=f"{parent}/branches/sdk-dev",
    branch=Branch(name=f"{parent}/branches/sdk-dev", spec=BranchSpec(is_protected=True)),
    update_mask=FieldMask(field_mask=["spec.is_protected"]),
).wait()
assert upd.status.is_protected is True, upd.status
try:
    pg.delete_branch(f"{parent}/branches/sdk-dev").wait()
    sys.exit("deleting a protected branch succeeded")
except DatabricksError as e:
    print("protected delete refused:", e)
pg.update_branch(
    name=f"{parent}/branches/sdk-dev",
    branch=Branch(name=f"{parent}/branches/sdk-dev", spec=BranchSpec(is_protected=False)),
    update_mask=FieldMask(field_mask=["spec.is_protected"]),
).wait()

# An operation can be fetched again by name.
again = pg.get_operation(op.name())
assert again.done, again

eps = list(pg.list_endpoints(parent=f"{parent}/branches/sdk-dev"))
assert len(eps) == 1, eps
ep = eps[0]
cred = pg.generate_database_credential(endpoint=ep.name)
assert cred.token and cred.expire_time, cred
host = ep.status.hosts.host
port = int(os.environ["LAKELET_PROXY_PORT"])
conn = psycopg2.connect(
    host=host,
    port=port,
    user="postgres",
    password=cred.token,
    dbname="postgres",
    options="branch=sdk-dev",
    sslmode="require",
)
cur = conn.cursor()
cur.execute("create table t(x int); insert into t values (42); select sum(x) from t")
assert cur.fetchone()[0] == 42
conn.commit()
conn.close()
print("connected through the proxy with the credential")

# The credential is for its branch only.
try:
    psycopg2.connect(host=host, port=port, user="postgres", password=cred.token,
                     dbname="postgres", options="branch=main", sslmode="require").close()
    sys.exit("a credential for sdk-dev opened main")
except psycopg2.OperationalError as e:
    assert "password authentication failed" in str(e), e

snap = pg.create_snapshot(
    parent=parent,
    snapshot=Snapshot(spec=SnapshotSpec(source_branch=f"{parent}/branches/sdk-dev", no_expiry=True)),
    snapshot_id="sdk-snap",
).wait()
assert snap.name == f"{parent}/snapshots/sdk-snap", snap
restored = pg.create_branch(
    parent=parent,
    branch=Branch(spec=BranchSpec(source_snapshot=snap.name, no_expiry=True)),
    branch_id="sdk-from-snap",
).wait()
assert restored.status.source_snapshot == snap.name, restored.status
assert [s.name for s in pg.list_snapshots(parent=parent)] == [snap.name]

pg.delete_branch(f"{parent}/branches/sdk-dev").wait()
deleted = pg.get_branch(f"{parent}/branches/sdk-dev")
assert deleted.status.current_state.value == "DELETED", deleted.status
pg.undelete_branch(f"{parent}/branches/sdk-dev").wait()
pg.delete_branch(f"{parent}/branches/sdk-dev", purge=True).wait()
try:
    pg.get_branch(f"{parent}/branches/sdk-dev")
    sys.exit("a purged branch is still there")
except NotFound:
    pass
pg.delete_branch(f"{parent}/branches/sdk-from-snap", purge=True).wait()
pg.delete_snapshot(snap.name).wait()
print("sdk ok")
