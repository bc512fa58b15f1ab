"""Few labels, many texts: how much the teacher's answers on the unlabelled texts give the student.

    python bench/unlabelled.py                      # tickets and BBC News (about 40 min on a 2-core CPU)
    python bench/unlabelled.py --only tickets
    python bench/unlabelled.py --only tickets --share 0.02 --rows abc   # about 50 labels, 2,300 texts without

Each dataset is checked once (80/10/10, stratified). Then 5 % of the training and validation labels are kept
(stratified, seeded) and the other training texts become texts without a label; the test split stays whole,
so every row below is measured on the same test texts:

    (a) student trained on the 5 % only (the teacher fine-tuned on them, nothing else)
    (b) as (a), plus the teacher's answers on the texts without a label (the studio's default)
    (b2) as (b), the teacher's answers below --min-confidence left out (when given)
    (c) as (b), then two rounds of active learning: the 20 texts each run asks about (studio.labelling: teacher
        and student disagree, or the teacher is least sure) are labelled with their true labels and the run
        starts again on the dataset with them (minutes: (b) and both rounds, the whole cost of getting there)
    (d) student trained on 100 % of the labels (the ceiling)
    (e) a zero-shot SmolLM2-135M-Instruct teacher (teacher_training 'ask', no examples) -> student; (e2) the same
        teacher shown one labelled text a label
    (f) TF-IDF + logistic regression on the 5 %

Every run uses the browser's Fastest preset (2-layer student, 150 steps at least, teacher learning rate 1e-4)
on MiniLM-L6. "Gap closed" is (row - a) / (d - a) in macro-F1. Minutes are wall-clock on this machine (all its
cores); "teacher answers, minutes per 1,000 texts" is the time the teacher took to answer the training texts.
Every figure printed is measured in this run; results go to bench/results/unlabelled.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import bbc_rows, write_csv  # noqa: E402

from studio.baselines import TFIDF  # noqa: E402
from studio.dataset import load_prepared, prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_run  # noqa: E402
from studio.labelling import read_questions, with_answers  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402
from studio.teacher_cost import machine  # noqa: E402
from studio.unlabelled import same_text  # noqa: E402

SHARE = 0.05
FASTEST = {"student_layers": 2, "min_steps": 150, "teacher_learning_rate": 1e-4}


def keep_few(full: Path, out: Path, share: float, seed: int = 13) -> Path:
    """A copy of a checked dataset with ``share`` of its training and validation labels (at least 2 a label in
    training, 1 in validation); the other training texts become texts without a label; the test split is kept."""
    shutil.copytree(full, out)
    report = json.loads((out / "report.json").read_text())
    rng = random.Random(seed)
    kept_sizes = {}
    for split, least in (("train", 2), ("validation", 1)):
        rows = [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        by_label = defaultdict(list)
        for row in rows:
            by_label[row["label"]].append(row)
        kept, rest = [], []
        for label_rows in by_label.values():
            rng.shuffle(label_rows)
            n = max(least, round(share * len(label_rows)))
            kept += label_rows[:n]
            rest += label_rows[n:]
        rng.shuffle(kept)
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        kept_sizes[split] = len(kept)
        if split == "train":
            texts = "".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n" for r in rest)
            (out / "unlabelled.jsonl").write_text(texts, encoding="utf-8")
            report["unlabelled"] = len(rest)
    report["split_sizes"] = {**report["split_sizes"], **kept_sizes}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return out


def run(name: str, data: Path, work: Path, **settings) -> dict:
    config = DistillConfig.from_dict({**DistillConfig().to_dict(), **FASTEST, **settings})
    folder = work / name
    started = time.perf_counter()
    result = distill(config, load_prepared(data), folder)
    report = evaluate_run(folder)
    minutes = (time.perf_counter() - started) / 60
    rows = {m["name"]: m for m in report["models"]}
    plan = json.loads((folder / "config.json").read_text())["plan"]
    texts = plan["texts"] + plan.get("texts_unlabelled_read", 0)
    return {
        "student": {k: rows["student"][k] for k in ("macro_f1", "accuracy")},
        "teacher": {k: rows["teacher"][k] for k in ("macro_f1", "accuracy")},
        "tfidf": {k: rows[TFIDF][k] for k in ("macro_f1", "accuracy")},
        "student_validation_macro_f1": plan["stages"]["student"].get("best_validation"),
        "minutes": round(minutes, 2),
        "teacher_answers_minutes_per_1000_texts": round(result.cache_seconds / 60 / max(1, texts) * 1000, 2),
        "texts_unlabelled": plan.get("texts_unlabelled", 0),
        "steps": {k: v.get("steps") for k, v in plan["stages"].items()},
    }


def active_rounds(few: Path, full: Path, work: Path, rounds: int = 2) -> list[dict]:
    """(c): after run (b), the questions each run asks are answered with the true labels (a user who knows them),
    moved into the training split (studio.labelling.with_answers, as the page does) and the run starts again."""
    truth = {same_text(r["text"]): r["label"] for r in load_prepared(full).split("train")}
    done, data, asked_by = [], few, work / "b"
    for n in range(1, rounds + 1):
        labels, questions = read_questions(asked_by)
        answers = {q.text: truth[same_text(q.text)] for q in questions}
        data = few.with_name(f"{few.name}-round{n}")
        with_answers(few if n == 1 else few.with_name(f"{few.name}-round{n - 1}"), data, answers, labels)
        row = run(f"c{n}", data, work)
        row["labels_added"] = len(answers)
        done.append(row)
        asked_by = work / f"c{n}"
    return done


def bench(name: str, source: Path, work: Path, least: float = 0.0, share: float = SHARE, which: str = "abcdef") -> dict:
    full = prepare_dataset(source, work / f"{name}-full").path
    few = keep_few(full, work / f"{name}-few", share)
    sizes = json.loads((few / "report.json").read_text())
    print(f"{name}: {sizes['split_sizes']['train']} labelled training texts, {sizes['unlabelled']} without a label", flush=True)
    rows = {"a_few_labels_only": run("a", few, work / name, unlabelled=False)}
    if "b" in which or "c" in which:
        rows["b_teacher_answers_the_rest"] = run("b", few, work / name)
    if least:
        rows[f"b2_answers_at_least_{least:g}"] = run("b2", few, work / name, unlabelled_min_confidence=least)
    if "c" in which:
        rounds = active_rounds(few, full, work / name)
        rows["c_two_rounds_of_20_labels"] = {
            **rounds[-1],
            "minutes": round(rows["b_teacher_answers_the_rest"]["minutes"] + sum(r["minutes"] for r in rounds), 2),
            "round_1": rounds[0],
        }
    if "d" in which:
        rows["d_all_labels"] = run("d", full, work / name)
    for key, shots in (("e_zero_shot_smollm2_teacher", 0), ("e2_one_example_a_label_smollm2_teacher", 1)):
        if "e" in which:
            rows[key] = run(key[:2], few, work / name, teacher="smollm2-135m", teacher_training="ask", prompt_examples=shots)
    rows["f_tfidf_on_few"] = {**rows["a_few_labels_only"]["tfidf"], "minutes": None}
    a = rows["a_few_labels_only"]["student"]["macro_f1"]
    d = rows["d_all_labels"]["student"]["macro_f1"] if "d_all_labels" in rows else None
    gaps = {}
    for key, row in rows.items():
        f1 = row.get("student", row)["macro_f1"]
        gaps[key] = (f1 - a) / (d - a) if d is not None and d != a else None
        closed = f"  gap closed {gaps[key]:.0%}" if gaps[key] is not None else ""
        print(f"  {key:40s} macro-F1 {f1:.3f}{closed}  minutes {row['minutes']}", flush=True)
    return {
        "labelled": sizes["split_sizes"],
        "unlabelled": sizes["unlabelled"],
        "rows": rows,
        "gap_closed": gaps,
        "gap_closed_b": gaps.get("b_teacher_answers_the_rest"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=["tickets", "bbc-news"], default=["tickets", "bbc-news"])
    parser.add_argument("--min-confidence", type=float, default=0.0, help="also run (b2) with this confidence floor")
    parser.add_argument("--share", type=float, default=SHARE, help="the share of labels kept (0.05)")
    parser.add_argument("--rows", default="abcdef", help="the rows to run, e.g. 'abc' ((a) and (f) always run)")
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    work = Path(tempfile.mkdtemp(prefix="slm-unlabelled-"))
    sources = {"tickets": ROOT / "studio" / "samples" / "support_tickets.csv"}
    if "bbc-news" in args.only:
        sources["bbc-news"] = write_csv(work / "bbc.csv", bbc_rows())
    out = {"machine": machine(), "share": args.share, "preset": FASTEST, "datasets": {}}
    for name in args.only:
        out["datasets"][name] = bench(name, sources[name], work, args.min_confidence, args.share, args.rows)
        suffix = f"-min{args.min_confidence:g}" if args.min_confidence else ""
        suffix += f"-share{args.share:g}" if args.share != SHARE else ""
        (ROOT / "bench" / "results" / f"unlabelled{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
