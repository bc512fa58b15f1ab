import json
from pathlib import Path

import pytest
import torch

from studio.compress import METHODS
from studio.compress.pipeline import compress, compress_many, parse_recipe
from studio.compress.variant import load_variant
from studio.dataset import DatasetOptions, prepare_dataset
from studio.distill import DistillConfig, distill
from studio.errors import ConfigError

SAMPLES = Path(__file__).resolve().parent.parent / "studio" / "samples"


def small(**kw) -> DistillConfig:
    base = dict(student_layers=2, epochs=1, teacher_epochs=1, batch_size=32, max_length=48,
                learning_rate=1e-3, teacher_learning_rate=1e-3, threads=2)
    return DistillConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cls_run(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cls")
    lines = (SAMPLES / "support_tickets.csv").read_text(encoding="utf-8").splitlines()[:401]
    (tmp / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = prepare_dataset(tmp / "t.csv", tmp / "ds")
    distill(small(teacher=str(tiny_bert)), dataset, tmp / "run")
    return tmp / "run"


@pytest.fixture(scope="module")
def lm_run(tiny_llama, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    dataset = prepare_dataset(SAMPLES / "shop_faq.jsonl", tmp / "faq", DatasetOptions(test_fraction=0.1))
    distill(small(teacher=str(tiny_llama), student_layers=3, batch_size=16, max_length=64), dataset, tmp / "run")
    return tmp / "run"
