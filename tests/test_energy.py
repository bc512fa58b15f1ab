"""Energy and cost per 1,000 answers, and per training run (studio.energy): read through CodeCarbon, offline, with
its basis in words; every model measured the same way; a distillation job's energy reaches the Compare step."""

import json
import os
import shutil
import time
from glob import glob
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.charts import Budget, energy_figure, recommend
from studio.energy import MIN_SECONDS, Energy, EnergyMeter, basis_of, machine_cost, metered
from studio.metrics import ANSWER_TOKENS, ModelMetrics


def counters_readable() -> bool:
    """Whether this machine lets a user read power counters (RAPL energy files, or an NVIDIA GPU)."""
    rapl = glob("/sys/class/powercap/intel-rapl*/energy_uj") + glob("/sys/class/powercap/intel-rapl*/*/energy_uj")
    return any(os.access(path, os.R_OK) for path in rapl) or shutil.which("nvidia-smi") is not None


def test_a_busy_second_uses_energy_and_says_whether_it_was_measured(tmp_path, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)  # CodeCarbon's default output folder: nothing may land there
    with EnergyMeter() as meter:
        end = time.perf_counter() + 1.2
        while time.perf_counter() < end:
            pass
    energy = meter.reading
    assert energy is not None and energy.seconds >= 1.2 and energy.wh > 0
    assert 0.1 < energy.watts < 5000  # a machine, not a rounding error nor a power station
    if counters_readable():
        assert energy.from_counters == energy.basis.startswith(("measured", "partly measured"))
    else:  # this VM: no counters, so the figure must say it is an estimate and why
        assert not energy.from_counters and energy.basis.startswith("estimated, not measured: CPU from the machine's load")
        assert "no power counters" in energy.basis or "not readable" in energy.basis
    assert "memory" in energy.basis and list(here.iterdir()) == []


READ_ONCE = """
import json, sys, time
from codecarbon.core import hardware_cache
from studio.energy import EnergyMeter, Rating
with EnergyMeter() as meter:
    time.sleep(0.2)
print(json.dumps({"basis": meter.reading.basis, "remembered": isinstance(hardware_cache._tdp, Rating)}))
"""


def test_the_cpus_rating_is_looked_up_once_per_machine_and_read_back_after(tmp_path):
    """A job's process meets a CPU the studio has seen before: CodeCarbon's 2 s look-up is not repeated, and the
    basis of the figure is the same as when it was looked up."""
    import subprocess
    import sys

    kept = tmp_path / "cache" / "cpu-ratings.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "SLM_STUDIO_CACHE": str(kept.parent)}
    said = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", READ_ONCE], env=env, capture_output=True, text=True, check=True
            ).stdout.splitlines()[-1]
        )
        for _ in range(2)
    ]
    if not kept.exists():  # RAPL counters: CodeCarbon reads them and never asks for a rating
        assert counters_readable() and not any(s["remembered"] for s in said)
        return
    assert [s["remembered"] for s in said] == [False, True] and said[0]["basis"] == said[1]["basis"]
    ((key, rating),) = json.loads(kept.read_text()).items()
    assert "codecarbon" in key and rating["model"] and "tdp" in rating


def test_the_basis_says_measured_only_for_what_counters_read():
    """CodeCarbon's hardware objects, as its tracker leaves them on a machine with counters (stand-ins by class name:
    this machine has none to read)."""

    class CPU:
        _mode, _tdp = "intel_rapl", 65

    class RAM:
        _force_ram_power = None

        def total_power(self):
            return SimpleNamespace(W=10.0)

    class GPU:
        pass

    assert basis_of([RAM(), CPU()]) == ("partly measured: CPU from its RAPL power counters; memory 10 W from its size", True)
    basis, counters = basis_of([RAM(), GPU(), SimpleNamespace(**{})])  # a GPU read, a part no one knows: not all read
    assert basis.startswith("partly measured: GPU from its driver's power readings (NVML or AMD SMI)") and not counters
    cpu = CPU()
    cpu._mode = "cpu_load"
    cpu._is_generic_tdp = True
    basis, counters = basis_of([RAM(), cpu])
    assert basis.startswith("estimated, not measured: CPU from the machine's load × 65 W (CodeCarbon's generic figure")
    assert not counters


def test_work_too_short_to_read_is_repeated_until_it_can_be_read():
    calls = []
    result, seconds, energy = metered(lambda: calls.append(1) or "answer")
    assert result == "answer" and seconds < 0.05 and len(calls) > 1  # the first run's result and time are kept
    assert energy.seconds >= MIN_SECONDS and energy.wh > 0 and energy.over(3600) == pytest.approx(energy.watts)


def test_cost_is_hours_times_the_price_and_energy_is_power_times_time():
    assert machine_cost(3600, 0.10) == pytest.approx(0.10)  # 1,000 answers in an hour cost an hour
    assert machine_cost(36, 2.0) == pytest.approx(0.02)
    metrics = ModelMetrics("m", 1, 1, 1.0, 250.0)
    metrics.add_energy(Energy(wh=0.01, seconds=2.0, basis="estimated, not measured: x", from_counters=False), 250.0)
    assert metrics.seconds_per_1000 == pytest.approx(4.0)  # 1,000 answers at 250 a second
    assert metrics.energy_wh_per_1000 == pytest.approx(18.0 * 4.0 / 3600)  # 18 W for 4 s
    assert metrics.energy_basis.startswith("estimated")
    unused = ModelMetrics("other process", 1, 1, 1.0, 0.0)
    unused.add_energy(None, 0.0)  # a process whose speed is not used has no figure, and no error
    assert unused.energy_wh_per_1000 is None and unused.seconds_per_1000 is None


