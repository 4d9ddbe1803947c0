"""A prune of an object-storage target among many candidates lists the
target's objects once: looked up one by one, each name was a HEAD (and a LIST
when absent), so DROP BACKUP of a manifest header forged to list 500,000
objects ran for about an hour, holding a job slot. Seen on the wire."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import pytest

from storage.backup import Repository, pruning, resolve_target
from tests.storage_backup.s3server import Relay, S3Server, running


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


def requests(relay: Relay) -> int:
    with relay.lock:
        sent = bytes(relay.sent)
    return sum(sent.count(m) for m in (b"GET /", b"HEAD /", b"PUT /", b"DELETE /", b"POST /"))


def test_many_candidates_are_one_listing_not_a_request_each(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    relay = Relay(s3.port, record=True)
    try:
        config = {**s3.target(bucket), "endpoint": f"http://127.0.0.1:{relay.port}"}
        repo = Repository(resolve_target("offsite", [], {"offsite": config}),
                          compression="none")
        stored = [repo.put_bytes(f"object {i}".encode()) for i in range(3)]
        forged = [hashlib.sha256(secrets.token_bytes(8)).hexdigest()
                  for _ in range(pruning.LIST_ABOVE + 500)]
        before = requests(relay)
        freed = repo.prune(candidates=[o.oid for o in stored] + forged)
        assert freed == sum(len(f"object {i}") for i in range(3))  # nothing refers to them
        assert requests(relay) - before < 50, requests(relay) - before
        assert repo.list_objects() == {}
        # Few candidates: looked up (no listing of a big target for a small drop).
        kept = repo.put_bytes(b"kept")
        assert repo.prune(candidates=[kept.oid, forged[0]]) == len(b"kept")
    finally:
        relay.close()
