"""A distillation on several processes (studio/ranks.py): each takes its part of every global batch, so two
processes train the student one process trains, up to rounding; a run stopped in one number of processes
resumes in another. (The job-level cases, a worker starting the processes and kill -9 of one of them, are in
test_jobs.py.)

Tolerance, stated: at the same global batch, every step's training loss within 0.1 % of one process's, the
student's weights within 1e-4, each validation's macro-F1 within 0.02, and the teacher's cached logits within 1e-3.
The runs are short (8 steps a stage): over hundreds of steps at a high learning rate the float rounding of half
batches grows chaotically on a tiny model (seen: up to 1 % of a loss after 120 steps, depending on the session's
randomly trained tokenizer), which says nothing about the splitting. (With classes weighed, a half batch's weighted
mean differs from the whole batch's by a little more: about 0.5 % of the loss measured.) One thread a process.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from studio.checkpoints import checkpoint_state
from studio.dataset import prepare_dataset
from tiny_models import build_tiny_bert

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "parallel_distill.py"


def run_in(processes: int, spec: dict, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"spec-{len(list(folder.glob('spec-*')))}.json"
    path.write_text(json.dumps(spec))
    launcher = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [] if processes == 1 else [f"--nproc-per-node={processes}"]
    return subprocess.run([*launcher, str(DRIVER), str(path)], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, samples_dir=ROOT / "studio" / "samples") -> dict:
    """A teacher without dropout (so the only difference between runs is how the batch is split) and 400 tickets."""
    tmp = tmp_path_factory.mktemp("parallel")
    teacher = build_tiny_bert(tmp / "teacher")
    config = json.loads((teacher / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
    lines = (samples_dir / "support_tickets.csv").read_text(encoding="utf-8").splitlines()[:401]
    (tmp / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepare_dataset(tmp / "t.csv", tmp / "ds")
    settings = dict(
        teacher=str(teacher),
        student_layers=2,
        epochs=3,
        teacher_epochs=5,
        max_steps=8,
        batch_size=8,
        max_length=48,
        min_steps=0,
        learning_rate=3e-3,
        teacher_learning_rate=3e-3,
        threads=1,  # one thread a process: the same sums in the same order on every run
        patience=0,
        balance="off",  # weighed classes average a half batch's loss a little differently from the whole one's
    )
    one = run_in(1, {"dataset": str(tmp / "ds"), "run": str(tmp / "one"), "config": settings}, tmp)
    assert one.returncode == 0, one.stderr[-3000:]
    return {"tmp": tmp, "settings": settings, "one": tmp / "one"}


def logged(run: Path, stage: str) -> tuple[dict[int, float], dict[int, float]]:
    """{step: loss} and {step: validation} of a stage, from the run's metrics.jsonl (each step once)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in rows if r["stage"] == stage and "loss" in r]
    assert len(losses) == len(dict(losses)), "a step was written twice"
    return dict(losses), {r["step"]: r["validation"] for r in rows if r["stage"] == stage and "validation" in r}


def assert_trained_alike(one: Path, other: Path) -> None:
    for stage in ("teacher", "student"):
        losses, validations = logged(other, stage)
        want_losses, want_validations = logged(one, stage)
        assert sorted(losses) == sorted(want_losses) and sorted(validations) == sorted(want_validations)
        assert all(abs(losses[s] - want_losses[s]) <= 0.001 * want_losses[s] for s in want_losses), stage
        assert all(abs(validations[s] - want_validations[s]) <= 0.02 for s in want_validations), stage
    mine, want = (load_file(run / "student" / "model.safetensors") for run in (other, one))
    assert mine.keys() == want.keys() and all(torch.allclose(mine[k], want[k], atol=1e-4) for k in want)


