import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from studio import generator
from studio.baselines import BASE_TEACHER
from studio.batches import encode_records
from studio.checkpoints import latest_checkpoint
from studio.dataset import DatasetOptions, prepare_dataset
from studio.distill import distill
from studio.distill_config import DistillConfig
from studio.distill_plan import class_weights, fit_max_length
from studio.errors import CheckpointError, ConfigError, StopRequested
from studio.evaluate import evaluate_run
from studio.progress import Progress
from studio.run import RunPaths
from studio.step_plan import StepPlan
from studio.training import train_loop
from studio.validation import Validation


@pytest.fixture
def tickets(samples, tmp_path):
    rows = (samples / "support_tickets.csv").read_text(encoding="utf-8").splitlines()[:401]
    small = tmp_path / "tickets.csv"
    small.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return prepare_dataset(small, tmp_path / "ds")


@pytest.fixture
def faq(samples, tmp_path):
    return prepare_dataset(samples / "shop_faq.jsonl", tmp_path / "faq", DatasetOptions(test_fraction=0.1))


def small(**kw) -> DistillConfig:
    base = dict(
        student_layers=2,
        epochs=2,
        teacher_epochs=1,
        batch_size=32,
        max_length=48,
        min_steps=0,
        patience=0,
        learning_rate=1e-3,
        teacher_learning_rate=1e-3,
        threads=2,
        kd_tokens=4000,
    )
    return DistillConfig(**{**base, **kw})


def test_classification_run_fine_tunes_teacher_caches_and_distills(tiny_bert, tickets, tmp_path):
    run = tmp_path / "run"
    seen: list[Progress] = []
    result = distill(small(teacher=str(tiny_bert)), tickets, run, on_progress=seen.append)
    assert {p.stage for p in seen} == {"teacher", "cache", "student"}
    assert (run / "teacher" / "studio_ready").exists() and result.kd_mode == "logits"
    cache = run / "cache" / "teacher_logits.safetensors"
    assert cache.exists()
    config = json.loads((run / "config.json").read_text())
    assert config["distill"]["student_layers"] == 2 and config["labels"] == tickets.report.labels
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in steps if "loss" in s].count("student") == 2 * 10  # 320 train rows / 32 a batch, 2 epochs
    validated = [s["step"] for s in steps if s["stage"] == "student" and "validation" in s]
    assert validated == [10, 20]  # about once an epoch (every 10 steps at least), and at the end
    student = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert student.config.num_hidden_layers == 2
    assert student.config.id2label[0] == tickets.report.labels[0]
    report = evaluate_run(run)
    teacher, distilled = report["models"][:2]  # then the baselines
    assert distilled["params"] < teacher["params"]
    test = tickets.split("test")
    tokenizer = AutoTokenizer.from_pretrained(run / "student")
    inputs = tokenizer(
        [r["text"] for r in test], padding=True, truncation=True, max_length=config["distill"]["max_length"], return_tensors="pt"
    )
    with torch.no_grad():
        predicted = student.eval()(**inputs).logits.argmax(-1).tolist()
    right = sum(p == tickets.report.labels.index(r["label"]) for p, r in zip(predicted, test))
    assert abs(distilled["accuracy"] * len(test) - right) <= 1  # the student saved answers as measured (± a tie)
    assert distilled["agreement"] is not None
    assert distilled["size_bytes"] > 0 and distilled["throughput"] > 0 and distilled["latency_ms"] > 0


class Crash(Exception):
    pass


