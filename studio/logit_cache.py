"""The teacher's logits over the training split, computed once and kept on disk for the student's epochs.

In a job of several processes each computes the logits of its part of the texts and saves them as a part file;
the main process joins the parts (in order, so row i is still item i) into the one cache file every process reads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from studio import ranks
from studio.batches import iter_batches, model_inputs
from studio.dataset import PreparedDataset
from studio.distill_config import DistillConfig
from studio.errors import StopRequested
from studio.progress import Progress, ProgressFn, report
from studio.words import Task


def cache_teacher(
    teacher: PreTrainedModel,
    items: list[dict],
    config: DistillConfig,
    task: str,
    pad_id: int,
    path: Path,
    fingerprint: str,
    on_progress: ProgressFn | None = None,
) -> dict:
    """Teacher logits for every training item, computed once and kept in a safetensors file.

    Classification keeps all class logits [N, C]; causal LM keeps the top-k per position
    (values fp16, indices int32) [N, max_length, k]. The cache is reused while its fingerprint
    (teacher, data, length, k) matches.
    """
    if path.exists():
        cached = read_cache(path)
        if cached.pop("fingerprint") == fingerprint:
            return cached
    start, end = ranks.share(len(items))
    with on_gpu(teacher):
        part = _teacher_logits(teacher, items[start:end], config, task, pad_id, on_progress, len(items))
    if ranks.world() == 1:
        write_cache(path, part, fingerprint)
        return part
    parts = [path.with_name(f"{path.stem}.part-{r}-of-{ranks.world()}{path.suffix}") for r in range(ranks.world())]
    write_cache(parts[ranks.rank()], part, fingerprint)
    ranks.barrier()  # every part is on disk
    ranks.on_main(lambda: _join_parts(parts, path, fingerprint))
    cached = read_cache(path)
    cached.pop("fingerprint")
    return cached


@contextmanager
def on_gpu(model: PreTrainedModel) -> Iterator[None]:
    """A model loaded on the CPU runs on this process's GPU while inside, where there is one (the teacher is loaded
    on the CPU; only training moves a model), and goes back after, so what follows finds it where it was. A model
    already on a GPU, or quantized (bitsandbytes places its own), stays."""
    if not torch.cuda.is_available() or model.device.type != "cpu" or getattr(model, "is_quantized", False):
        yield
        return
    model.to(torch.device("cuda", torch.cuda.current_device()))
    try:
        yield
    finally:
        model.to("cpu")


def _teacher_logits(
    teacher: PreTrainedModel,
    items: list[dict],
    config: DistillConfig,
    task: str,
    pad_id: int,
    on_progress: ProgressFn | None,
    everyone: int,
) -> dict[str, torch.Tensor]:
    """This process's part; ``everyone`` items in all the parts."""
    teacher.eval()
    steps = math.ceil(len(items) / config.batch_size)
    out: dict[str, list[torch.Tensor]] = {"logits": [], "top_values": [], "top_indices": []}
    pad_to = config.max_length if task == Task.CAUSAL_LM else None
    with torch.inference_mode():
        for step, batch in enumerate(iter_batches(items, config.batch_size, pad_id, pad_to=pad_to)):
            logits = teacher(**model_inputs(batch, teacher.device)).logits.float().cpu()
            if task == Task.CLASSIFICATION:
                out["logits"].append(logits)
            else:
                values, indices = logits.topk(config.top_k, dim=-1)
                out["top_values"].append(values.half())
                out["top_indices"].append(indices.int())
            try:
                report(on_progress, Progress("cache", 1, 1, step + 1, steps))
                asked_to_stop = False
            except StopRequested:
                asked_to_stop = True
            if ranks.any_rank(asked_to_stop):
                raise StopRequested()
    for _ in range(
        steps, math.ceil(math.ceil(everyone / ranks.world()) / config.batch_size)
    ):  # every process meets as often as the busiest one
        if ranks.any_rank(False):
            raise StopRequested()
    return {k: torch.cat(v) for k, v in out.items() if v}


def _join_parts(parts: list[Path], path: Path, fingerprint: str) -> None:
    loaded = [read_cache(part) for part in parts]
    if any(p.pop("fingerprint") != fingerprint for p in loaded):
        raise RuntimeError(f"the parts of {path.name} were computed for different runs")
    joined = {k: torch.cat([p[k] for p in loaded if k in p]) for k in dict.fromkeys(k for p in loaded for k in p)}
    write_cache(path, joined, fingerprint)
    for part in parts:
        part.unlink(missing_ok=True)


def read_cache(path: Path) -> dict:
    """The cached tensors, and under "fingerprint" what they were computed for."""
    cached = load_file(path)
    cached["fingerprint"] = json.loads(bytes(cached.pop("meta").tolist()).decode()).get("fingerprint")
    return cached


def write_cache(path: Path, tensors: dict[str, torch.Tensor], fingerprint: str) -> None:
    meta = json.dumps({"fingerprint": fingerprint}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({**tensors, "meta": torch.tensor(list(meta), dtype=torch.uint8)}, str(tmp))
    os.replace(tmp, path)


def cache_fingerprint(
    config: DistillConfig, teacher_dir: str, dataset: PreparedDataset, kd_mode: str, texts: int | None = None
) -> str:
    """What the cached teacher logits depend on: a change to any of it computes them again."""
    return json.dumps(
        [
            config.teacher,
            teacher_dir,
            dataset.report.split_sizes,
            config.max_length,
            config.top_k,
            dataset.report.task,
            kd_mode,
            config.recipe,
            texts,
        ]
    )


def sure_answers(records: list[dict], cache: dict, labelled: int, least: float) -> tuple[list[dict], dict]:
    """The records after the first ``labelled`` (texts without a label) whose cached teacher answer has a top
    probability of at least ``least``, with the cache cut to match (row i stays record i's answer)."""
    if least <= 0:
        return records, cache
    sure = cache["logits"][labelled:].float().softmax(-1).amax(-1) >= least
    keep = torch.cat([torch.arange(labelled), labelled + sure.nonzero().flatten()])
    return [records[i] for i in keep.tolist()], {**cache, "logits": cache["logits"][keep]}


def agreeing_answers(records: list[dict], cache: dict, labelled: int, label_ids: dict[str, int]) -> tuple[list[dict], dict]:
    """The texts without a label (after the first ``labelled`` records) whose teacher answer is the label of the
    most similar labelled text (TF-IDF cosine), with the cache cut to match: a weak teacher's answers kept only
    where the user's own labels back them."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if labelled == 0 or labelled == len(records):
        return records, cache
    texts = [r["text"] for r in records]
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    nearest = (vectors[labelled:] @ vectors[:labelled].T).toarray().argmax(1)
    neighbour = torch.tensor([label_ids[records[i]["label"]] for i in nearest.tolist()])
    agree = cache["logits"][labelled:].argmax(-1) == neighbour
    keep = torch.cat([torch.arange(labelled), labelled + agree.nonzero().flatten()])
    return [records[i] for i in keep.tolist()], {**cache, "logits": cache["logits"][keep]}
