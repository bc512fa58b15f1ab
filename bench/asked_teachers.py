"""What asking a local text generator costs here: each catalog text generator asked about 200 test tickets.

    python bench/asked_teachers.py

For each teacher, in a fresh process (so its memory is its own): the seconds to load it, minutes per 1,000
texts asked (the prompt of the studio's asked teacher, one labelled example a label, the shared part cached),
the process's peak memory, and the macro-F1 of its answers on those 200 tickets (zero-shot and one example a
label). Results go to bench/results/asked_teachers.json; every figure is measured in this run.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = 200


def measure(key: str, out) -> None:
    import torch
    from sklearn.metrics import f1_score

    from studio.asked_teacher import AskedTeacher, ask, pick_examples, scorer_for
    from studio.logs import quiet_terminal

    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    torch.set_num_threads(torch.get_num_threads())
    rows = list(csv.DictReader((ROOT / "studio" / "samples" / "support_tickets.csv").open(encoding="utf-8")))
    random.Random(0).shuffle(rows)
    rows = [{"text": r["text"], "label": r["category"]} for r in rows]
    labels = sorted({r["label"] for r in rows})
    train, test = rows[:120], rows[1000 : 1000 + TEXTS]
    truth = [labels.index(r["label"]) for r in test]
    started = time.perf_counter()
    scorer = scorer_for(AskedTeacher(key, labels))
    load_s = time.perf_counter() - started
    found = {"teacher": key, "load_seconds": round(load_s, 1)}
    for shots in (0, 1):
        teacher = AskedTeacher(key, labels, examples=pick_examples(train, labels, shots))
        started = time.perf_counter()
        said = ask(teacher, [r["text"] for r in test], scorer).argmax(-1).tolist()
        seconds = time.perf_counter() - started
        found[f"{shots}_examples"] = {
            "macro_f1": round(f1_score(truth, said, average="macro"), 3),
            "minutes_per_1000_texts": round(seconds / len(test) * 1000 / 60, 2),
        }
    found["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.put(found)


def main() -> None:
    from studio.teacher import CATALOG
    from studio.teacher_cost import machine
    from studio.words import Task

    results = {"machine": machine(), "texts": TEXTS, "teachers": []}
    context = multiprocessing.get_context("spawn")
    for key, entry in CATALOG.items():
        if entry.task != Task.CAUSAL_LM:
            continue
        queue = context.Queue()
        worker = context.Process(target=measure, args=(key, queue))
        worker.start()
        found = queue.get()
        worker.join()
        found["params_millions"] = entry.params_millions
        print(json.dumps(found), flush=True)
        results["teachers"].append(found)
    (ROOT / "bench" / "results" / "asked_teachers.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