def test_crash_then_resume_continues_from_last_checkpoint(tiny_bert, tickets, tmp_path):
    run = tmp_path / "run"
    config = small(teacher=str(tiny_bert), epochs=3)

    def crash_in_epoch_2(p: Progress) -> None:
        if p.stage == "student" and p.epoch == 2 and p.step == 3:
            raise Crash()

    with pytest.raises(Crash):
        distill(config, tickets, run, on_progress=crash_in_epoch_2)
    state = json.loads((latest_checkpoint(run / "checkpoints" / "student") / "state.json").read_text())
    assert state["global_step"] == 10 and state["best_step"] == 10  # validated and saved at step 10
    assert not (run / "student").exists()
    cache_time = (run / "cache" / "teacher_logits.safetensors").stat().st_mtime_ns

    with pytest.raises(CheckpointError, match="already holds a run"):
        distill(config, tickets, run)
    with pytest.raises(CheckpointError, match="other settings.*epochs"):
        distill(small(teacher=str(tiny_bert), epochs=5), tickets, run, resume=True)

    seen: list[Progress] = []
    distill(config, tickets, run, on_progress=seen.append, resume=True)
    student_epochs = sorted({p.epoch for p in seen if p.stage == "student"})
    assert student_epochs == [2, 3]  # epoch 1 came from the checkpoint
    assert not any(p.stage == "teacher" and p.global_step for p in seen)  # the fine-tuned teacher was reused
    assert (run / "cache" / "teacher_logits.safetensors").stat().st_mtime_ns == cache_time
    assert (run / "student" / "studio_ready").exists()


