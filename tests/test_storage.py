"""storage/ on real databases (a SQLite file and a real PostgreSQL server) and a real folder."""

from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text, update

from storage import jobs as job_rows
from storage import records
from storage.artifacts import ArtifactStore
from storage.db import Database
from storage.errors import ArtifactError, JobLostError, JobStateError, NotFoundError
from storage.tables import Base, Job, Metric, User, utcnow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "artifacts")


def test_migrations_on_an_empty_database_match_the_models(db):
    assert db.revision() == "0007"
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    db.upgrade()  # a second start is a no-op
    assert db.integrity_problems() == []


def test_upgrade_from_the_previous_revision_keeps_the_data(db_url):
    db = Database(db_url)
    db.upgrade("0001")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'ann', false, '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, owner_id, kind, title, config, status, progress, step, folder, attempt, "
                "created_at) VALUES (7, 1, 'distill', 'old run', '{\"a\": 1}', 'done', 1.0, 'finished', "
                "'jobs/7', 1, '2026-01-01')"
            )
        )
    db.upgrade("0003")
    old = ["teacher", "teacher lr 0.0001", "labels-only student", "heal b-prune-heads-0.3+prune-neurons#2"[:32]]
    with db.engine.begin() as conn:
        for n, stage in enumerate(old, 1):
            conn.execute(
                text(
                    "INSERT INTO metrics (job_id, stage, name, step, value, recorded_at) "
                    f"VALUES (7, '{stage}', 'loss', {n}, 0.5, '2026-01-01')"
                )
            )
    db.upgrade()
    assert db.revision() == "0007"
    with db.session() as s:
        job = s.get(Job, 7)
        assert (job.title, job.config, job.cancel_requested, job.heartbeat_at) == ("old run", {"a": 1}, False, None)
        assert job.needs is None  # an old job needs no tag: any worker runs it
        rows = s.execute(select(Metric.stage, Metric.label).order_by(Metric.step)).all()
        assert [tuple(r) for r in rows] == [
            ("teacher", ""),
            ("teacher", "lr 0.0001"),
            ("labels-only student", ""),
            ("heal", "b-prune-heads-0.3+prune-neu"),
        ]
    assert db.integrity_problems() == []
    db.dispose()


def test_two_claims_one_winner_and_cancel_flow(db):
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {"x": 1}, title="t")
    assert job.folder == f"jobs/{job.id}" and job.status == "queued"
    assert job_rows.claim(db, job.id, "host:1") is True
    assert job_rows.claim(db, job.id, "host:2") is False  # a second delivery of the message runs nothing
    assert (
        job_rows.report(
            db, job.id, 0.5, "student step 1/4", [{"stage": "student", "name": "loss", "step": 1, "epoch": 1, "value": 2.5}]
        )
        is False
    )
    assert job_rows.request_cancel(db, me, job.id) == "running"
    assert job_rows.heartbeat(db, job.id) is True  # the job hears the request
    assert job_rows.finish(db, job.id, "cancelled")
    assert not job_rows.finish(db, job.id, "done")  # only a running job can be closed
    with pytest.raises(JobStateError, match="only a queued or running"):
        job_rows.request_cancel(db, me, job.id)
    job_rows.resume(db, me, job.id)
    assert job_rows.claim(db, job.id, "host:3")
    with db.session() as s:
        row = s.get(Job, job.id)
        assert (row.status, row.attempt, row.cancel_requested) == ("running", 2, False)


def test_queued_job_cancels_at_once_and_finished_job_does_not_resume(db):
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {})
    assert job_rows.request_cancel(db, me, job.id) == "cancelled"
    assert job_rows.claim(db, job.id, "host:1") is False
    done = job_rows.submit(db, me.user_id, "distill", {})
    job_rows.claim(db, done.id, "h:1")
    job_rows.finish(db, done.id, "done")
    with pytest.raises(JobStateError, match="only an interrupted"):
        job_rows.resume(db, me, done.id)