def test_two_processes_train_the_student_one_process_trains(setup):
    two = setup["tmp"] / "two"
    spec = {"dataset": str(setup["tmp"] / "ds"), "run": str(two), "config": setup["settings"]}
    done = run_in(2, spec, setup["tmp"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 done" in done.stdout and "rank 1 done" in done.stdout
    assert_trained_alike(setup["one"], two)
    # the teacher's logits were computed half by each process and joined in order
    joined = load_file(two / "cache" / "teacher_logits.safetensors")["logits"]
    alone = load_file(setup["one"] / "cache" / "teacher_logits.safetensors")["logits"]
    assert joined.shape == alone.shape and torch.allclose(joined, alone, atol=1e-3)
    assert list((two / "cache").glob("*part*")) == []
    # progress went out once: one process wrote the log, one config, one student
    assert json.loads((two / "config.json").read_text())["requested"]["threads"] == 1


def test_a_run_stopped_in_two_processes_resumes_in_one_and_then_in_two(setup):
    run = setup["tmp"] / "moved"
    spec = {"dataset": str(setup["tmp"] / "ds"), "run": str(run), "config": setup["settings"]}
    stopped = run_in(2, {**spec, "stop_at": 3}, setup["tmp"])
    assert "rank 0 stopped" in stopped.stdout and "rank 1 stopped" in stopped.stdout, stopped.stderr[-3000:]
    assert checkpoint_state(run / "checkpoints" / "student").global_step == 3

    again = run_in(1, {**spec, "resume": True, "stop_at": 5, "config": {**setup["settings"], "processes": 1}}, setup["tmp"])
    assert "rank 0 stopped" in again.stdout, again.stderr[-3000:]
    assert checkpoint_state(run / "checkpoints" / "student").global_step == 5

    last = run_in(2, {**spec, "resume": True, "config": {**setup["settings"], "processes": 2}}, setup["tmp"])
    assert last.returncode == 0, last.stderr[-3000:]
    assert_trained_alike(setup["one"], run)  # steps 1-8 each once, as one process trains them


def test_a_heal_in_two_processes_heals_and_measures_as_one_process_does(setup):
    """A compress job's heal trains data-parallel too; what follows the heal (int8 here) is the main process's. Then
    the processes share the measuring of every model (compare.json), variants included."""
    recipes = [["slim", "prune-heads:fraction=0.5+heal:epochs=1+int8"]]
    made = {}
    for processes in (1, 2):
        run = setup["tmp"] / f"compress-{processes}"
        shutil.copytree(setup["one"], run)
        done = run_in(processes, {"compress": str(run), "recipes": recipes}, setup["tmp"])
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("made ['ok']") == processes
        made[processes] = run / "variants" / "slim"
    one, two = (load_file(next(made[n].glob("*.safetensors"))) if list(made[n].glob("*.safetensors")) else None for n in (1, 2))
    manifests = [json.loads((made[n] / "variant.json").read_text()) for n in (1, 2)]
    assert [m["status"] for m in manifests] == ["ok", "ok"] and manifests[0]["recipe"] == manifests[1]["recipe"]
    if one is not None:
        assert one.keys() == two.keys()
        assert all(torch.allclose(one[k].float(), two[k].float(), atol=1e-3) for k in one)
    assert sorted(p.name for p in made[1].iterdir()) == sorted(p.name for p in made[2].iterdir())
    compared = [
        {r["name"]: r for r in json.loads((made[n].parent.parent / "compare.json").read_text())["models"]} for n in (1, 2)
    ]
    assert compared[0].keys() == compared[1].keys() >= {"teacher", "student", "slim", "tfidf-baseline"}
    for name, row in compared[0].items():  # the same models give the same scores; the healed one nearly so
        for key in ("accuracy", "macro_f1", "agreement"):
            assert compared[1][name][key] == pytest.approx(row[key], abs=1e-6 if name != "slim" else 0.05), (name, key)
    assert compared[1]["slim"]["throughput"] > 0 and compared[1]["slim"]["size_bytes"] == compared[0]["slim"]["size_bytes"]


def test_two_processes_measure_a_run_as_one_does(setup):
    """Each process measures its part of the test split; the scores are the same as one process's, and the speeds
    are the main process's alone, measured on a quiet machine."""
    reports = {}
    for processes in (1, 2):
        run = setup["tmp"] / f"measured-{processes}"
        shutil.copytree(setup["one"], run)
        done = run_in(processes, {"evaluate": str(run)}, setup["tmp"])
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("measured") == processes
        reports[processes] = {row["name"]: row for row in json.loads((run / "eval.json").read_text())["models"]}
    assert reports[1].keys() == reports[2].keys() >= {"teacher", "student", "majority-baseline", "tfidf-baseline"}
    for name, row in reports[1].items():
        other = reports[2][name]
        for key in ("accuracy", "macro_f1", "agreement", "hand_over_threshold", "student_share"):
            if row.get(key) is not None:
                assert other[key] == pytest.approx(row[key], abs=1e-6), (name, key)
        if name in ("teacher", "student"):
            assert other["latency_ms"] > 0 and other["throughput"] > 0 and other["size_bytes"] == row["size_bytes"]
            assert other["energy_wh_per_1000"] > 0 and other["energy_basis"]  # measured alone too, as the speeds are


def test_a_machine_with_gpus_runs_at_most_one_process_per_gpu():
    """NCCL refuses two processes on one GPU: a job asks for N, a machine with fewer GPUs runs one per GPU."""
    from studio.jobs.launch import processes_for

    assert [processes_for(4, gpus=2), processes_for(1, gpus=8), processes_for(0, gpus=4), processes_for(0, gpus=1)] == [
        2,
        1,
        4,
        1,
    ]
    assert processes_for(2, gpus=0) == 2  # on CPUs, as asked