@pytest.mark.parametrize("when", ["step", "validation"])
def test_stop_mid_epoch_saves_that_step_and_resume_repeats_nothing(tiny_bert, tickets, tmp_path, when):
    """A cancel lands between two steps, or while a validation is reported: the step is checkpointed (with its
    validation), and the resumed run's log has every step exactly once (no gap, no step trained twice)."""
    run = tmp_path / "run"
    config = small(teacher=str(tiny_bert), epochs=2, teacher_epochs=1)
    at = 13 if when == "step" else 10  # step 10 is validated

    def stop(p: Progress) -> None:
        heard = p.validation is not None if when == "validation" else p.loss is not None
        if p.stage == "student" and p.global_step == at and p.restart_step is None and heard:
            raise StopRequested()

    with pytest.raises(StopRequested):
        distill(config, tickets, run, on_progress=stop)
    state = json.loads((latest_checkpoint(run / "checkpoints" / "student") / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == ((1, 3, 13) if when == "step" else (0, 10, 10))
    assert when == "step" or state["best_step"] == 10

    seen: list[Progress] = []
    distill(config, tickets, run, on_progress=seen.append, resume=True)
    first = next(p for p in seen if p.stage == "student")
    assert first.restart_step == at
    steps = [
        json.loads(line)["step"]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["stage"] == "student" and "loss" in json.loads(line)
    ]
    assert steps == list(range(1, 21))


def test_causal_lm_default_recipe_tunes_the_teacher_probes_the_depth_and_merges_lora(tiny_llama, faq, tmp_path):
    run = tmp_path / "run"
    seen: list[Progress] = []
    result = distill(
        small(teacher=str(tiny_llama), student_layers=0, lora=True, top_k=8, learning_rate=5e-3, kd_tokens=3000),
        faq,
        run,
        on_progress=seen.append,
    )
    assert result.kd_mode == "logits"
    teacher = RunPaths(run).teacher_info()
    assert teacher["path"] == str((run / "teacher").resolve()) and teacher["base"] == str(tiny_llama)  # tuned, then saved
    assert json.loads((run / "teacher.json").read_text())["path"] == "run:teacher"  # the same on any machine
    plan = json.loads((run / "config.json").read_text())["plan"]
    written = (run / "teacher_written.jsonl").read_text().splitlines()
    assert plan["texts_written"] == len(written) > 0
    assert plan["texts_general"] > 0 or generator.bbc_folder() is None
    assert [p["depth"] for p in plan["depth_probe"]] == [2, 1]  # half, two fifths and a third of 4 layers
    student = AutoModelForCausalLM.from_pretrained(run / "student")
    assert not any("lora" in k for k in student.state_dict())  # merged
    assert student.config.studio_kept_layers == plan["student_layers"]
    assert student.config.num_hidden_layers == len(plan["student_layers"])
    assert "Depth probe" in plan["words"] and any("probing a 2-layer student" in p.message for p in seen)
    report = evaluate_run(run, include_before_kd=True)
    names = [m["name"] for m in report["models"]]
    assert names == [BASE_TEACHER, "teacher", "student before KD", "student"]
    for m in report["models"]:
        assert m["perplexity"] > 1 and m["generation_tokens_per_s"] > 0
    base = report["models"][0]
    assert base["perplexity"] > report["models"][1]["perplexity"]  # tuning on the answers helped the teacher
    cache = __import__("safetensors.torch", fromlist=["load_file"]).load_file(run / "cache" / "teacher_logits.safetensors")
    assert cache["top_indices"].shape[-1] == 8 and cache["top_values"].dtype == torch.float16


def test_different_tokenizer_falls_back_to_sequence_kd(tiny_llama, other_tiny_llama, faq, tmp_path):
    seen: list[Progress] = []
    result = distill(
        small(teacher=str(tiny_llama), student=str(other_tiny_llama), epochs=1, recipe="plain"),
        faq,
        tmp_path / "run",
        on_progress=seen.append,
    )
    assert result.kd_mode == "sequence"
    assert any("different tokenizers" in p.message for p in seen)
    assert not (tmp_path / "run" / "teacher").exists()  # 'plain' distils from the teacher as installed
    assert not (tmp_path / "run" / "cache" / "teacher_logits.safetensors").exists()


def test_config_reports_all_problems_and_unknown_keys():
    with pytest.raises(ConfigError) as err:
        DistillConfig(temperature=0, alpha=1.5, epochs=0)
    assert len(err.value.problems) == 3 and "alpha is 1.5" in str(err.value)
    with pytest.raises(ConfigError, match="unknown setting 'temprature'"):
        DistillConfig.from_dict({"temprature": 2.0})
    assert DistillConfig.from_dict(DistillConfig().to_dict()) == DistillConfig()


def test_step_budget_gives_small_data_enough_steps_and_validates_about_once_an_epoch():
    small_data = StepPlan.of(items=480, batch_size=16, epochs=3, min_steps=300, patience=5)
    assert small_data.steps == 300 and small_data.steps_per_epoch == 30 and small_data.eval_every == 30
    big_data = StepPlan.of(items=100_000, batch_size=16, epochs=3, min_steps=300)
    assert big_data.steps == 3 * 6250 and big_data.eval_every == 50
    tiny = StepPlan.of(items=40, batch_size=16, epochs=3, min_steps=300)
    assert tiny.eval_every == 10 and tiny.epochs == 100
    assert StepPlan.of(items=480, batch_size=16, epochs=3, min_steps=300, max_steps=120).steps == 120


class Scripted:
    """A validator that reads scores from a script and remembers the weights it saw each time."""

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.seen = scores, []

    def __call__(self, model) -> Validation:
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return Validation(loss=1.0, macro_f1=self.scores[len(self.seen) - 1])


def test_training_stops_when_validation_stops_improving_and_keeps_the_best_weights(tiny_bert, tickets, tmp_path):
    from studio.models import load_classifier, load_tokenizer
    from studio.stages import weighted_ce
    from studio.teacher import resolve_source

    source = resolve_source(str(tiny_bert))
    model, _ = load_classifier(source, tickets.report.labels)
    tokenizer = load_tokenizer(source)
    items = encode_records(tickets.split("train")[:80], tokenizer, 32, {k: i for i, k in enumerate(tickets.report.labels)})
    validate = Scripted([0.2, 0.5, 0.4, 0.45, 0.3, 0.9])  # best at the 2nd validation, then 3 worse: stop
    plan = StepPlan(steps=60, steps_per_epoch=5, eval_every=5, patience=3)
    result = train_loop(
        model,
        items,
        weighted_ce(None),
        tmp_path / "ck",
        "teacher",
        plan=plan,
        lr=1e-3,
        batch_size=16,
        pad_id=tokenizer.pad_token_id,
        metrics=tmp_path / "m.jsonl",
        seed=1,
        validate=validate,
    )
    assert len(validate.seen) == 5 and result.steps == 25 and result.stopped_early
    assert result.best_step == 10 and result.best_score == 0.5
    best = validate.seen[1]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())  # the best weights, not the last
    assert [p.name for p in (tmp_path / "ck").glob("best-*")] == ["best-10.safetensors"]
    logged = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [row["validation"] for row in logged if "validation" in row] == [0.2, 0.5, 0.4, 0.45, 0.3]


def test_max_length_fits_the_data_and_skewed_labels_are_weighed():
    assert fit_max_length([10] * 95 + [500] * 5, model_limit=512) == 32
    assert fit_max_length(list(range(1, 201)), model_limit=512) == 192  # the 95th percentile, 190, in steps of 32
    assert fit_max_length([1000] * 10, model_limit=512) == 256  # never past the automatic cap
    assert fit_max_length([1000] * 10, model_limit=128) == 128  # nor past what the model reads
    assert fit_max_length([10] * 10, model_limit=512, requested=300) == 300
    even = [{"label": "a"}] * 10 + [{"label": "b"}] * 8
    skewed = [{"label": "a"}] * 30 + [{"label": "b"}] * 10
    assert class_weights("auto", ["a", "b"], even) is None
    assert class_weights("auto", ["a", "b"], skewed) == pytest.approx([40 / 60, 40 / 20])
    assert class_weights("off", ["a", "b"], skewed) is None
    assert class_weights("weights", ["a", "b"], even) is not None


def test_auto_teacher_learning_rate_is_chosen_on_validation_and_not_searched_again(tiny_bert, tickets, tmp_path):
    run = tmp_path / "run"
    config = small(teacher=str(tiny_bert), teacher_learning_rate=0.0, max_length=0, epochs=1)
    seen: list[Progress] = []

    def crash_in_student(p: Progress) -> None:
        seen.append(p)
        if p.stage == "student" and p.global_step == 2:
            raise Crash()

    with pytest.raises(Crash):
        distill(config, tickets, run, on_progress=crash_in_student)
    resolved = json.loads((run / "config.json").read_text())
    trials = resolved["plan"]["learning_rate_trials"]
    assert list(trials) == ["3e-05", "0.0001", "0.0003"]
    chosen = resolved["distill"]["teacher_learning_rate"]
    assert trials[f"{chosen:g}"] == max(trials.values()) and resolved["requested"]["teacher_learning_rate"] == 0.0
    assert 32 <= resolved["distill"]["max_length"] <= 256 and resolved["requested"]["max_length"] == 0
    stages = {(p.stage, p.label) for p in seen}
    assert {("teacher", "lr 3e-05"), ("teacher", "lr 0.0001"), ("teacher", "lr 0.0003"), ("teacher", "")} <= stages
    assert any("trying learning rate" in p.message for p in seen)
    assert not list((run / "checkpoints").glob("teacher-lr-*"))  # trials cleaned up; the winner went on

    again: list[Progress] = []
    distill(config, tickets, run, on_progress=again.append, resume=True)
    assert not any(p.stage == "teacher" for p in again if p.global_step)  # no search, no teacher training
    final = json.loads((run / "config.json").read_text())
    assert final["plan"]["learning_rate_trials"] == trials and set(final["plan"]["stages"]) == {"teacher", "student"}


def test_a_text_generator_teaches_a_classifier_with_another_tokenizer(tiny_llama, tiny_bert, tickets, tmp_path):
    """A causal LM gets a classification head; by default ('auto') its weights stay frozen and only the head is
    fitted. A BERT student with its own vocabulary learns from its class logits (per text: tokenizers may differ)."""
    from safetensors.torch import load_file

    from studio.batches import iter_batches, model_inputs
    from studio.models import load_tokenizer
    from studio.teacher import resolve_source

    run = tmp_path / "run"
    seen: list[Progress] = []
    result = distill(small(teacher=str(tiny_llama), student=str(tiny_bert), threads=1), tickets, run, on_progress=seen.append)
    assert result.kd_mode == "logits"
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher")
    assert teacher.config.architectures == ["LlamaForSequenceClassification"]
    assert teacher.config.pad_token_id is not None
    original = AutoModelForCausalLM.from_pretrained(tiny_llama).model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in teacher.model.state_dict().items())  # frozen
    plan = json.loads((run / "config.json").read_text())["plan"]
    assert plan["stages"]["teacher"]["trained"].startswith("head only") and len(plan["stages"]["teacher"]["head_trials"]) == 5
    assert "only its head was fitted" in plan["words"]
    assert not any(p.stage == "cache" for p in seen)  # the KD targets came with the fit, no second pass
    tokenizer = load_tokenizer(resolve_source(str(run / "teacher")))
    labels = {label: i for i, label in enumerate(tickets.report.labels)}
    items = encode_records(tickets.split("train"), tokenizer, plan["max_length"], labels)
    with torch.no_grad():
        logits = torch.cat([teacher(**model_inputs(b)).logits for b in iter_batches(items, 32, tokenizer.pad_token_id)])
    assert torch.allclose(load_file(run / "cache" / "teacher_logits.safetensors")["logits"], logits, atol=1e-4)
    student = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert student.config.model_type == "bert"
    report = evaluate_run(run)
    assert [m["name"] for m in report["models"]][:2] == ["teacher", "student"]
    assert report["models"][1]["agreement"] is not None


