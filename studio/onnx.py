"""ONNX: exporting a transformers model to a graph, and running one as if it were the model.

Used by compress (the ONNX and int8 variants) and export (the bundle's model.onnx).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from studio.words import Task

ONNX_OPSET = 17


class _LogitsOnly(nn.Module):
    """What gets exported: ids and mask in, logits out (no generation cache)."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.extra = {"use_cache": False} if task == Task.CAUSAL_LM else {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **self.extra).logits


def export_onnx(model: nn.Module, task: str, path: Path) -> Path:
    """Export a transformers model to ONNX with dynamic batch and sequence length."""
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 0, 0]])
    mask = torch.tensor([[1] * 8, [1] * 6 + [0, 0]])
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"} if task == Task.CLASSIFICATION else {0: "batch", 1: "sequence"},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python branches, not user errors
        # an eval() wrapper: the exporter restores the wrapper's mode afterwards, and a fresh module is in train mode
        torch.onnx.export(
            _LogitsOnly(model, task).eval(),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


class OnnxModel(nn.Module):
    """An ONNX Runtime session that answers like a transformers model: ``model(**inputs).logits``.

    ``generate`` is greedy and re-reads the whole sequence each step (the export has no cache).
    """

    def __init__(self, path: Path, task: str, threads: int | None = None) -> None:
        """``threads``: the cores one call may use (default: torch's, all of them)."""
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # its threads sleep between calls instead of spinning: a spinning ONNX Runtime takes the cores a server's
        # requests (and torch, in the same process) need; measured in bench/serve.py
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.task = task

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> SimpleNamespace:
        feeds = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64),
        }
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(None, feeds)[0]))

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        max_new_tokens: int = 32,
        min_new_tokens: int = 0,
        eos_token_id: int | None = None,
        logits_processor=None,
        **_: object,
    ) -> torch.Tensor:
        ids = input_ids
        mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
        for step in range(max_new_tokens):
            scores = self(ids, mask).logits[:, -1]
            next_ids = (logits_processor(ids, scores) if logits_processor else scores).argmax(-1, keepdim=True)
            ids, mask = torch.cat([ids, next_ids], 1), torch.cat([mask, torch.ones_like(next_ids)], 1)
            if eos_token_id is not None and step + 1 >= min_new_tokens and bool((next_ids == eos_token_id).all()):
                break
        return ids
