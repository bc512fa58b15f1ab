"""The worker as users meet it: real worker processes, real job child processes, kill -9, cancel,
resume, two jobs at once, on SQLite and on a real PostgreSQL server."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import jobs as job_rows
from storage import records
from storage.config import StorageConfig, open_storage
from storage.tables import Job, Metric
from studio.checkpoints import checkpoint_state, latest_checkpoint
from studio.errors import ConfigError
from studio.jobs import service

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(db_url, tmp_path, studio_home):
    values = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SLM_STUDIO_HOME": str(studio_home),
        "SLM_STUDIO_DB_URL": db_url,
        "SLM_STUDIO_DATA_DIR": str(tmp_path / "artifacts"),
        "SLM_STUDIO_CHECKPOINT_S": "0.3",
    }
    return values


@pytest.fixture
def storage(env):
    opened = open_storage(StorageConfig(env["SLM_STUDIO_DB_URL"], Path(env["SLM_STUDIO_DATA_DIR"])))
    yield opened
    opened.db.dispose()


@pytest.fixture
def dataset(storage, samples, tmp_path):
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    return service.add_dataset(storage, records.local_user(storage.db), data)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_same_file_checked_the_same_way_is_kept_once(storage, samples, tmp_path):
    from studio.dataset import DatasetOptions

    me = records.local_user(storage.db)
    data = samples / "support_tickets.csv"
    first = service.add_dataset(storage, me, data)
    assert service.add_dataset(storage, me, data) == first
    other_split = service.add_dataset(storage, me, data, DatasetOptions(seed=7))
    assert other_split != first
    assert len(list((storage.store.root / "datasets").iterdir())) == 2
    someone = records.create_user(storage.db, "bob", "x")
    assert service.add_dataset(storage, someone, data) not in (first, other_split)


class Worker:
    def __init__(self, env: dict, log: Path, workers: int = 1) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "studio", "worker", "--workers", str(workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_9(self) -> None:
        """Power cut: the worker and its job's process die at once, nothing gets to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill_9()


@pytest.fixture
def workers(env, tmp_path):
    started: list[Worker] = []

    def start(count: int = 1, **extra: str) -> Worker:
        worker = Worker({**env, **extra}, tmp_path / "worker.log", count)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def distill_job(storage, dataset: int, tiny_bert: Path, **overrides) -> int:
    settings = {
        "teacher": str(tiny_bert),
        "student_layers": 1,
        "epochs": 6,
        "teacher_epochs": 1,
        "max_length": 32,
        "min_steps": 0,
        "patience": 0,
        "teacher_learning_rate": 1e-3,
        "batch_size": 4,
        "trim_vocab": False,
        **overrides,
    }
    return service.submit(storage, records.local_user(storage.db), "distill", {"dataset_id": dataset, "distill": settings})


def job(storage, job_id: int) -> Job:
    with storage.db.session() as s:
        return s.get(Job, job_id)


def student_steps(storage, job_id: int) -> list[int]:
    with storage.db.session() as s:
        curve = records.training_curve(s, records.local_user(storage.db), job_id)
    return [step for stage, step, _ in curve if stage == "student"]


