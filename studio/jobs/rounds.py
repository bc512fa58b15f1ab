"""Rounds of labelling (active learning): the user labels the texts a finished run asked about; a new dataset
with those labels is stored and the same distillation runs on it. Each round's scores, for the page's chart.

The studio.labelling pipeline does the work on files; this module checks ownership, stores and submits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from storage import jobs as job_rows
from storage import records
from storage.config import Storage
from storage.errors import NotFoundError
from storage.jobs import Viewer
from storage.tables import JobStatus
from studio.errors import ConfigError
from studio.jobs import service
from studio.labelling import Question, read_questions, with_answers

SKIP = "(not sure: skip)"


@dataclass
class Round:
    job_id: int
    status: str
    labels: int
    """Labelled training texts the round learnt from."""
    by_you: int
    """Of those, the ones labelled in the page."""
    student: float | None
    """The student's best validation macro-F1 (None until it has one)."""
    teacher: float | None
    validation_texts: int
    student_test: float | None = None
    """The student's macro-F1 on the test split (eval.json), once measured."""
    test_texts: int = 0


def questions_of(storage: Storage, viewer: Viewer, job_id: int) -> tuple[list[str], list[Question]]:
    """The labels and the questions of this user's finished distillation (none: ([], []))."""
    with storage.db.session() as s:
        job = job_rows.get(s, viewer, job_id)
        if job.kind != "distill" or job.status != JobStatus.DONE:
            return [], []
    return read_questions(storage.store.local(job.folder))


def label_and_train_again(storage: Storage, viewer: Viewer, job_id: int, answers: dict[str, str]) -> int:
    """Store the dataset of job ``job_id`` with ``answers`` (text -> label; SKIP and empty left out) moved into its
    training split, and start the same distillation on it. Returns the new job's id."""
    answers = {text: label for text, label in answers.items() if label and label != SKIP}
    if not answers:
        raise ConfigError(["no text has a label yet: pick one for each text you are sure of, then start the round"])
    labels, questions = questions_of(storage, viewer, job_id)
    asked = {q.text for q in questions}
    if not set(answers) <= asked:
        raise ConfigError(["only the texts this run asked about can be labelled here; reload the page"])
    with storage.db.session() as s:
        job = job_rows.get(s, viewer, job_id)
        dataset = records.get_dataset(s, viewer, job.dataset_id)
        config, title, source = dict(job.config), job.title, storage.store.local(dataset.path)
        name, columns, task, sha = dataset.name, dataset.columns, dataset.task, dataset.sha256
    relative = f"datasets/{uuid.uuid4().hex}"
    report = with_answers(source, storage.store.resolve(relative), answers, labels, round_of=job_id)
    storage.store.push(relative)
    digest = hashlib.sha256(json.dumps([sha, sorted(answers.items())]).encode()).hexdigest()
    try:
        new_dataset = records.add_dataset(
            storage.db,
            viewer.user_id,
            name=f"{name} + {report['labelled_by_you']} labelled by you",
            sha256=digest,
            rows=report["rows_used"],
            columns=columns,
            task=task,
            report=report,
            path=relative,
        )
    except BaseException:
        storage.store.delete(relative)
        raise
    number = len(rounds(storage, viewer, job_id)) + 1
    return service.submit(
        storage,
        viewer,
        "distill",
        {**config, "dataset_id": new_dataset},
        title=f"Round {number}: {title.split(': ', 1)[-1] if title.startswith('Round ') else title}",
    )


def rounds(storage: Storage, viewer: Viewer, job_id: int) -> list[Round]:
    """The rounds that led to job ``job_id`` (each dataset records the job whose questions it answered), oldest
    first; a round whose job was deleted ends the chain there."""
    chain, seen = [], set()
    with storage.db.session() as s:
        while job_id and job_id not in seen:
            seen.add(job_id)
            try:
                job = job_rows.get(s, viewer, job_id)
                dataset = records.get_dataset(s, viewer, job.dataset_id) if job.dataset_id else None
            except NotFoundError:
                break
            if job.kind != "distill" or dataset is None:
                break
            chain.append(_round(job, dataset.report, storage.store.local(job.folder)))
            job_id = dataset.report.get("round_of", 0)
    return chain[::-1]


def _round(job, report: dict, folder: Path) -> Round:
    config, measured = folder / "config.json", folder / "eval.json"
    stages = (json.loads(config.read_text()).get("plan") or {}).get("stages", {}) if config.exists() else {}
    models = json.loads(measured.read_text()).get("models", []) if measured.exists() else []
    student = next((m for m in models if m.get("name") == "student"), {})
    return Round(
        job.id,
        job.status,
        report["split_sizes"].get("train", 0),
        report.get("labelled_by_you", 0),
        stages.get("student", {}).get("best_validation"),
        stages.get("teacher", {}).get("best_validation"),
        report["split_sizes"].get("validation", 0),
        student.get("macro_f1"),
        report["split_sizes"].get("test", 0),
    )