def test_dead_workers_are_found_by_pid_and_by_silence(db):
    me = records.local_user(db)
    by_pid, by_silence, alive, slept = (job_rows.submit(db, me.user_id, "distill", {}) for _ in range(4))
    job_rows.claim(db, by_pid.id, "here:111")
    job_rows.claim(db, by_silence.id, "elsewhere:222")
    job_rows.claim(db, alive.id, "here:333")
    job_rows.claim(db, slept.id, "here:333")
    with db.session() as s:  # silent for 5 minutes: dead on another machine; on this one, its live pid says no
        s.execute(update(Job).where(Job.id.in_([by_silence.id, slept.id])).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    lost = job_rows.recover_orphans(db, stale_after=60, host="here", process_alive=lambda proc: proc == "333")
    assert sorted(lost) == sorted([by_pid.id, by_silence.id])
    with db.session() as s:
        assert s.get(Job, by_pid.id).status == "interrupted" and "Resume it" in s.get(Job, by_pid.id).error
        assert s.get(Job, alive.id).status == "running" and s.get(Job, slept.id).status == "running"
    assert job_rows.recover_orphans(db, stale_after=60, host="here", process_alive=lambda proc: proc == "333") == []


def test_a_process_whose_job_was_taken_writes_nothing_more(db):
    """Marked interrupted while still alive, then resumed elsewhere: the old process must not write on."""
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {})
    job_rows.claim(db, job.id, "far:1")
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job.id).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert job_rows.recover_orphans(db, stale_after=60, host="here", process_alive=lambda proc: True) == [job.id]
    job_rows.resume(db, me, job.id)
    job_rows.claim(db, job.id, "here:2")
    old, new = 1, 2
    with pytest.raises(JobLostError):
        job_rows.report(db, job.id, 0.9, "old", [{"stage": "student", "name": "loss", "step": 99, "value": 0.1}], attempt=old)
    with pytest.raises(JobLostError):
        job_rows.heartbeat(db, job.id, old)
    assert job_rows.finish(db, job.id, "done", attempt=old) is False
    with db.session() as s:
        assert records.training_curve(s, me, job.id) == [] and s.get(Job, job.id).status == "running"
    assert job_rows.report(db, job.id, 0.5, "new", attempt=new) is False
    assert job_rows.finish(db, job.id, "done", attempt=new) is True


def test_variants_and_scores_recorded_twice_stay_one(db, store):
    me = records.local_user(db)
    run, other = job_rows.submit(db, me.user_id, "distill", {}), job_rows.submit(db, me.user_id, "distill", {})
    first = records.put_variant(db, run.id, name="student", role="student")
    records.add_scores(db, run.id, first, {"accuracy": 0.8, "latency_ms": 3.0})
    again = records.put_variant(db, run.id, name="student", role="student", path="jobs/1/student")  # a resume
    records.add_scores(db, run.id, again, {"accuracy": 0.9})
    with db.session() as s:
        assert again == first and [v.path for v in records.variants_of(s, me, run.id)] == ["jobs/1/student"]
        assert records.scores_of(s, first) == {"accuracy": 0.9}
    mine = store.write_bytes(f"{run.folder}/student/model.safetensors", b"w")
    records.record_artifacts(db, run.id, [mine], "model")
    records.record_artifacts(db, run.id, [store.write_bytes(mine.path, b"ww")], "model")  # rewritten: updated
    with pytest.raises(ArtifactError, match=f"belongs to job {run.id}"):
        records.record_artifacts(db, other.id, [mine], "model")
    with db.session() as s:
        assert [(a.job_id, a.bytes) for a in records.artifacts_of(s, me, run.id)] == [(run.id, 2)]


def test_latest_loss_is_the_stage_training_now(db):
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {})
    job_rows.claim(db, job.id, "h:1")
    job_rows.report(db, job.id, 0.2, "t", [{"stage": "teacher", "name": "loss", "step": 30, "value": 0.5}])
    job_rows.report(db, job.id, 0.4, "s", [{"stage": "student", "name": "loss", "step": 2, "value": 2.5}])
    with db.session() as s:
        assert job_rows.list_jobs(s, me)[0].last_loss == 2.5