def wait_for(check, what: str, timeout: float = 180, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)  # each look reads the job's rows: looking more often takes the job's CPU on a 2-core machine
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_kill_9_mid_distillation_then_restart_and_resume(storage, dataset, tiny_bert, workers, tmp_path):
    job_id = distill_job(storage, dataset, tiny_bert)
    log = tmp_path / "worker.log"
    worker = workers()
    wait_for(lambda: len(student_steps(storage, job_id)) >= 70, "training to be well under way", log=log)
    worker.kill_9()
    assert job(storage, job_id).status == "running"  # nobody was left to say otherwise
    before = student_steps(storage, job_id)
    assert before[-1] < 6 * 60  # killed before the end

    workers()  # the restart finds the job's process gone
    wait_for(lambda: job(storage, job_id).status == "interrupted", "the restarted worker to mark it interrupted", log=log)
    assert "Resume it" in job(storage, job_id).error
    folder = storage.store.resolve(job(storage, job_id).folder)
    saved = json.loads((latest_checkpoint(folder / "checkpoints" / "student") / "state.json").read_text())
    assert 0 < saved["global_step"] <= before[-1]

    service.resume(storage, records.local_user(storage.db), job_id)
    wait_for(lambda: job(storage, job_id).status in ("done", "failed"), "the resumed job to finish", log=log)
    finished = job(storage, job_id)
    assert (finished.status, finished.error, finished.attempt) == ("done", None, 2)
    assert student_steps(storage, job_id) == list(range(1, 6 * 60 + 1))  # continuous: no gap, no step twice
    logged = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if row["stage"] == "student" and "loss" in row] == list(range(1, 6 * 60 + 1))
    assert storage.db.integrity_problems() == []
    me = records.local_user(storage.db)
    with storage.db.session() as s:
        assert records.verify_artifacts(s, storage.store, me, job_id) == []
        assert {v.name for v in records.variants_of(s, me, job_id)} == {
            "teacher",
            "student",
            "majority-baseline",
            "tfidf-baseline",
        }

    service.delete(storage, me, job_id)
    assert not folder.exists()
    assert storage.db.integrity_problems() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cancel_while_running_then_the_next_job_runs_and_the_cancelled_one_resumes(
    storage, dataset, tiny_bert, workers, tmp_path
):
    first = distill_job(storage, dataset, tiny_bert, epochs=5)
    second = distill_job(storage, dataset, tiny_bert, epochs=1)
    log = tmp_path / "worker.log"
    workers()
    wait_for(lambda: len(student_steps(storage, first)) >= 30, "the first job to train", log=log)
    assert job(storage, second).status == "queued"  # one slot: the second waits its turn
    me = records.local_user(storage.db)
    assert service.cancel(storage, me, first) == "running"
    wait_for(lambda: job(storage, first).status == "cancelled", "the cancel to land", log=log)
    folder = storage.store.resolve(job(storage, first).folder)
    saved = json.loads((latest_checkpoint(folder / "checkpoints" / "student") / "state.json").read_text())
    assert saved["global_step"] == student_steps(storage, first)[-1]  # stopped after a step, and saved it

    wait_for(lambda: job(storage, second).status == "done", "the queued job to run next", log=log)
    assert job(storage, second).started_at >= job(storage, first).finished_at
    service.resume(storage, me, first)
    wait_for(lambda: job(storage, first).status == "done", "the cancelled job to resume and finish", log=log)
    assert student_steps(storage, first) == list(range(1, 5 * 60 + 1))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_jobs_at_once_keep_their_own_files_and_rows(storage, dataset, tiny_bert, workers, tmp_path):
    jobs = [distill_job(storage, dataset, tiny_bert, epochs=3, seed=seed) for seed in (1, 2)]
    workers(2)
    log = tmp_path / "worker.log"
    wait_for(lambda: all(job(storage, j).status in ("done", "failed") for j in jobs), "both jobs", log=log)
    a, b = (job(storage, j) for j in jobs)
    assert (a.status, b.status) == ("done", "done"), (a.error, b.error)
    assert a.started_at < b.finished_at and b.started_at < a.finished_at  # they overlapped
    me = records.local_user(storage.db)
    for j in jobs:
        assert student_steps(storage, j) == list(range(1, 3 * 60 + 1))
        config = json.loads((storage.store.resolve(job(storage, j).folder) / "config.json").read_text())
        assert config["distill"]["seed"] == (1 if j == jobs[0] else 2)
        with storage.db.session() as s:
            assert records.verify_artifacts(s, storage.store, me, j) == []
            paths = [x.path for x in records.artifacts_of(s, me, j)]
        assert paths and all(p.startswith(f"jobs/{j}/") for p in paths)
    with storage.db.session() as s:
        owners = s.execute(select(Job.worker).where(Job.id.in_(jobs))).scalars().all()
    assert len(set(owners)) == 2  # two processes ran them
    assert storage.db.integrity_problems() == []


