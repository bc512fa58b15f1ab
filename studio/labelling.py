"""Label only what matters (active learning, classification with texts without a label).

    write_questions   at the end of a run: the texts without a label where the teacher and the student disagree,
                      taken in turn with those the teacher is least sure of, in questions.json
    read_questions    what the page shows
    with_answers      a copy of the dataset with the answered texts moved into its training split (validation and
                      test untouched: every round is measured on the same texts); the next round trains on it

The rounds themselves (which job's questions a dataset answered) are recorded in the dataset's report.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from studio.batches import encode_records, iter_batches, model_inputs
from studio.errors import ConfigError
from studio.run import write_json
from studio.unlabelled import FILE as UNLABELLED
from studio.unlabelled import same_text

QUESTIONS = 20
"""Texts put to the user each round: about what one sitting labels carefully."""
STUDENT_READS = 5000
"""Texts without a label the student answers for the ranking (a seeded sample when there are more)."""
FILE = "questions.json"


@dataclass
class Question:
    text: str
    teacher: str
    teacher_confidence: float
    student: str
    student_confidence: float
    why: str


def rank_questions(
    texts: list[str], teacher: torch.Tensor, student: torch.Tensor, labels: list[str], n: int = QUESTIONS
) -> list[Question]:
    """``teacher`` and ``student``: probabilities [N, C] for ``texts``. Disagreements (the least sure teacher
    first) alternate with the texts both agree on but the teacher is least sure of (smallest gap between its two
    likeliest labels); a text seen already (case and spacing aside), or much like one asked before it, is left
    for a later round."""
    top = teacher.topk(min(2, teacher.shape[1]), dim=-1).values
    margin = (top[:, 0] - top[:, -1]).tolist()
    t_label, s_label = teacher.argmax(-1).tolist(), student.argmax(-1).tolist()
    by_margin = sorted(range(len(texts)), key=lambda i: margin[i])
    disagree = [i for i in by_margin if t_label[i] != s_label[i]]
    unsure = [i for i in by_margin if t_label[i] == s_label[i]]
    order = [i for pair in zip(disagree, unsure) for i in pair]
    order += disagree[len(unsure) :] + unsure[len(disagree) :]
    firsts = {}
    for i in order:
        firsts.setdefault(same_text(texts[i]), i)
    asked = []
    for i in _unlike(texts, list(firsts.values())[: n * 20], n):
        asked.append(
            Question(
                texts[i],
                labels[t_label[i]],
                float(teacher[i].max()),
                labels[s_label[i]],
                float(student[i].max()),
                "the teacher and the student disagree" if t_label[i] != s_label[i] else "the teacher is unsure",
            )
        )
    return asked


SAME_QUESTION = 0.8
"""Two texts this alike (TF-IDF cosine) ask the same question: the second is not asked in the same round."""


def _unlike(texts: list[str], order: list[int], n: int) -> list[int]:
    """The first ``n`` of ``order`` with no text too like one taken before it (a label for one of them teaches
    the other's too)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not order:
        return []
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform([texts[i] for i in order])
    taken: list[int] = []
    for row in range(len(order)):
        if taken and (vectors[taken] @ vectors[row].T).max() >= SAME_QUESTION:
            continue
        taken.append(row)
        if len(taken) == n:
            break
    return [order[row] for row in taken]


@torch.inference_mode()
def student_probabilities(model, tokenizer, records: list[dict], max_length: int, batch_size: int) -> torch.Tensor:
    model.eval()
    items = encode_records(records, tokenizer, max_length)
    rows = [
        model(**model_inputs(b, model.device)).logits.float().softmax(-1)
        for b in iter_batches(items, batch_size, tokenizer.pad_token_id)
    ]
    return torch.cat(rows) if rows else torch.empty(0, 0)


def write_questions(
    run_root: Path, records: list[dict], teacher_logits: torch.Tensor, student, tokenizer, labels: list[str], config
) -> int:
    """Rank the texts without a label (teacher logits [N, C], in ``records`` order) and keep the questions."""
    picked = list(range(len(records)))
    if len(picked) > STUDENT_READS:
        picked = sorted(random.Random(config.seed).sample(picked, STUDENT_READS))
    chosen = [records[i] for i in picked]
    student_said = student_probabilities(student, tokenizer, chosen, config.max_length, config.batch_size)
    teacher_said = teacher_logits[picked].float().softmax(-1)
    questions = rank_questions([r["text"] for r in chosen], teacher_said, student_said, labels)
    write_json(run_root / FILE, {"labels": labels, "questions": [asdict(q) for q in questions]})
    return len(questions)


def read_questions(run_root: Path) -> tuple[list[str], list[Question]]:
    path = Path(run_root) / FILE
    if not path.exists():
        return [], []
    saved = json.loads(path.read_text())
    return saved["labels"], [Question(**q) for q in saved["questions"]]


def with_answers(source: Path, out: Path, answers: dict[str, str], labels: list[str], round_of: int = 0) -> dict:
    """Copy the prepared dataset at ``source`` to ``out`` with each answered text (text -> label) moved from the
    texts without a label into the training split; returns the new report. A label the dataset does not have is
    refused, and nothing is written."""
    unknown = sorted({label for label in answers.values() if label not in labels})
    if unknown:
        raise ConfigError([f"'{unknown[0]}' is not one of this dataset's labels ({', '.join(labels)})"])
    wanted = {same_text(text): label for text, label in answers.items()}
    tmp = out.with_name(f".{out.name}")
    shutil.copytree(source, tmp)
    try:
        kept, moved = [], []
        with (source / UNLABELLED).open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                label = wanted.pop(same_text(row["text"]), None)
                (moved if label else kept).append({**row, "label": label} if label else row)
        if wanted:
            raise ConfigError([f"{len(wanted)} answered text(s) are not among this dataset's texts without a label"])
        (tmp / UNLABELLED).write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        with (tmp / "train.jsonl").open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in moved)
        report = json.loads((source / "report.json").read_text())
        report["split_sizes"]["train"] += len(moved)
        report["unlabelled"] = len(kept)
        report["labelled_by_you"] = report.get("labelled_by_you", 0) + len(moved)
        report["round_of"] = round_of
        for row in moved:
            report["label_counts"][row["label"]] = report["label_counts"].get(row["label"], 0) + 1
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