def test_each_user_sees_only_their_own(db):
    ann = records.create_user(db, "ann", "hash")
    bob = records.create_user(db, "bob", "hash")
    admin = records.create_user(db, "root", "hash", is_admin=True)
    job = job_rows.submit(db, ann.user_id, "distill", {})
    ds = records.add_dataset(
        db,
        ann.user_id,
        name="t.csv",
        sha256="0" * 64,
        rows=3,
        columns=["text"],
        task="classification",
        report={},
        path="datasets/x",
    )
    with db.session() as s:
        assert [j.id for j in job_rows.list_jobs(s, bob)] == []
        with pytest.raises(NotFoundError):
            job_rows.get(s, bob, job.id)
        with pytest.raises(NotFoundError):
            records.get_dataset(s, bob, ds)
        assert [j.id for j in job_rows.list_jobs(s, admin)] == [job.id]
    for action in (job_rows.request_cancel, job_rows.resume):
        with pytest.raises(NotFoundError):
            action(db, bob, job.id)


def test_delete_removes_rows_files_and_jobs_built_on_it(db, store):
    me = records.local_user(db)
    run = job_rows.submit(db, me.user_id, "distill", {})
    child = job_rows.submit(db, me.user_id, "compress", {}, parent_id=run.id)
    other = job_rows.submit(db, me.user_id, "distill", {})
    for job in (run, child, other):
        job_rows.claim(db, job.id, "h:1")
        job_rows.report(db, job.id, 1.0, "x", [{"stage": "student", "name": "loss", "step": 1, "value": 1.0}])
        job_rows.finish(db, job.id, "done")
    weights = store.write_bytes(f"{run.folder}/student/model.safetensors", b"w" * 100)
    variant_file = store.write_bytes(f"{run.folder}/variants/small/model.onnx", b"v" * 10)
    kept = store.write_bytes(f"{other.folder}/student/model.safetensors", b"k")
    student = records.put_variant(db, run.id, name="student", role="student", path=f"{run.folder}/student")
    records.record_artifacts(db, run.id, [weights], "model", student)
    records.record_artifacts(db, child.id, [variant_file], "model")
    records.record_artifacts(db, other.id, [kept], "model")
    records.add_scores(db, run.id, student, {"accuracy": 0.9})

    assert sorted(job_rows.delete_job(db, store, me, run.id)) == sorted([run.id, child.id])
    assert not store.resolve(run.folder).exists()
    assert store.resolve(kept.path).exists()
    with db.session() as s:
        assert [j.id for j in job_rows.list_jobs(s, me)] == [other.id]
        assert s.execute(text("SELECT count(*) FROM metrics")).scalar_one() == 1  # the other job's
        assert s.execute(text("SELECT count(*) FROM artifacts")).scalar_one() == 1
    assert db.integrity_problems() == []


def test_a_busy_job_cannot_be_deleted(db, store):
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {})
    with pytest.raises(JobStateError, match="Cancel it first"):
        job_rows.delete_job(db, store, me, job.id)


def test_sweep_removes_only_folders_of_deleted_jobs(db, store):
    """A crash between deleting a job's rows and its files leaves a folder no row points at."""
    me = records.local_user(db)
    kept, crashed = job_rows.submit(db, me.user_id, "distill", {}), job_rows.submit(db, me.user_id, "distill", {})
    for job in (kept, crashed):
        store.write_bytes(f"{job.folder}/a", b"1")
    store.write_bytes("jobs/999/a", b"2")  # newer than any job: may be a job being created right now
    with db.session() as s:
        s.execute(text(f"DELETE FROM jobs WHERE id = {crashed.id}"))
    assert job_rows.sweep_unreferenced(db, store) == []  # above the newest id left: cannot tell yet
    later = job_rows.submit(db, me.user_id, "distill", {})
    assert later.id > crashed.id  # ids are never reused, so a new job never inherits old files
    assert job_rows.sweep_unreferenced(db, store) == [crashed.folder]
    assert store.resolve(f"{kept.folder}/a").exists() and store.resolve("jobs/999/a").exists()