def job_processes(job_id: int) -> dict[int, int]:
    """{rank: pid} of the runner processes of a job (a job of several processes: one per rank)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            environ = dict(
                item.split("=", 1) for item in (proc / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item
            )
        except OSError:
            continue
        if b"studio.jobs.runner" in command and str(job_id).encode() in command:
            found[int(environ.get("RANK", 0))] = int(proc.name)
    return found


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_job_on_two_processes_kill_9_of_one_cancel_and_resume(storage, dataset, tiny_bert, workers, tmp_path):
    """kill -9 of one of a job's two processes ends it interrupted (not failed, not left running), resumable;
    a cancel stops both after the same step; every step is trained and logged once."""
    job_id = distill_job(storage, dataset, tiny_bert, processes=2)
    log = tmp_path / "worker.log"
    workers()
    wait_for(lambda: len(student_steps(storage, job_id)) >= 40, "the two processes to train", log=log)
    ranks = job_processes(job_id)
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGKILL)
    wait_for(lambda: job(storage, job_id).status != "running", "the job to notice", log=log)
    stopped = job(storage, job_id)
    assert stopped.status == "interrupted" and "Resume it" in stopped.error, stopped.error
    wait_for(lambda: job_processes(job_id) == {}, "no process of the job to be left", timeout=60, log=log)
    folder = storage.store.resolve(stopped.folder)
    assert checkpoint_state(folder / "checkpoints" / "student").global_step > 0

    me = records.local_user(storage.db)
    service.resume(storage, me, job_id)
    wait_for(lambda: len(student_steps(storage, job_id)) >= 200, "the resumed job to train on", log=log)
    assert sorted(job_processes(job_id)) == [0, 1]
    assert service.cancel(storage, me, job_id) == "running"
    wait_for(lambda: job(storage, job_id).status == "cancelled", "the cancel to land", log=log)
    assert checkpoint_state(folder / "checkpoints" / "student").global_step == student_steps(storage, job_id)[-1]

    service.resume(storage, me, job_id)
    wait_for(lambda: job(storage, job_id).status in ("done", "failed"), "the job to finish", log=log)
    finished = job(storage, job_id)
    assert (finished.status, finished.error, finished.attempt) == ("done", None, 3)
    assert student_steps(storage, job_id) == list(range(1, 6 * 60 + 1))
    logged = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if row["stage"] == "student" and "loss" in row] == list(range(1, 6 * 60 + 1))

    def verified() -> bool:  # the worker records the job's log once the launcher has ended, a moment after 'done'
        with storage.db.session() as s:
            return records.verify_artifacts(s, storage.store, me, job_id) == []

    wait_for(verified, "the job's files to be recorded as they are", timeout=60, log=log)
    with storage.db.session() as s:
        assert sorted(v.name for v in records.variants_of(s, me, job_id)) == [
            "majority-baseline",
            "student",
            "teacher",
            "tfidf-baseline",
        ]

    # measured again in two processes: each takes its part of the test split; the scores are recorded once
    again = service.submit(storage, me, "evaluate", {"processes": 2}, parent_id=job_id, title="measure again")
    wait_for(lambda: job(storage, again).status in ("done", "failed"), "the evaluate job to finish", log=log)
    assert (job(storage, again).status, job(storage, again).error) == ("done", None)
    said = storage.store.resolve(job(storage, again).folder) / "job.log"
    wait_for(lambda: f"job {again}: process 2 of 2 started" in said.read_text(), "the second process's log line", 30, log)
    with storage.db.session() as s:
        scored = s.execute(select(Metric.variant_id, Metric.name).where(Metric.job_id == again)).all()
    assert len(scored) == len(set(scored)) > 0
    first, second = (
        {r["name"]: r for r in json.loads((folder / f).read_text())["models"]} for f in ("eval.json", "compare.json")
    )
    assert second["student"]["accuracy"] == pytest.approx(first["student"]["accuracy"])
    assert second["student"]["peak_load_mb"] > 0 and second["teacher"]["throughput"] > 0
    assert storage.db.integrity_problems() == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_on_separate_homes_share_the_queue_and_the_object_store(db_url, store_url, samples, tiny_bert, tmp_path):
    """Two machines (two homes and artifact folders), one PostgreSQL, one S3-compatible store; jobs submitted from a
    third place run once each, one on each machine, and a job on one machine goes on from a run made on the other."""

    def machine(name: str, **extra: str) -> dict:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SLM_STUDIO_HOME": str(tmp_path / name),
            "SLM_STUDIO_DATA_DIR": str(tmp_path / name / "artifacts"),
            "SLM_STUDIO_DB_URL": db_url,
            "SLM_STUDIO_STORE_URL": store_url,
            **extra,
        }

    web = open_storage(StorageConfig(db_url, tmp_path / "web" / "artifacts", store_url))
    me = records.local_user(web.db)
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    dataset = service.add_dataset(web, me, data)
    runs = [distill_job(web, dataset, tiny_bert, epochs=1, seed=seed) for seed in range(2)]
    with web.db.session() as s:  # one for each machine, so that both take work whatever the timing
        for run, name in zip(runs, ("one", "two")):
            s.get(Job, run).needs = [name]
    with pytest.raises(ConfigError, match="not a worker tag"):
        service.submit(web, me, "distill", {"dataset_id": dataset, "distill": {"teacher": str(tiny_bert)}}, needs=["GPU!"])
    started = [Worker(machine("one", SLM_STUDIO_WORKER_TAGS="one"), tmp_path / "one.log")]
    try:
        # the run that needs machine two waits, saying for what, while only machine one works
        said = lambda: job(web, runs[1]).step  # noqa: E731
        wait_for(
            lambda: "waiting for a worker tagged two" in said(), "the run for machine two to wait", 300, tmp_path / "one.log"
        )
        assert job(web, runs[1]).status == "queued" and "--tags two" in said()  # no worker has it: how to start one
        started.append(Worker(machine("two", SLM_STUDIO_WORKER_TAGS="two"), tmp_path / "two.log"))
        wait_for(lambda: all(job(web, j).status in ("done", "failed") for j in runs), "the two runs", timeout=600)
        ran_on = {}
        for j in runs:
            row = job(web, j)
            assert (row.status, row.attempt, row.error) == ("done", 1, None)
            # a job's log is written only where it ran (the other machine never needed that folder)
            ran_on[j] = [n for n in ("one", "two") if (tmp_path / n / "artifacts" / row.folder / "job.log").exists()]
            assert len(ran_on[j]) == 1, ran_on
            assert student_steps(web, j) == list(range(1, 60 + 1))  # every step once: it ran once
        assert {where[0] for where in ran_on.values()} == {"one", "two"}  # both machines took work
        with web.db.session() as s:  # the third place checks what they made, in the shared store
            assert all(records.verify_artifacts(s, web.store, me, j) == [] for j in runs)
        assert web.store.local(job(web, runs[0]).folder).joinpath("student", "model.safetensors").is_file()

        first = runs[0]
        other = "two" if ran_on[first] == ["one"] else "one"
        again = service.submit(web, me, "evaluate", {"variants": False}, parent_id=first, needs=[other])
        wait_for(lambda: job(web, again).status in ("done", "failed"), "the run measured on the other machine", timeout=300)
        assert (job(web, again).status, job(web, again).error) == ("done", None)
        assert (tmp_path / other / "artifacts" / job(web, again).folder / "job.log").exists()
        from storage import workers as worker_rows

        live = worker_rows.live(web.db)  # each machine recorded what it offers
        assert sorted(tuple(w.tags) for w in live) == [("cpu", "one"), ("cpu", "two")]
        assert all(w.cores >= 1 and w.memory_bytes > 0 and w.gpus == 0 for w in live)
    finally:
        for worker in started:
            worker.stop()
        web.db.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_job_on_two_machines_waits_for_the_second_then_trains_on_both(storage, dataset, tiny_bert, env, tmp_path):
    """Two workers (two homes, one shared artifact folder as an NFS mount would be) each give one process to a job
    with machines=2; alone, the first worker gives up after the join timeout and says why."""
    first = distill_job(storage, dataset, tiny_bert, epochs=1, machines=2)
    one = Worker({**env, "SLM_STUDIO_HOME": str(tmp_path / "one"), "SLM_STUDIO_JOIN_S": "5"}, tmp_path / "one.log")
    try:
        wait_for(lambda: job(storage, first).status == "interrupted", "the lone machine to give up", 120, tmp_path / "one.log")
        assert "Only 1 of the 2 machines" in job(storage, first).error

        two = Worker({**env, "SLM_STUDIO_HOME": str(tmp_path / "two"), "SLM_STUDIO_JOIN_S": "60"}, tmp_path / "two.log")
        try:
            service.resume(storage, records.local_user(storage.db), first)
            wait_for(lambda: job(storage, first).status in ("done", "failed", "interrupted"), "the job on two machines", 300)
            finished = job(storage, first)
            assert (finished.status, finished.error, finished.machines_joined) == ("done", None, 2)
            folder = storage.store.resolve(finished.folder)
            wait_for(lambda: job_processes(first) == {}, "every process of the job to end by itself", 60)
            joined = (folder / "job.machine-1.log").read_text()
            assert "job 1: process 2 of 2 started" in joined and "Traceback" not in joined  # the second machine's part
            assert student_steps(storage, first) == list(range(1, 60 + 1))  # once each, from the main process
            assert "2 processes" in json.dumps(finished.step) or finished.step == "finished"
        finally:
            two.stop()
    finally:
        one.stop()


def test_heal_of_an_unnamed_long_recipe_keeps_its_curve_apart(storage):
    """The heal of an unnamed recipe is named after the whole recipe: far longer than a stage kind. Its rows are
    stored (PostgreSQL refused the old 'heal <recipe>#3' stage string), read back as one curve, and a resume
    forgets only that curve's later steps."""
    from studio.compress.pipeline import parse_recipe, recipe_names
    from studio.jobs.reporter import JobReporter
    from studio.progress import Progress

    me = records.local_user(storage.db)
    variant = recipe_names([(None, parse_recipe("prune-heads:fraction=0.3+prune-neurons:fraction=0.3+heal"))])[0]
    job = job_rows.submit(storage.db, me.user_id, "compress", {})
    job_rows.claim(storage.db, job.id, "here:1")
    reporter = JobReporter(storage.db, job.id, spans={"heal": (0.1, 0.9)})
    for label in (f"{variant}#3", "other#3"):
        for step in range(1, 5):
            reporter(Progress("heal", 1, 1, step, 4, loss=1.0 / step, global_step=step, label=label))
    with storage.db.session() as s:  # a labelled heal moves the bar through the span of its kind
        assert s.get(Job, job.id).progress == pytest.approx(0.1 + 0.8 * 4 / 4)
    reporter(Progress("heal", 1, 1, 2, 4, global_step=2, restart_step=2, label=f"{variant}#3"))  # a resume at step 2
    with storage.db.session() as s:
        curve = records.training_curve(s, me, job.id)
        assert len(f"heal {variant}#3") > 32
        assert [(name, step) for name, step, _ in curve] == [(f"heal {variant}#3", 1), (f"heal {variant}#3", 2)] + [
            ("heal other#3", step) for step in range(1, 5)
        ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_compress_job_cancelled_mid_variant_resumes_keeping_what_it_made(storage, dataset, tiny_bert):
    """In-process (as the CLI runs jobs): variant a is saved, b is cancelled while healing; the resumed
    job keeps a as it was, makes b, and records each once."""
    import threading

    from studio.jobs.runner import run_claimed

    me = records.local_user(storage.db)
    run = distill_job(storage, dataset, tiny_bert, epochs=1)
    job_rows.claim(storage.db, run, "here:1")
    assert run_claimed(storage, run) == "done"
    compress = service.submit(
        storage,
        me,
        "compress",
        {"recipes": [["a", "int8"], ["b", "magnitude:sparsity=0.3+heal"]], "evaluate": False},
        parent_id=run,
        enqueue=False,
    )
    stop = threading.Event()

    def cancel_in_heal(p) -> None:
        if (p.stage, p.label) == ("heal", "b#2") and p.global_step and p.global_step >= 5:
            stop.set()

    job_rows.claim(storage.db, compress, "here:1")
    assert run_claimed(storage, compress, cancel=stop, echo=cancel_in_heal) == "cancelled"
    variants = storage.store.resolve(job(storage, run).folder) / "variants"
    made_a = (variants / "a" / "variant.json").read_text()
    assert not (variants / "b").exists()

    service.resume(storage, me, compress, enqueue=False)
    job_rows.claim(storage.db, compress, "here:1")
    assert run_claimed(storage, compress) == "done"
    assert (variants / "a" / "variant.json").read_text() == made_a  # kept, not made again
    with storage.db.session() as s:
        rows = records.variants_of(s, me, compress)
        assert [(v.name, v.role, v.status) for v in rows] == [("a", "quantized", "ok"), ("b", "pruned", "ok")]
        heal = [step for stage, step, _ in records.training_curve(s, me, compress) if stage.startswith("heal b")]
    assert heal == list(range(1, len(heal) + 1)) and len(heal) > 5
    assert storage.db.integrity_problems() == []
    with pytest.raises(ConfigError, match=f"a variant named 'a' is made by job {compress}"):
        service.submit(storage, me, "compress", {"recipes": [["A", "onnx"]]}, parent_id=run, enqueue=False)
