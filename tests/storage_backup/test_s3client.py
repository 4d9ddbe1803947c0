"""Request checksums by endpoint: over plain http an upload's payload is signed
with its sha256 and sent plain (no aws-chunked CRC trailer); an operator's value
of AWS_REQUEST_CHECKSUM_CALCULATION wins. Seen on the wire, in front of moto."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from storage.backup import Repository, resolve_target, s3client
from tests.storage_backup.s3server import Relay, S3Server, running
from tests.storage_backup.s3stall import lying


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


def put_through_relay(s3: S3Server, data: bytes, pickled: bool = False) -> Relay:
    bucket = s3.new_bucket()
    relay = Relay(s3.port, record=True)
    config = {**s3.target(bucket), "endpoint": f"http://127.0.0.1:{relay.port}"}
    repo = Repository(resolve_target("offsite", [], {"offsite": config}), compression="none")
    if pickled:  # as a job process receives it (storage/jobproc.py)
        repo = pickle.loads(pickle.dumps(repo))
    try:
        result = repo.put_bytes(data)
        assert result.oid == hashlib.sha256(data).hexdigest()
        assert repo.has_object(result.oid)
        with repo.open_object(result.oid) as stored:
            assert stored.read() == data
    finally:
        relay.close()
    return relay


def test_modes_by_scheme() -> None:
    if s3client._operator_value is not None:  # a developer's own setting wins
        assert s3client.checksum_mode("http") == s3client._operator_value
        return
    assert s3client.checksum_mode("http") == "when_required"
    assert s3client.checksum_mode("https") == "when_supported"


def test_http_upload_is_signed_by_sha256_and_not_chunked(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3client, "_operator_value", None)
    data = os.urandom(300_000)
    relay = put_through_relay(s3, data)
    assert hashlib.sha256(data).hexdigest() in relay.headers("x-amz-content-sha256")
    assert not relay.headers("x-amz-trailer")
    assert "aws-chunked" not in relay.headers("content-encoding")
    assert os.environ[s3client.CHECKSUM_ENV] == s3client.SDK_DEFAULT  # put back


def test_a_pickled_repository_uploads_over_http_as_the_servers_does(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpickled, the file system is made with its scheme's mode, not the
    environment's (pyarrow's own unpickling sent aws-chunked bodies)."""
    monkeypatch.setattr(s3client, "_operator_value", None)
    data = os.urandom(300_000)
    relay = put_through_relay(s3, data, pickled=True)
    assert hashlib.sha256(data).hexdigest() in relay.headers("x-amz-content-sha256")
    assert not relay.headers("x-amz-trailer")
    assert "aws-chunked" not in relay.headers("content-encoding")


def test_operator_value_wins(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3client, "_operator_value", "when_supported")
    monkeypatch.setenv(s3client.CHECKSUM_ENV, "when_supported")
    relay = put_through_relay(s3, os.urandom(300_000))
    assert set(relay.headers("x-amz-trailer")) == {"x-amz-checksum-crc64nvme"}
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in relay.headers("x-amz-content-sha256")


def test_environment_is_restored_after_each_file_system() -> None:
    before = os.environ[s3client.CHECKSUM_ENV]
    options: dict[str, Any] = {"scheme": "http", "endpoint_override": "127.0.0.1:9",
                               "region": "us-east-1", "access_key": "a", "secret_key": "b"}
    s3client.new_s3_filesystem(options)
    assert os.environ[s3client.CHECKSUM_ENV] == before


def test_a_child_process_does_not_take_the_default_left_behind_for_the_operators() -> None:
    if s3client._operator_value is not None:
        return  # a developer's own setting is the operator's in the child too
    probe = ("import botocore.session as s; from storage.backup import s3client; "
             "print(s3client._operator_value, s3client.checksum_mode('http')); "
             "s.get_session().create_client('s3', region_name='us-east-1', "
             "aws_access_key_id='a', aws_secret_access_key='b')")
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ),
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "when_required"]  # and botocore accepts the value


def test_a_stuck_read_does_not_hold_another_targets_file_system(s3: S3Server) -> None:
    """Making an S3FileSystem waits until no S3 request runs in the process
    (pyarrow's client registry), so each target's is made once and kept: one
    read an endpoint drips no longer held every later statement on every
    S3 target, an honest one too, in the making of its file system."""
    bucket = s3.new_bucket()
    s3.write(f"{bucket}/slow", b"x" * 100)
    honest = {**s3.target(bucket), "uri": f"s3://{bucket}"}
    first = resolve_target("honest", [], {"honest": honest}).fs
    liars = lying(s3)
    liar = next(liars)
    liar.lie("GET", "/slow", "drip", 0.4)
    slow = resolve_target("lie", [], {"lie": {**honest, "endpoint": liar.endpoint}}).fs

    def read() -> None:
        with contextlib.suppress(OSError):  # cut off by the release below
            slow.open_input_stream(f"{bucket}/slow").read()

    made: list[Any] = []
    try:
        threading.Thread(target=read, daemon=True).start()
        while not liar.hits.get("drip"):
            threading.Event().wait(0.05)
        maker = threading.Thread(
            target=lambda: made.append(resolve_target("honest", [], {"honest": honest}).fs),
            daemon=True)
        maker.start()
        maker.join(5)
    finally:
        liars.close()  # the read ends: pyarrow's exit waits on it
    assert made and made[0] is first
    assert first.get_file_info(f"{bucket}/slow").size == 100
