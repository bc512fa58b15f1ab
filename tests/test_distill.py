import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from studio.dataset import DatasetOptions, prepare_dataset
from studio.distill import DistillConfig, Progress, distill, latest_checkpoint
from studio.errors import CheckpointError, ConfigError, StopRequested
from studio.evaluate import evaluate_run


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
    base = dict(student_layers=2, epochs=2, teacher_epochs=1, batch_size=32, max_length=48,
                learning_rate=1e-3, teacher_learning_rate=1e-3, threads=2)
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
    assert [s["stage"] for s in steps].count("student") == 2 * 10  # 320 train rows / 32 per batch, 2 epochs
    student = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert student.config.num_hidden_layers == 2
    assert student.config.id2label[0] == tickets.report.labels[0]
    report = evaluate_run(run)
    teacher, distilled = report["models"]
    assert distilled["params"] < teacher["params"]
    assert 0.0 <= distilled["accuracy"] <= 1.0 and distilled["agreement"] is not None
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
    assert state == {"epoch": 1, "step_in_epoch": 0, "global_step": 10}
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
    assert "teacher" not in {p.stage for p in seen}  # the fine-tuned teacher was reused
    assert (run / "cache" / "teacher_logits.safetensors").stat().st_mtime_ns == cache_time
    assert (run / "student" / "studio_ready").exists()


def test_stop_mid_epoch_saves_that_step_and_resume_repeats_nothing(tiny_bert, tickets, tmp_path):
    """A cancel lands between two steps: the step is checkpointed, and the resumed run's log has every
    step exactly once (no gap, no step trained twice)."""
    run = tmp_path / "run"
    config = small(teacher=str(tiny_bert), epochs=2, teacher_epochs=1)

    def stop_at_step_13(p: Progress) -> None:
        if p.stage == "student" and p.global_step == 13 and p.restart_step is None:
            raise StopRequested()

    with pytest.raises(StopRequested):
        distill(config, tickets, run, on_progress=stop_at_step_13)
    state = json.loads((latest_checkpoint(run / "checkpoints" / "student") / "state.json").read_text())
    assert state == {"epoch": 1, "step_in_epoch": 3, "global_step": 13}

    seen: list[Progress] = []
    distill(config, tickets, run, on_progress=seen.append, resume=True)
    first = next(p for p in seen if p.stage == "student")
    assert first.restart_step == 13
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "student"]
    assert steps == list(range(1, 21))


def test_causal_lm_with_lora_merges_and_evaluates(tiny_llama, faq, tmp_path):
    run = tmp_path / "run"
    result = distill(small(teacher=str(tiny_llama), lora=True, top_k=8, epochs=1, learning_rate=5e-3), faq, run)
    assert result.kd_mode == "logits"
    student = AutoModelForCausalLM.from_pretrained(run / "student")
    assert not any("lora" in k for k in student.state_dict())  # merged
    report = evaluate_run(run, include_before_kd=True)
    names = [m["name"] for m in report["models"]]
    assert names == ["teacher", "student before KD", "student"]
    for m in report["models"]:
        assert m["perplexity"] > 1 and m["generation_tokens_per_s"] > 0
    cache = __import__("safetensors.torch", fromlist=["load_file"]).load_file(run / "cache" / "teacher_logits.safetensors")
    assert cache["top_indices"].shape[-1] == 8 and cache["top_values"].dtype == torch.float16


def test_different_tokenizer_falls_back_to_sequence_kd(tiny_llama, other_tiny_llama, faq, tmp_path):
    seen: list[Progress] = []
    result = distill(small(teacher=str(tiny_llama), student=str(other_tiny_llama), epochs=1), faq,
                     tmp_path / "run", on_progress=seen.append)
    assert result.kd_mode == "sequence"
    assert any("different tokenizers" in p.message for p in seen)
    assert not (tmp_path / "run" / "cache" / "teacher_logits.safetensors").exists()


def test_config_reports_all_problems_and_unknown_keys():
    with pytest.raises(ConfigError) as err:
        DistillConfig(temperature=0, alpha=1.5, epochs=0)
    assert len(err.value.problems) == 3 and "alpha is 1.5" in str(err.value)
    with pytest.raises(ConfigError, match="unknown setting 'temprature'"):
        DistillConfig.from_dict({"temprature": 2.0})
    assert DistillConfig.from_dict(DistillConfig().to_dict()) == DistillConfig()