def test_metrics_after_a_checkpoint_are_forgotten_on_resume(db):
    me = records.local_user(db)
    job = job_rows.submit(db, me.user_id, "distill", {})
    job_rows.claim(db, job.id, "h:1")
    job_rows.report(
        db, job.id, 0.5, "x", [{"stage": "student", "name": "loss", "step": i, "value": 1.0 / i} for i in range(1, 9)]
    )
    assert job_rows.forget_metrics_after(db, job.id, "student", 5) == 3
    with db.session() as s:
        assert [step for _, step, _ in records.training_curve(s, me, job.id)] == [1, 2, 3, 4, 5]
        assert job_rows.list_jobs(s, me)[0].last_loss == pytest.approx(0.2)


def test_artifact_store_is_atomic_checksummed_and_stays_inside(store, tmp_path):
    stored = store.write_bytes("jobs/1/eval.json", b"{}")
    assert stored.bytes == 2 and len(stored.sha256) == 64
    assert [f.name for f in (store.root / "jobs" / "1").iterdir()] == ["eval.json"]  # no temp file left
    store.verify(stored)
    store.resolve(stored.path).write_bytes(b"{ }")
    with pytest.raises(ArtifactError, match="changed on disk"):
        store.verify(stored)
    for bad in ["../escape", "/etc/passwd", "jobs/../../x", "", "..\\..\\windows"]:
        with pytest.raises(ArtifactError):
            store.resolve(bad)
    (store.root / "jobs" / "1" / ".half.tmp").write_bytes(b"x")
    assert [f.path for f in store.files_under("jobs/1")] == ["jobs/1/eval.json"]
    upload = tmp_path / "tickets.csv"
    upload.write_text("text,label\nhi,a\n")
    copied = store.import_file(upload, "datasets/abc/original.csv")
    assert copied.bytes == upload.stat().st_size


def test_each_user_has_their_own_place_in_the_wizard(db):
    from storage.wizard import remember, wizard_of

    alice = records.create_user(db, "alice", None)
    bob = records.create_user(db, "bob", None)
    with db.session() as s:
        assert wizard_of(s, alice) == {}
    remember(db, alice, teacher="minilm-l6", dataset_id=3)
    remember(db, alice, preset="Fastest")
    remember(db, bob, teacher="smollm2-135m")
    remember(db, alice, dataset_id=None)  # forgotten, e.g. the dataset was deleted
    with db.session() as s:
        assert wizard_of(s, alice) == {"teacher": "minilm-l6", "preset": "Fastest"}
        assert wizard_of(s, bob) == {"teacher": "smollm2-135m"}
    with pytest.raises(ValueError, match="not wizard keys"):
        remember(db, alice, run_folder="/etc")


def test_each_api_calls_reads_see_a_revoke_and_a_stop_at_once(db):
    """The two rows every API call reads (studio.serve): a key's owner and the caller's served model, each a plain
    connection's read, nothing cached: a revoke, a stop, a disabled user count from the next read."""
    from storage import serving

    alice = records.create_user(db, "alice", "x-hash", is_admin=True)
    bob = records.create_user(db, "bob", "y-hash")
    key = serving.make_key(db, alice, "helpdesk")
    owner = serving.key_owner(db, key.key)
    assert owner.viewer.user_id == alice.user_id and owner.viewer.is_admin and owner.key_id == key.id
    assert owner.touch_due  # never used yet
    serving.touch_key(db, key.id)
    assert not serving.key_owner(db, key.key).touch_due
    assert serving.key_owner(db, key.key + "x") is None and serving.key_owner(db, "not-a-key") is None

    job = job_rows.submit(db, alice.user_id, "distill", {})
    assert job_rows.claim(db, job.id, "test")
    job_rows.finish(db, job.id, "done")
    served = serving.deploy(db, alice, job.id, "student", "triage", "classification", True, 0.5)
    found = serving.find_served(db, alice, "triage")
    assert found == serving.served(db, alice)[0] and found.owner == "alice" and found.threshold == 0.5
    assert serving.find_served(db, bob, "triage") is None  # another user's model of that name: not found
    serving.stop(db, alice, served.id)
    assert serving.find_served(db, alice, "triage") is None
    serving.revoke_key(db, alice, key.id)
    assert serving.key_owner(db, key.key) is None
    other = serving.make_key(db, bob)
    with db.session() as s:  # bob can no longer log in: his keys call nothing either
        s.execute(update(User).where(User.id == bob.user_id).values(password_hash=None))
    assert serving.key_owner(db, other.key) is None