def test_teacher_training_full_or_head_is_the_users_choice(tiny_llama, tiny_bert, tickets, tmp_path):
    with pytest.raises(ConfigError, match="teacher_training 'head' needs a text generator"):
        distill(small(teacher=str(tiny_bert), teacher_training="head"), tickets, tmp_path / "a")
    run = tmp_path / "b"
    distill(small(teacher=str(tiny_llama), student=str(tiny_bert), teacher_training="full", max_steps=3), tickets, run)
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher")
    original = AutoModelForCausalLM.from_pretrained(tiny_llama).model.state_dict()
    assert not all(torch.equal(original[k], v) for k, v in teacher.model.state_dict().items())  # fine-tuned
    assert "trained" not in json.loads((run / "config.json").read_text())["plan"]["stages"]["teacher"]


def test_length_grouped_batches_cover_every_item_once_and_pad_less():
    from studio.batches import iter_batches

    items = [{"index": i, "input_ids": [1] * (1 + (i * 37) % 200), "label": 0} for i in range(400)]

    def drawn(seed, by_length):
        return [b["index"].tolist() for b in iter_batches(items, 16, 0, seed=seed, by_length=by_length)]

    def padding(batches):
        return sum(len(b) * max(len(items[i]["input_ids"]) for i in b) for b in batches)

    grouped = drawn(3, True)
    assert sorted(i for b in grouped for i in b) == list(range(400)) and grouped == drawn(3, True)
    assert grouped != drawn(4, True) and padding(grouped) < 0.7 * padding(drawn(3, False))
    longest_first = [b["index"].tolist() for b in iter_batches(items, 16, 0, by_length=True)]
    assert padding(longest_first) <= padding(grouped) and sorted(sum(longest_first, [])) == list(range(400))


