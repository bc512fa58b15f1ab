"""What every compression method receives and returns, and the registry entry that describes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from studio.batches import encode_records, iter_batches
from studio.dataset import PreparedDataset, load_prepared
from studio.progress import ProgressFn
from studio.run import RunPaths, dataset_folder
from studio.settings import Settings
from studio.training import make_kd_loss
from studio.words import Task


@dataclass
class WorkingModel:
    """The model as it moves through a recipe: pruning changes it in place, quantization changes its form."""

    model: Any
    """A transformers model ('torch' and 'bnb' forms) or an OnnxModel ('onnx' form)."""
    tokenizer: PreTrainedTokenizerBase
    task: str
    params: int
    """Parameters of the model as a float model (quantized forms pack several into one stored number)."""
    form: str = "torch"
    structure: dict | None = None
    """Head units and neurons per layer once structured pruning changed shapes a config cannot say."""
    sparse: bool = False
    """Unstructured pruning left zeros worth storing in a sparse format."""
    notes: list[str] = field(default_factory=list)
    onnx_file: Path | None = None
    hf_config: Any = None
    """The transformers config (labels, architecture), kept when the model becomes an ONNX graph."""
    float_source: WorkingModel | None = None
    """The torch model an ONNX step converted, when earlier steps changed it (saved as float/ for export)."""


class RunContext:
    """The finished distillation run a variant comes from: its data, settings and cached teacher logits."""

    def __init__(self, run_dir: str | Path, work_dir: Path, on_progress: ProgressFn | None = None) -> None:
        self.run = RunPaths(run_dir)
        self.work_dir = work_dir
        self.on_progress = on_progress
        self.variant = ""
        self.step_number = 0
        """The variant being made and its recipe step (they name heal stages in the metrics)."""
        resolved = self.run.read_config()
        self.settings: dict = resolved["distill"]
        self.class_weights: list[float] | None = (resolved.get("plan") or {}).get("class_weights")
        self.unlabelled: int = (resolved.get("plan") or {}).get("texts_unlabelled_read") or 0
        """Texts without a label the run's teacher answered (their logits follow the training split's in the cache)."""
        self.task: str = resolved["task"]
        self.labels: list[str] = resolved.get("labels") or []
        self.dataset_path = Path(dataset_folder(resolved, self.run.root))

    @cached_property
    def dataset(self) -> PreparedDataset:
        return load_prepared(self.dataset_path)

    @cached_property
    def cache(self) -> dict[str, torch.Tensor]:
        """Teacher logits from the run (empty when the run used sequence-level KD)."""
        if not self.run.cache.exists():
            return {}
        cached = load_file(self.run.cache)
        cached.pop("meta", None)
        return cached

    def train_items(self, tokenizer: PreTrainedTokenizerBase) -> list[dict]:
        """What the student learnt from, in the cache's order: the training split, then the texts without a label."""
        label_ids = {label: i for i, label in enumerate(self.labels)} if self.task == Task.CLASSIFICATION else None
        records = self.dataset.split("train")
        if self.unlabelled:
            records = records + self.dataset.split("unlabelled")[: self.unlabelled]
        return encode_records(records, tokenizer, self.settings["max_length"], label_ids)

    @property
    def pad_to(self) -> int | None:
        return self.settings["max_length"] if self.task == Task.CAUSAL_LM else None

    def kd_loss(self, temperature: float | None = None, alpha: float | None = None) -> Callable:
        """The run's KD loss on cached teacher logits (labels only when there is no cache)."""
        temperature = temperature or self.settings["temperature"]
        alpha = self.settings["alpha"] if alpha is None else alpha
        return make_kd_loss(self.task, self.cache, temperature, alpha if self.cache else 0.0, self.class_weights)

    def calibration_batches(self, tokenizer: PreTrainedTokenizerBase, batches: int) -> Iterator[dict]:
        """A few fixed training batches, to score what matters before cutting it."""
        items = self.train_items(tokenizer)
        size = self.settings["batch_size"]
        yield from iter_batches(items[: batches * size], size, tokenizer.pad_token_id, pad_to=self.pad_to)


MethodFn = Callable[[WorkingModel, Any, RunContext], WorkingModel]


@dataclass(frozen=True)
class Method:
    """One registry entry: a name the UI and CLI list, its settings class and its function."""

    name: str
    kind: str
    """'quantize', 'prune' or 'heal'. A quantize step ends a recipe."""
    settings: type[Settings]
    apply: MethodFn
    summary: str
    plan_shape: Callable[[dict, Any], list[str]] | None = None
    """At plan time: the step's problems with the model's shape, and the shape it leaves written into ``shape``
    for the next step."""
    low_bit: bool = False
    """Stores the weights in 8 bits or fewer (the model card then says the model is quantized)."""