ROWS = [
    {"name": "teacher", "status": "ok", "macro_f1": 0.9, "size_bytes": 9e7, "latency_ms": 6.0, "throughput": 50.0},
    {"name": "student", "status": "ok", "macro_f1": 0.88, "size_bytes": 2e7, "latency_ms": 2.0, "throughput": 400.0},
    {"name": "tfidf-baseline", "status": "ok", "macro_f1": 0.5, "size_bytes": 1e6, "latency_ms": 0.1, "throughput": 9e4},
    {"name": "bnb-nf4", "status": "unsupported", "note": "needs a GPU"},
]
BASIS = "estimated, not measured: CPU from the machine's load × 8 W; memory 20 W from its size"
for each in ROWS[:3]:
    each |= {"seconds_per_1000": 1000 / each["throughput"], "energy_basis": BASIS}
    each["energy_wh_per_1000"] = 28.0 * each["seconds_per_1000"] / 3600


def test_the_energy_chart_shows_every_measured_model_its_cost_and_its_basis():
    fig = energy_figure(ROWS, price_per_hour=0.10)
    (bars,) = fig.data
    assert list(bars.x) == ["teacher", "student", "tfidf-baseline"]  # nothing for a variant that was not made
    assert bars.y[0] == pytest.approx(28.0 * 20 / 3600) and bars.text[0] == "0.156 Wh · $0.0006"  # 20 s at $0.10/h
    assert bars.marker.color[2] != bars.marker.color[1]  # a baseline in its own colour
    assert fig.layout.yaxis.type == "log"  # 1,800 times apart
    assert "estimated, not measured" in fig.layout.annotations[0].text
    assert "0.10 an hour" in fig.layout.title.text
    assert energy_figure(ROWS).data[0].text[1] == "0.0194 Wh"  # no price, no cost


def test_the_recommendation_says_what_1000_answers_of_its_pick_cost():
    rec = recommend(ROWS, Budget(price_per_hour=0.10))
    assert rec.name == "teacher"
    assert "1,000 answers use about 0.156 Wh (estimated, not measured) and cost $0.0006 at $0.10 an hour" in rec.reason
    assert "cost" not in recommend(ROWS, Budget()).reason


def test_a_text_generator_answer_is_a_generation_of_answer_tokens(tiny_llama, samples, tmp_path):
    from studio.dataset import prepare_dataset
    from studio.evaluate import evaluate_causal_lm
    from studio.models import load_causal_lm, load_tokenizer
    from studio.teacher import resolve_source

    records = prepare_dataset(samples / "shop_faq.jsonl", tmp_path / "faq").split("train")[:4]
    source = resolve_source(str(tiny_llama))
    metrics, _ = evaluate_causal_lm("lm", load_causal_lm(source), load_tokenizer(source), records, size_bytes=1)
    assert metrics.seconds_per_1000 == pytest.approx(1000 * ANSWER_TOKENS / metrics.generation_tokens_per_s)
    assert metrics.energy_wh_per_1000 > 0 and metrics.energy_basis


def test_a_distillation_job_records_its_energy_and_compare_shows_it(samples, tmp_path, tiny_bert):
    from storage import jobs as job_rows
    from storage import records
    from storage.config import open_storage
    from studio.jobs import service
    from studio.jobs.runner import run_claimed
    from studio.ui.compare_step import COLUMNS, comparison
    from studio.ui.context import UIContext

    storage = open_storage()
    me = records.local_user(storage.db)
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:161]) + "\n")
    dataset = service.add_dataset(storage, me, data)
    settings = {"teacher": str(tiny_bert), "student_layers": 1, "epochs": 1, "teacher_epochs": 1, "max_length": 32}
    settings |= {"min_steps": 0, "max_steps": 2, "teacher_learning_rate": 1e-3, "batch_size": 16, "trim_vocab": False}
    job = service.submit(storage, me, "distill", {"dataset_id": dataset, "distill": settings})
    job_rows.claim(storage.db, job, "here:1")
    status = run_claimed(storage, job)
    with storage.db.session() as s:
        assert status == "done", job_rows.get(s, me, job).error
    with storage.db.session() as s:
        folder = storage.store.resolve(job_rows.get(s, me, job).folder)
    report = json.loads((folder / "eval.json").read_text())
    trained = json.loads((folder / "config.json").read_text())["training_energy"]
    assert report["training_energy"] == trained and trained["wh"] > 0 and trained["seconds"] > 0
    for row in report["models"]:  # teacher, student and both baselines, measured the same way
        assert row["energy_wh_per_1000"] > 0 and row["seconds_per_1000"] == pytest.approx(1000 / row["throughput"])
        assert row["energy_basis"].startswith(("estimated", "measured", "partly measured"))

    advice, table, *_, energy_chart, energy_note = comparison(UIContext(storage), me, job, 0, 0, 0, 0.5)[:8]
    rows = [dict(zip([c for c, _ in COLUMNS], r)) for r in table]
    student = next(r for r in rows if r["name"].removeprefix("★ ").split(" (")[0] == "student")
    seconds = next(m for m in report["models"] if m["name"] == "student")["seconds_per_1000"]
    assert student["cost"] == pytest.approx(seconds / 3600 * 0.5, rel=0.01)  # stored time × the price typed
    assert student["energy_wh_per_1000"] > 0
    assert {"teacher", "student"} <= set(energy_chart.data[0].x)
    assert energy_note.startswith("Training this run used about ") and trained["basis"] in energy_note
