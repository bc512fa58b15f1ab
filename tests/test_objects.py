"""The artifact store shared by machines through an S3-compatible object store (storage/objects.py), against a
real S3 server over HTTP (moto's, tests/s3_server.py). Two folders stand for two machines."""

import os
import time

import pytest
from botocore.exceptions import ClientError

from storage.artifacts import ArtifactStore, StoredFile
from storage.errors import ArtifactError
from storage.objects import ObjectStore


@pytest.fixture
def machines(tmp_path, store_url):
    return ArtifactStore(tmp_path / "a", ObjectStore(store_url)), ArtifactStore(tmp_path / "b", ObjectStore(store_url))


def test_what_one_machine_writes_the_other_reads_whole_and_checked(machines):
    a, b = machines
    stored = a.write_bytes("datasets/x/train.jsonl", b'{"text": "hello"}\n')
    assert b.local("datasets/x").joinpath("train.jsonl").read_bytes() == b'{"text": "hello"}\n'
    assert b.describe("datasets/x/train.jsonl") == stored
    b.verify(stored)  # checked against the checksum stored with the object, not by reading it

    # a job's folder: finished files go up, an unfinished write (temp, dot-name) stays on its machine
    step = a.resolve("jobs/1/checkpoints/step-2")
    step.mkdir(parents=True)
    (step / "model.safetensors").write_bytes(os.urandom(4096))
    (step / "state.json").write_text('{"global_step": 2}')
    a.resolve("jobs/1/checkpoints/.step-3.tmp").mkdir()
    a.resolve("jobs/1/checkpoints/.step-3.tmp/model.safetensors").write_bytes(b"half")
    assert a.push("jobs/1") == 2
    assert a.push("jobs/1") == 0  # nothing changed: nothing sent again
    assert b.pull("jobs/1") == 2
    assert b.resolve("jobs/1/checkpoints/step-2/model.safetensors").read_bytes() == (step / "model.safetensors").read_bytes()
    assert not b.resolve("jobs/1/checkpoints/.step-3.tmp").exists()

    # the writer's copy is what the object store mirrors: a removed checkpoint goes there too
    newer = a.resolve("jobs/1/checkpoints/step-4")
    newer.mkdir()
    (newer / "model.safetensors").write_bytes(os.urandom(4096))
    (newer / "state.json").write_text('{"global_step": 4}')
    (step / "model.safetensors").unlink()
    (step / "state.json").unlink()
    step.rmdir()
    a.push("jobs/1")
    left = sorted(a.remote.listing("jobs/1"))
    assert left == ["jobs/1/checkpoints/step-4/model.safetensors", "jobs/1/checkpoints/step-4/state.json"]


def test_a_reader_never_loses_newer_work_and_a_changed_object_is_caught(machines):
    a, b = machines
    first = a.write_bytes("jobs/2/metrics.jsonl", b"step 1\n")
    b.pull("jobs/2")
    time.sleep(0.05)
    b.resolve("jobs/2/metrics.jsonl").write_bytes(b"step 1\nstep 2\n")  # B ran on: its copy is newer
    assert b.pull("jobs/2") == 0
    assert b.resolve("jobs/2/metrics.jsonl").read_bytes() == b"step 1\nstep 2\n"

    b.push("jobs/2")  # now the object store holds B's version: what A recorded no longer matches
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        a.verify(first)
    with pytest.raises(ArtifactError, match="missing"):
        a.verify(StoredFile("jobs/2/nothing.bin", "0" * 64, 1))


def test_deleting_removes_both_copies_and_a_failed_fetch_leaves_nothing(machines, tmp_path):
    a, b = machines
    a.write_bytes("jobs/3/out.bin", b"x" * 100)
    a.write_bytes("jobs/33/out.bin", b"y")
    assert b.folders_under("jobs") == {"3", "33"}
    a.delete("jobs/3")
    assert a.remote.listing("jobs/3") == {} and list(a.remote.listing("jobs/33")) == ["jobs/33/out.bin"]
    assert not a.resolve("jobs/3").exists()
    a.delete("jobs/3")  # twice is fine
    with pytest.raises(ClientError):
        b.remote.get("jobs/3/out.bin", b.resolve("jobs/3/out.bin"))
    assert not b.resolve("jobs/3").exists() or list(b.resolve("jobs/3").iterdir()) == []


def test_a_wrong_address_or_bucket_says_what_to_fix(s3_server, store_url):
    with pytest.raises(ArtifactError, match="not an object store address"):
        ObjectStore("http://127.0.0.1:9000/bucket")
    with pytest.raises(ArtifactError, match="create it first") as refused:
        ObjectStore(store_url.rsplit("/", 1)[0] + "/no-such-bucket")
    assert "secret" not in str(refused.value)  # the key's secret is never printed
    with pytest.raises(ArtifactError, match=r"test:\*\*\*@.*names no bucket"):
        ObjectStore(store_url.rsplit("/", 1)[0])
