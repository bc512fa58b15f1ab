"""Requests a second and p50/p95 latency of served models under 1, 8 and 32 concurrent clients, with and without
dynamic batching, and the energy of 1,000 answers, on this machine (issue 19).

    python bench/serve.py                  # distil a short run; 2 servers x 3 models (+ hybrid) x 1/8/32 clients, 10 s each
    python bench/serve.py --run RUN        # reuse the run folder an earlier run printed: no distillation
    python bench/serve.py --quick          # 1 s cells, 1 and 8 clients, a 10-step run: checks that it works

The run is made by the studio's own code: the bundled MiniLM-L6 teacher fine-tuned on the support tickets and a
3-layer student distilled from it, each for a few steps only (speed is measured here, not quality: a model's cost
does not depend on how well it learned), evaluated (so the student's hand-over threshold exists), and an int8 variant
of the student. It is recorded as a finished job in a fresh studio home; the student, the int8 variant and the
teacher are served with the hybrid off by `create_serving_app` under uvicorn in a thread, once with batching and once
without. The hybrid's cost is a row of its own: the student with the hybrid on, and the share of texts its teacher
answered (that share depends on how well the student learned). Its threshold is the run's own when that sends some
tickets to the teacher, else the student's median confidence on them (the teacher answers about half), and the bench
says which: a short run's threshold may send none, and the row would then be the student alone.

A cell: N clients each send one short ticket a request, the next as soon as the answer comes, for a fixed time after
a warm-up; requests a second count the answers finished inside that time, latency is what the client sees. The
clients are asyncio tasks over one aiohttp session in a child process (so they do not hold the server's GIL), on the
same cores as the server: their CPU share is printed. (httpx's client, first used here, took 3-8 times the CPU: 34-84 %
of a core for the int8 cells, which starved the server it measured and most of all under batching, whose answers
come 16 at a time: the int8 row read 141 req/s with p95 683 ms where aiohttp's read 254 and 144 ms, same server.)
Energy of 1,000 answers, in each cell at the most clients: studio.energy
(CodeCarbon) around the cell, for the whole machine (the clients included), its average power times the time 1,000
answers take at the cell's rate; its basis is printed, so an estimate never passes for a measurement.
Writes bench/results/serve.json. Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.logs import quiet_libraries, quiet_terminal  # noqa: E402

quiet_libraries(ROOT / "bench" / "results" / "libraries.log")  # before the imports below load bitsandbytes (it warns then)

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from bench.distill import TICKETS, machine  # noqa: E402
from storage import jobs as job_rows  # noqa: E402
from storage import records  # noqa: E402
from storage import serving as served_rows  # noqa: E402
from storage.config import Storage, StorageConfig, open_storage  # noqa: E402
from storage.db import sqlite_url  # noqa: E402
from storage.jobs import Viewer  # noqa: E402
from studio.compress.pipeline import compress_many, parse_recipe  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.energy import EnergyMeter  # noqa: E402
from studio.evaluate import evaluate_run  # noqa: E402
from studio.jobs import service  # noqa: E402
from studio.models import load_tokenizer  # noqa: E402
from studio.serve import engine  # noqa: E402
from studio.serve.api import create_serving_app  # noqa: E402
from studio.teacher import resolve_source  # noqa: E402

TICKETS_CSV = ROOT / "studio" / "samples" / "support_tickets.csv"
TEXTS = 300
"""Tickets the clients send (the file's first rows), one a request, round and round."""
MODELS = ("student", "int8", "teacher")
"""Served with the hybrid off: what each model costs alone."""
HYBRID = "student-hybrid"
"""The student with the hybrid on (batching on): what asking the teacher for the unsure texts costs."""
TARGET_SPEEDUP, TARGET_P95_MS, TARGET_BATCHING = 5.0, 100.0, 2.0

LOAD = r"""
import asyncio, json, sys, time
import aiohttp

url, texts, clients, warm_s, seconds, hybrid = json.loads(sys.stdin.read())
said = {"latencies": [], "codes": {}, "teacher": 0, "first_error": ""}
bodies = [json.dumps({"text": t}).encode() for t in texts]
headers = {"Content-Type": "application/json"}


async def main():
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as client:
        start = time.perf_counter() + warm_s
        end = start + seconds
        cpu = []

        async def one(k):
            while time.perf_counter() < end:
                sent = time.perf_counter()
                body = None
                try:
                    async with client.post(url, data=bodies[k % len(bodies)], headers=headers) as answer:
                        code = str(answer.status)
                        body = await answer.read()
                except aiohttp.ClientError as err:
                    code = type(err).__name__
                done = time.perf_counter()
                k += clients
                if not start <= done < end:
                    continue
                said["codes"][code] = said["codes"].get(code, 0) + 1
                if code == "200":
                    said["latencies"].append(done - sent)
                    said["teacher"] += bool(hybrid and json.loads(body)["teacher_answered"])
                elif not said["first_error"]:
                    said["first_error"] = body.decode(errors="replace")[:300] if body is not None else code

        async def clock():
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            cpu.append(time.process_time())
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            cpu.append(time.process_time())

        await asyncio.gather(clock(), *(one(i) for i in range(clients)))
        said["client_cpu_s"] = cpu[1] - cpu[0]


asyncio.run(main())
print(json.dumps(said))
"""
"""The load generator, run in a child process: it prints what it saw inside the measured window as one JSON line."""


# --------------------------------------------------------------------------- the run and its deployments


def make_run(work: Path, steps: int) -> Path:
    """A short classification run in ``work/run``: teacher and student ``steps`` optimizer steps each."""
    dataset = prepare_dataset(TICKETS_CSV, work / "tickets")
    config = DistillConfig(**TICKETS, student_layers=3, max_steps=steps)
    distill(config, dataset, work / "run")
    return work / "run"


def complete(run: Path) -> None:
    """The student's hand-over threshold (eval.json) and the int8 variant, unless the run has them."""
    if not (run / "eval.json").exists():
        evaluate_run(run)
    if not (run / "variants" / "int8").exists():
        compress_many(run, [("int8", parse_recipe("int8"))])


def finished_job(storage: Storage, viewer: Viewer, run: Path) -> int:
    """The run recorded as a finished distillation, its folder a copy of ``run`` in the store."""
    job = job_rows.submit(storage.db, viewer.user_id, "distill", {"dataset_id": 0, "distill": {}})
    assert job_rows.claim(storage.db, job.id, "bench")
    job_rows.finish(storage.db, job.id, "done")
    shutil.copytree(run, storage.store.resolve(job.folder))
    return job.id


class Server:
    """``create_serving_app`` under uvicorn in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, storage: Storage, batching: bool) -> None:
        self.app, self.serving = create_serving_app(storage, hosted=False, batching=batching)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def classify_url(self, name: str) -> str:
        return f"{self.url}/api/v1/models/{name}/classify"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def check_served(server: Server, names: list[str], text: str) -> dict:
    """Every model loaded and answering (one request each); what the hybrid deployment says of itself."""
    server.serving.warm().join()
    said = {}
    for name in names:
        answer = httpx.post(server.classify_url(name), json={"text": text}, timeout=300)
        if answer.status_code != 200:
            raise SystemExit(f"{name} did not answer: {answer.status_code} {answer.text[:500]}")
        said[name] = answer.json()
    return said


# --------------------------------------------------------------------------- the load and what it measured


def load(url: str, texts: list[str], clients: int, warm_s: float, seconds: float, hybrid: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD],
        input=json.dumps([url, texts, clients, warm_s, seconds, hybrid]),
        capture_output=True,
        text=True,
        timeout=warm_s + seconds + 600,
    )
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def percentile_ms(latencies: list[float], q: int) -> float | None:
    if not latencies:
        return None
    if len(latencies) == 1:
        return latencies[0] * 1000
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000


def measure(url: str, texts: list[str], clients: int, warm_s: float, seconds: float, hybrid: bool, metered: bool) -> dict:
    """One cell: the load for ``seconds`` after ``warm_s``; with ``metered``, the energy of the whole cell."""
    if metered:
        with EnergyMeter() as meter:
            said = load(url, texts, clients, warm_s, seconds, hybrid)
        energy = meter.reading
    else:
        said, energy = load(url, texts, clients, warm_s, seconds, hybrid), None
    answers = len(said["latencies"])
    rate = answers / seconds
    row = {
        "clients": clients,
        "requests_per_s": rate,
        "p50_ms": percentile_ms(said["latencies"], 50),
        "p95_ms": percentile_ms(said["latencies"], 95),
        "answers": answers,
        "rejected_429": said["codes"].get("429", 0),
        "errors": sum(n for code, n in said["codes"].items() if code not in ("200", "429")),
        "first_error": said["first_error"],
        "client_cpu_share": said["client_cpu_s"] / seconds / (os.cpu_count() or 1),
    }
    if hybrid:
        row["teacher_share"] = said["teacher"] / answers if answers else None
    if energy is not None:
        row["energy"] = energy.to_dict()
        row["watts"] = energy.watts
        # the cell's average power over the time 1,000 answers take at its rate (studio.energy's way: Energy.over)
        row["wh_per_1000"] = energy.over(1000 / rate) if rate else None
    return row


def texts_sent(run: Path) -> tuple[list[str], dict]:
    """The tickets the clients send, and how short they are (characters and the student's tokens)."""
    with TICKETS_CSV.open(encoding="utf-8", newline="") as f:
        texts = [row["text"] for _, row in zip(range(TEXTS), csv.DictReader(f))]
    tokenizer = load_tokenizer(resolve_source(str(run / "student")))
    tokens = [len(tokenizer(text)["input_ids"]) for text in texts]
    return texts, {
        "count": len(texts),
        "median_chars": statistics.median(len(t) for t in texts),
        "median_tokens": statistics.median(tokens),
        "max_tokens": max(tokens),
    }


# --------------------------------------------------------------------------- the table and the targets


def cell_of(cells: list[dict], model: str, batching: bool, clients: int) -> dict | None:
    return next((c for c in cells if c["model"] == model and c["batching"] == batching and c["clients"] == clients), None)


def show(cells: list[dict]) -> None:
    def number(value, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    print(
        f"\n{'model':15} {'batching':>8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'429':>5} {'errors':>6} "
        f"{'client CPU':>10} {'W':>6} {'Wh / 1,000':>10} {'teacher':>8}"
    )
    for c in cells:
        print(
            f"{c['model']:15} {'on' if c['batching'] else 'off':>8} {c['clients']:>7} {c['requests_per_s']:8.1f} "
            f"{number(c['p50_ms']):>8} {number(c['p95_ms']):>8} {c['rejected_429']:>5} {c['errors']:>6} "
            f"{c['client_cpu_share']:>10.0%} {number(c.get('watts')):>6} {number(c.get('wh_per_1000'), 4):>10} "
            f"{'-' if c.get('teacher_share') is None else format(c['teacher_share'], '.0%'):>8}"
        )
        if c["first_error"]:
            print(f"    first error: {c['first_error']}")


def judge(cells: list[dict], clients: int) -> dict:
    """The issue's targets at ``clients`` (32 in a full run), each with its numbers and whether it was met."""
    out: dict = {"at_clients": clients}
    int8, teacher = cell_of(cells, "int8", True, clients), cell_of(cells, "teacher", True, clients)
    if int8 and teacher and teacher["requests_per_s"]:
        ratio = int8["requests_per_s"] / teacher["requests_per_s"]
        p95 = int8["p95_ms"]
        out["int8_vs_teacher"] = {
            "ratio": ratio,
            "int8_p95_ms": p95,
            "met": ratio >= TARGET_SPEEDUP and p95 is not None and p95 < TARGET_P95_MS,
        }
    out["batching"] = {}
    for model in MODELS:
        on, off = cell_of(cells, model, True, clients), cell_of(cells, model, False, clients)
        if on and off and off["requests_per_s"]:
            ratio = on["requests_per_s"] / off["requests_per_s"]
            out["batching"][model] = {"ratio": ratio, "met": ratio >= TARGET_BATCHING}
    return out


def say_targets(targets: dict) -> None:
    at = targets["at_clients"]
    print(f"\nTargets (issue 19) at {at} clients" + ("" if at == 32 else " (they are stated at 32 clients)"))
    if "int8_vs_teacher" in targets:
        t = targets["int8_vs_teacher"]
        p95 = "-" if t["int8_p95_ms"] is None else f"{t['int8_p95_ms']:.0f} ms"
        print(
            f"  int8 student >= {TARGET_SPEEDUP:g}x the teacher's requests/s with p95 < {TARGET_P95_MS:g} ms (batching on): "
            f"{t['ratio']:.2f}x, p95 {p95}: {'met' if t['met'] else 'NOT met'}"
        )
    for model, t in targets["batching"].items():
        print(
            f"  batching >= {TARGET_BATCHING:g}x the requests/s of no batching, {model}: {t['ratio']:.2f}x: "
            f"{'met' if t['met'] else 'NOT met'}"
        )


# --------------------------------------------------------------------------- the bench


def hybrid_threshold(run: Path, texts: list[str]) -> tuple[float | None, str]:
    """The hybrid row's hand-over threshold: the run's own when it sends some of these tickets to the teacher; else
    (a short run's threshold may send none) the student's median confidence on them, so that the row shows what the
    teacher costs when it answers about half. Returns (the deployment's threshold: None for the run's own, basis)."""
    student = engine.ServedModel(run, "student", None, False)
    sure = student._probabilities(student.main, texts).max(-1).values
    own = student.threshold
    if own is not None and bool((sure < own).any()):
        return None, f"the run's own ({own:.3f})"
    median = float(sure.median())
    return median, (
        f"the student's median confidence on these tickets ({median:.3f}): the run's own "
        f"({'none' if own is None else format(own, '.3f')}) sends none of them to the teacher"
    )


def serve_all(storage: Storage, job: int, texts: list[str], args: argparse.Namespace, run: Path) -> tuple[list[dict], dict]:
    me = records.local_user(storage.db)
    for model in MODELS:
        service.deploy(storage, me, job, model, model, False, None)
    threshold, basis = hybrid_threshold(run, texts)
    service.deploy(storage, me, job, "student", HYBRID, True, threshold)
    cells, hybrid = [], {}
    for batching in (True, False):
        server = Server(storage, batching)
        names = [*MODELS, HYBRID] if batching else list(MODELS)
        try:
            said = check_served(server, names, texts[0])
            if batching:
                model = server.serving.model(served_rows.find_served(storage.db, me, HYBRID))
                hybrid = {
                    "on": said[HYBRID]["hybrid"],
                    "threshold": said[HYBRID]["threshold"],
                    "threshold_basis": basis,
                    "why_not": model.why_no_hybrid,
                }
            for name in names:
                for clients in args.clients:
                    metered = clients == max(args.clients)
                    row = measure(server.classify_url(name), texts, clients, args.warmup, args.seconds, name == HYBRID, metered)
                    row = {"model": name, "batching": batching, **row}
                    cells.append(row)
                    print(
                        f"  {name:15} batching {'on ' if batching else 'off'} {clients:>3} clients: "
                        f"{row['requests_per_s']:7.1f} req/s, p95 {row['p95_ms'] or 0:6.1f} ms",
                        flush=True,
                    )
        finally:
            server.stop()
    return cells, hybrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished classification run to reuse (one this bench made, or any)")
    parser.add_argument("--work", type=Path, default=None, help="where the run and the studio home go (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="1 s cells, 1 and 8 clients, a 10-step run: does it work?")
    parser.add_argument("--clients", type=int, nargs="+", default=None, help="concurrent clients of each cell (1 8 32)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds of each cell (10)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before each cell is measured (2)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps of the teacher and of the student (100)")
    args = parser.parse_args()
    quick = {"clients": [1, 8], "seconds": 1.0, "warmup": 0.5, "steps": 10}
    full = {"clients": [1, 8, 32], "seconds": 10.0, "warmup": 2.0, "steps": 100}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    import torch

    work = args.work or Path(tempfile.mkdtemp(prefix="slm-bench-serve-"))
    print(f"machine: {machine()}; work in {work}", flush=True)
    started = time.perf_counter()
    if args.run is None:
        print(f"distilling: MiniLM-L6 -> 3 layers, {args.steps} steps each (speed is measured, not quality)", flush=True)
        args.run = make_run(work, args.steps)
    complete(args.run)
    print(f"run ready in {time.perf_counter() - started:.0f} s: {args.run} (reuse it with --run)", flush=True)

    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    storage = open_storage(StorageConfig(sqlite_url(home / "studio.db"), home / "artifacts"))
    job = finished_job(storage, records.local_user(storage.db), args.run)
    texts, shape = texts_sent(args.run)
    with EnergyMeter() as meter:  # the floor under every figure (and CodeCarbon's hardware look-up, done once)
        time.sleep(2)
    idle = meter.reading
    print(
        f"{shape['count']} tickets, median {shape['median_chars']:.0f} characters / {shape['median_tokens']:.0f} tokens; "
        f"server: torch {torch.get_num_threads()} threads, batches up to {engine.MAX_BATCH} (what queued meanwhile); "
        f"clients in one child process on the same {os.cpu_count()} cores; idle {idle.watts if idle else 0:.1f} W",
        flush=True,
    )
    cells, hybrid = serve_all(storage, job, texts, args, args.run)
    show(cells)
    basis = next((c["energy"]["basis"] for c in cells if "energy" in c), "not measured")
    print(f"energy at {max(args.clients)} clients, whole machine (clients included); basis: {basis}")
    shares = ", ".join(
        f"{c['teacher_share']:.0%} at {c['clients']} clients"
        for c in cells
        if c["model"] == HYBRID and c.get("teacher_share") is not None
    )
    if hybrid["on"]:
        print(f"hybrid ({HYBRID}): hand-over threshold {hybrid['threshold_basis']}; the teacher answered {shares}")
    else:
        print(f"hybrid ({HYBRID}): OFF, {hybrid['why_not']}: its row is the student alone")
    targets = judge(cells, max(args.clients))
    say_targets(targets)
    out = {
        "machine": machine(),
        "quick": args.quick,
        "run": str(args.run),
        "settings": {
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "steps": args.steps,
            "max_batch": engine.MAX_BATCH,
            "torch_threads": torch.get_num_threads(),
        },
        "texts": shape,
        "idle": idle.to_dict() if idle else None,
        "energy_basis": basis,
        "hybrid": hybrid,
        "cells": cells,
        "targets": targets,
        "notes": [
            "server (uvicorn in a thread) and clients (a child process) share this machine's cores",
            "the run is short: speeds, not quality; the hybrid's teacher share depends on the student's quality",
            "energy is the whole machine's over each cell at the most clients, clients included",
        ],
    }
    target = ROOT / "bench" / "results" / "serve.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwhole bench took {time.perf_counter() - started:.0f} s; written to {target}")


if __name__ == "__main__":
    main()