def test_fitted_head_separates_what_the_features_separate():
    from studio.teacher_head import STRENGTHS, fit_head

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 3

    def sample(n):
        y = [i % 3 for i in range(n)]
        return centres[y] + torch.randn(n, 16, generator=generator), y

    class Head(torch.nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.score = torch.nn.Linear(16, classes, bias=False)

    three = Head(3)
    fit = fit_head(three, sample(90), sample(30), 3, None, seed=1)
    assert fit.validation > 0.9 and set(fit.trials) == {f"{s:g}" for s in STRENGTHS} and fit.train_logits.shape == (90, 3)
    x, y = sample(30)
    assert (three.score(x).argmax(-1) == torch.tensor(y)).float().mean() > 0.9
    two = Head(2)  # scikit-learn gives one row for two classes; the head gets the symmetric pair
    x, y = sample(60)
    keep = [i for i, label in enumerate(y) if label < 2]
    fit = fit_head(two, (x[keep], [y[i] for i in keep]), (x[keep], [y[i] for i in keep]), 2, [1.0, 1.0], seed=1)
    assert torch.allclose(two.score.weight[0], -two.score.weight[1]) and fit.validation > 0.9


def test_texts_without_a_label_are_learnt_from_the_teachers_answers(tiny_bert, samples, tmp_path):
    """100 labelled tickets and 300 without a label: the teacher learns from the 100, answers all 400 (cached), the
    student trains on all 400; the labels-only student on the 100; the plan says how many texts each used."""
    from tiny_models import tickets_few_labels

    data = prepare_dataset(tickets_few_labels(samples, tmp_path / "few.csv", 400, 125), tmp_path / "ds")
    labelled, unlabelled = data.report.split_sizes["train"], data.report.unlabelled
    assert 90 <= labelled <= 100 and unlabelled > 250
    run = tmp_path / "run"
    distill(small(teacher=str(tiny_bert), epochs=1, labels_only_student=True), data, run)
    plan = json.loads((run / "config.json").read_text())["plan"]
    assert plan["texts_unlabelled"] == unlabelled and f"{unlabelled:,} texts without a label" in plan["words"]
    assert plan["stages"]["teacher"]["steps"] == -(-labelled // 32)  # the teacher: the labelled rows only
    assert plan["stages"]["student"]["steps"] == -(-(labelled + unlabelled) // 32)
    assert plan["stages"]["labels-only student"]["steps"] == -(-labelled // 32)
    from safetensors.torch import load_file

    assert load_file(run / "cache" / "teacher_logits.safetensors")["logits"].shape[0] == labelled + unlabelled
    from studio.compress.base import RunContext

    healing = RunContext(run, tmp_path / "work").train_items(AutoTokenizer.from_pretrained(run / "student"))
    assert len(healing) == labelled + unlabelled  # healing after pruning learns from the same texts, in cache order
    off = tmp_path / "off"
    distill(small(teacher=str(tiny_bert), epochs=1, unlabelled=False), data, off)
    plan = json.loads((off / "config.json").read_text())["plan"]
    assert plan["texts_unlabelled"] == 0 and plan["stages"]["student"]["steps"] == -(-labelled // 32)
    strict = tmp_path / "strict"  # a tiny teacher is never 99 % sure: every text without a label is left out
    distill(small(teacher=str(tiny_bert), epochs=1, unlabelled_min_confidence=0.99), data, strict)
    plan = json.loads((strict / "config.json").read_text())["plan"]
    assert plan["texts_unlabelled_read"] == unlabelled and plan["texts_unlabelled"] == 0
    assert f"(left out: {unlabelled:,} the teacher was unsure of)" in plan["words"]
    assert plan["stages"]["student"]["steps"] == -(-labelled // 32)


def test_only_the_teachers_sure_answers_are_kept_and_the_cache_follows():
    from studio.logit_cache import sure_answers

    records = [{"text": "a", "label": "x"}, {"text": "b"}, {"text": "c"}, {"text": "d"}]
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.1, 0.0], [0.0, 4.0]])  # b and d sure, c not
    kept, cache = sure_answers(records, {"logits": logits}, 1, 0.9)
    assert [r["text"] for r in kept] == ["a", "b", "d"]
    assert torch.equal(cache["logits"], logits[[0, 1, 3]])
    assert sure_answers(records, {"logits": logits}, 1, 0.0)[0] == records


def test_answers_the_nearest_labelled_text_does_not_back_are_left_out():
    from studio.logit_cache import agreeing_answers

    records = [{"text": "card charged twice", "label": "billing"}, {"text": "parcel never arrived", "label": "shipping"}]
    records += [{"text": "my card was charged"}, {"text": "where is my parcel"}, {"text": "card refund please"}]
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # 'parcel' answered billing
    kept, cache = agreeing_answers(records, {"logits": logits}, 2, {"billing": 0, "shipping": 1})
    assert [r["text"] for r in kept] == ["card charged twice", "parcel never arrived", "my card was charged"]
    assert torch.equal(cache["logits"], logits[[0, 1, 2]])
