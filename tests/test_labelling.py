"""Label only what matters (studio.labelling, studio.jobs.rounds, the Distill step's label box): the texts a run
is unsure of are asked, the answers become a new round's training rows, and each round's score is charted."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from storage import jobs as job_rows
from storage import records
from storage.errors import NotFoundError
from studio.dataset import load_prepared, prepare_dataset
from studio.errors import ConfigError
from studio.labelling import rank_questions, with_answers
from tiny_models import tickets_few_labels


def test_disagreements_and_unsure_texts_are_asked_in_turn_each_text_once():
    texts = ["a", "b", "c", "d", "B "]
    teacher = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.52, 0.48], [0.55, 0.45]])
    student = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])
    asked = rank_questions(texts, teacher, student, ["x", "y"], n=3)
    # disagree: c (margin .2), a (.8); agree: d (.04), b (.1), 'B ' (the same text as b)
    assert [q.text for q in asked] == ["c", "d", "a"]
    assert asked[0].why == "the teacher and the student disagree" and asked[1].why == "the teacher is unsure"
    assert (asked[0].teacher, asked[0].student, round(asked[0].teacher_confidence, 2)) == ("x", "y", 0.6)
    assert [q.text for q in rank_questions(texts, teacher, student, ["x", "y"], n=9)] == ["c", "d", "a", "b"]
    alike = ["my card was declined three times, please help", "my card was declined three times, please help asap"]
    texts = [*alike, "where is my parcel"]
    teacher, student = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]]), torch.tensor([[0.5, 0.5]] * 3)
    assert [q.text for q in rank_questions(texts, teacher, student, ["x", "y"])] == [alike[0], "where is my parcel"]


def test_answers_move_their_texts_into_the_training_split_of_a_copy(samples, tmp_path):
    data = prepare_dataset(tickets_few_labels(samples, tmp_path / "few.csv", 160, 60), tmp_path / "ds")
    texts = [r["text"] for r in data.split("unlabelled")[:3]]
    test = data.report.split_sizes["test"]  # few labels: the data step says how little a test score then means
    assert f"Only {test} labelled texts are held out to test the models: each one moves a score by" in data.report.warnings[-1]
    labels = data.report.labels
    with pytest.raises(ConfigError, match="'nonsense' is not one of this dataset's labels"):
        with_answers(data.path, tmp_path / "bad", {texts[0]: "nonsense"}, labels)
    with pytest.raises(ConfigError, match="1 answered text"):
        with_answers(data.path, tmp_path / "bad", {texts[0]: labels[0], "a text it never had": labels[0]}, labels)
    assert not (tmp_path / "bad").exists() and not (tmp_path / ".bad").exists()
    report = with_answers(data.path, tmp_path / "next", {t.upper(): labels[1] for t in texts}, labels, round_of=7)
    after = load_prepared(tmp_path / "next")
    assert len(after.split("train")) == len(data.split("train")) + 3 == report["split_sizes"]["train"]
    assert len(after.split("unlabelled")) == data.report.unlabelled - 3 == after.report.unlabelled
    assert after.split("validation") == data.split("validation") and after.split("test") == data.split("test")
    assert [r["label"] for r in after.split("train")[-3:]] == [labels[1]] * 3
    assert (after.report.labelled_by_you, after.report.round_of) == (3, 7)
    assert after.report.label_counts[labels[1]] == data.report.label_counts[labels[1]] + 3


def test_a_user_labels_what_a_run_asks_and_the_next_round_trains_and_is_charted(samples, tmp_path, tiny_bert):
    from storage.config import open_storage
    from studio.charts import rounds_figure
    from studio.jobs import service
    from studio.jobs.rounds import SKIP, label_and_train_again, questions_of, rounds
    from studio.jobs.runner import run_claimed

    storage = open_storage()
    me = records.local_user(storage.db)
    truth = {r["text"]: r["category"] for r in csv.DictReader((samples / "support_tickets.csv").open(encoding="utf-8"))}
    dataset = service.add_dataset(storage, me, tickets_few_labels(samples, tmp_path / "few.csv", 200, 80))
    settings = {"teacher": str(tiny_bert), "student_layers": 1, "epochs": 1, "teacher_epochs": 1, "max_length": 32}
    settings |= {"min_steps": 0, "max_steps": 4, "teacher_learning_rate": 1e-3, "batch_size": 16, "trim_vocab": False}
    first = service.submit(storage, me, "distill", {"dataset_id": dataset, "distill": settings}, title="tiny on few.csv")
    job_rows.claim(storage.db, first, "here:1")
    assert run_claimed(storage, first) == "done"

    labels, asked = questions_of(storage, me, first)
    assert len(asked) == 20 and set(labels) == set(truth.values())
    assert all(q.teacher in labels and q.student in labels and 0 < q.teacher_confidence <= 1 for q in asked)
    answers = {q.text: truth[q.text] for q in asked[:5]} | {asked[5].text: SKIP}
    with pytest.raises(ConfigError, match="only the texts this run asked about"):
        label_and_train_again(storage, me, first, {"a text it did not ask": labels[0]})
    with pytest.raises(ConfigError, match="no text has a label yet"):
        label_and_train_again(storage, me, first, {asked[0].text: SKIP})
    other = records.create_user(storage.db, "someone", None)
    with pytest.raises(NotFoundError):  # another user's run: not even its questions
        label_and_train_again(storage, other, first, answers)
    with pytest.raises(NotFoundError):
        questions_of(storage, other, first)
    second = label_and_train_again(storage, me, first, answers)
    with storage.db.session() as s:
        job = job_rows.get(s, me, second)
        assert job.title == "Round 2: tiny on few.csv" and job.config["distill"] == settings
        report = records.get_dataset(s, me, job.dataset_id).report
    assert (report["labelled_by_you"], report["round_of"]) == (5, first)
    job_rows.claim(storage.db, second, "here:1")
    assert run_claimed(storage, second) == "done"
    chain = rounds(storage, me, second)
    assert [r.job_id for r in chain] == [first, second] and chain[1].labels == chain[0].labels + 5
    assert [r.by_you for r in chain] == [0, 5] and all(r.student is not None and r.teacher is not None for r in chain)
    figure = rounds_figure(chain)
    assert [t.name for t in figure.data][:2] == ["student, validation", "teacher, validation"]
    assert figure.data[2].name.startswith("student, test split") and len(figure.data[0].y) == len(figure.data[2].y) == 2
    assert json.loads(figure.to_json())["layout"]["title"]["text"].startswith("Macro-F1 on the validation split")
    assert questions_of(storage, me, second)[1]  # the next round asks again
