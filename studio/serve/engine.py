"""A served model: loaded once, answering requests in batches, with the run's teacher behind it for the hard cases.

    Batcher        requests that queue while the model answers are answered together in its next pass (dynamic
                   batching), up to MAX_BATCH; more than QUEUE_LIMIT waiting: Overloaded
    ServedModel    a deployment's model (student, teacher or a variant of a finished run), its tokenizer, and the
                   hybrid: an answer the model is less sure of than the threshold is the teacher's instead

The threshold is the one the run's evaluation chose for that model on the validation split (studio.hand_over), or
the one the deployment was given. A classifier's confidence is its top label's probability; a text generator's is
the geometric mean of its answer tokens' probabilities (studio.answers.confidences), as in the exported predict.py.

Why a small batcher of our own: the serving libraries that batch (Ray Serve, TorchServe, Triton) are servers of their
own with their own processes and model stores; the studio serves from its own FastAPI process, so batching is an
asyncio queue in front of the model's thread (two for an ONNX classifier: ONNX_WORKERS), which is all it takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import torch

from studio.answers import NoRepeatInAnswer, confidences
from studio.batches import prompt_text
from studio.errors import ConfigError
from studio.models import load_for_task, load_tokenizer
from studio.onnx import OnnxModel
from studio.run import RunPaths
from studio.teacher import resolve_source
from studio.try_it import hand_over_of
from studio.words import Task

MAX_BATCH = 32
PASS = 8
"""Texts of similar length a classifier reads in one pass of the model (studio.serve.engine._probabilities)."""
ONNX_WORKERS = 2
"""Batches an ONNX Runtime classifier answers at once, each call on its share of the cores (at least one): ONNX
Runtime keeps threads per session, so one batch is read in and answered while the other computes. Measured with
bench/serve.py's server and load (int8 student, 32 clients, 2 cores): 294 req/s one batch at a time on both cores,
373 two at a time on one core each. A torch model's threads are the whole process's: it answers one batch at a
time, on all of them."""
QUEUE_LIMIT = 256
"""Requests waiting for one model; the next one is refused (HTTP 429) rather than left to time out."""
MAX_TEXT_CHARS = 8000
MAX_NEW_TOKENS = 512


class Overloaded(Exception):  # noqa: N818 - a state, answered 429
    pass


class Batcher:
    """Items submitted from the event loop, answered by ``run(batch) -> results`` in a worker thread, one batch at a
    time (``workers`` batches at once, each in its thread). A batch is what queued while the previous one ran (up to
    MAX_BATCH): a lone request on an idle model goes at once, and a busy model answers together what piled up
    meanwhile. ``batching=False`` answers one item at a time (how the benchmark compares)."""

    def __init__(
        self, run: Callable[[list[Any]], list[Any]], batching: bool = True, limit: int | None = None, workers: int = 1
    ) -> None:
        self.run, self.max_batch, self.limit, self.workers = run, MAX_BATCH if batching else 1, limit or QUEUE_LIMIT, workers
        self.waiting = 0
        """Items queued or being answered, and streams writing (a stream's thread counts itself in: hold/release)."""
        self._count = threading.Lock()
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []

    def hold(self, n: int) -> None:
        """Count n more waiting, or Overloaded when they would not fit."""
        with self._count:
            if self.waiting + n > self.limit:
                raise Overloaded()
            self.waiting += n

    def release(self, n: int) -> None:
        with self._count:
            self.waiting -= n

    async def submit_all(self, items: list[Any]) -> list[Any]:
        """Every item answered (in order), or Overloaded at once when they would not fit in the queue."""
        self.hold(len(items))
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.get_running_loop().create_task(self._work()) for _ in range(self.workers)]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            self._queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def _work(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await anyio.to_thread.run_sync(self.run, [item for item, _ in batch])
            except Exception as err:  # noqa: BLE001 - every caller of the batch hears why it failed
                results = [err] * len(batch)
            finally:
                self.release(len(batch))
            for (_, future), result in zip(batch, results):
                if future.done():  # its caller went away
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


@dataclass
class Label:
    label: str
    confidence: float
    probabilities: dict[str, float]
    teacher_answered: bool = False
    student: dict | None = None
    """When the teacher answered: what the served model had said (label, confidence)."""


@dataclass
class Written:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    confidence: float | None = None
    teacher_answered: bool = False


@dataclass
class Asked:
    """One generation request: the prompt as the model reads it, and how to write."""

    prompt: str
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time per model (a stream and a batch do not interleave on the same weights)."""
    encode: Callable[[list[str]], list[list[int]]] | None = None
    """A classifier's texts to token ids (fast_encoder)."""


def load_model(run: RunPaths, name: str, task: str, labels: list[str], onnx_threads: int | None = None) -> Loaded:
    """A model of the run, as Try it loads it (a variant through its manifest: int8, ONNX, bitsandbytes...)."""
    found = run.find_model(name)
    if found.manifest is not None:
        from studio.compress.variant import load_variant  # peft/bitsandbytes only when a variant is served (LAZY)

        made = load_variant(found.folder, onnx_threads)
        return Loaded(made.model, made.tokenizer)
    source = resolve_source(str(found.folder))
    return Loaded(load_for_task(source, task, labels).eval(), load_tokenizer(source))


class ServedModel:
    """A deployment's model and, for the hybrid, the run's teacher (loaded when first needed)."""

    def __init__(self, run_dir: Path, model: str, threshold: float | None, hybrid: bool, batching: bool = True) -> None:
        self.run, self.name = RunPaths(run_dir), model
        config = self.run.read_config()
        self.task, self.labels = config["task"], list(config.get("labels") or [])
        self.max_length = int((config.get("distill") or {}).get("max_length") or 256)
        self.threshold = threshold if threshold is not None else hand_over_of(self.run, model)
        teacher = self.run.teacher_info()
        self.hybrid = hybrid and model != "teacher" and self.threshold is not None and not teacher.get("asked")
        self.why_no_hybrid = (
            ""
            if self.hybrid or not hybrid
            else "the teacher is the served model"
            if model == "teacher"
            else "the run's teacher was asked through a prompt, which the studio does not serve"
            if teacher.get("asked")
            else "no hand-over threshold was measured for this model (evaluate the run again) and none was given"
        )
        classifier = self.task == Task.CLASSIFICATION
        share = max(1, torch.get_num_threads() // ONNX_WORKERS)
        self.main = self._loaded(model, share if classifier else None)
        self._teacher: Loaded | None = None
        self._teacher_lock = threading.Lock()
        workers = ONNX_WORKERS if classifier and isinstance(self.main.model, OnnxModel) else 1
        self.batcher = Batcher(self._classify_batch if classifier else self._write_batch, batching, workers=workers)

    def _loaded(self, name: str, onnx_threads: int | None = None) -> Loaded:
        loaded = load_model(self.run, name, self.task, self.labels, onnx_threads)
        if self.task == Task.CLASSIFICATION:
            loaded.encode = fast_encoder(loaded.tokenizer, self.max_length)
        return loaded

    def teacher(self) -> Loaded:
        with self._teacher_lock:
            if self._teacher is None:
                self._teacher = self._loaded("teacher")
            return self._teacher

    # ------------------------------------------------------------------ classifiers

    def _probabilities(self, loaded: Loaded, texts: list[str]) -> torch.Tensor:
        """Each text's label probabilities. A batch runs shortest first in groups of PASS texts, each padded to its
        own longest: on a CPU a longer batch is no cheaper per text, so padding a short ticket to the longest one
        in the queue would only add work (measured in bench/serve.py)."""
        ids = loaded.encode(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        device = getattr(loaded.model, "device", torch.device("cpu"))
        out: list[torch.Tensor | None] = [None] * len(ids)
        with torch.inference_mode():  # no lock: a forward pass changes nothing, two batches may overlap
            for start in range(0, len(order), PASS):
                group = order[start : start + PASS]
                inputs = padded([ids[i] for i in group], loaded.tokenizer)
                rows = loaded.model(**{k: v.to(device) for k, v in inputs.items()}).logits.float().softmax(-1).cpu()
                for i, row in zip(group, rows):
                    out[i] = row
        return torch.stack(out)

    def _classify_batch(self, texts: list[str]) -> list[Label]:
        said = [self._label(row) for row in self._probabilities(self.main, texts)]
        unsure = [i for i, label in enumerate(said) if self.hybrid and label.confidence < self.threshold]
        if unsure:
            for i, row in zip(unsure, self._probabilities(self.teacher(), [texts[i] for i in unsure])):
                mine = said[i]
                said[i] = self._label(row)
                said[i].teacher_answered = True
                said[i].student = {"label": mine.label, "confidence": mine.confidence}
        return said

    def _label(self, row: torch.Tensor) -> Label:
        best = int(row.argmax())
        return Label(self.labels[best], float(row[best]), {label: float(p) for label, p in zip(self.labels, row.tolist())})

    async def classify(self, texts: list[str]) -> list[Label]:
        return await self.batcher.submit_all([text[:MAX_TEXT_CHARS] for text in texts])

    # ------------------------------------------------------------------ text generators

    def prompt_of(self, messages: list[dict] | None = None, prompt: str | None = None) -> str:
        """The text the model continues: chat messages through its chat template (or as the studio trained it:
        'Question: ... Answer:'), or a raw completion prompt as it is."""
        tok = self.main.tokenizer
        if messages is None:
            return (prompt or "")[:MAX_TEXT_CHARS]
        if tok.chat_template:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)[-MAX_TEXT_CHARS:]
        said = [m for m in messages if m.get("role") != "system"]
        earlier = "\n".join(f"{m['role']}: {m['content']}" for m in said[:-1])
        last = said[-1]["content"] if said else ""
        return prompt_text({"prompt": f"{earlier}\n{last}".strip() if earlier else last}, tok)[-MAX_TEXT_CHARS:]

    def _generate(self, loaded: Loaded, asked: list[Asked]) -> list[Written]:
        """One batch of prompts (left-padded), grouped by how they sample; each answer cut at its own max_tokens."""
        out: list[Written | None] = [None] * len(asked)
        groups: dict[tuple[float, float], list[int]] = {}
        for i, a in enumerate(asked):
            groups.setdefault((a.temperature, a.top_p), []).append(i)
        tok = loaded.tokenizer
        for (temperature, top_p), members in groups.items():
            prompts = [asked[i].prompt for i in members]
            side, tok.padding_side = tok.padding_side, "left"
            try:
                enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            finally:
                tok.padding_side = side
            longest = max(asked[i].max_tokens for i in members)
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
            )
            with loaded.lock, torch.inference_mode():
                made = loaded.model.generate(
                    **enc.to(getattr(loaded.model, "device", torch.device("cpu"))),
                    max_new_tokens=longest,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                    logits_processor=[NoRepeatInAnswer(enc["input_ids"].shape[1])],
                    **sampling,
                )
            start = enc["input_ids"].shape[1]
            for j, (row, i) in enumerate(zip(made[:, start:].tolist(), members)):
                out[i] = self._written(row[: asked[i].max_tokens], int(enc["attention_mask"][j].sum()))
        return [w for w in out if w is not None]

    def _written(self, ids: list[int], prompt_tokens: int) -> Written:
        tok = self.main.tokenizer
        ended = tok.eos_token_id in ids
        if ended:
            ids = ids[: ids.index(tok.eos_token_id)]
        return Written(tok.decode(ids, skip_special_tokens=True).strip(), "stop" if ended else "length", prompt_tokens, len(ids))

    def _write_batch(self, asked: list[Asked]) -> list[Written]:
        written = self._generate(self.main, asked)
        if not self.hybrid:
            return written
        records = [{"prompt": a.prompt} for a in asked]
        try:
            sure = confidences(self.main.model, self.main.tokenizer, records, [w.text for w in written])
        except (TypeError, AttributeError, RuntimeError, ValueError):  # a form that cannot score a whole text (ONNX)
            return written
        for w, s in zip(written, sure):
            w.confidence = s
        unsure = [i for i, w in enumerate(written) if w.confidence is not None and w.confidence < self.threshold]
        if unsure:
            for i, w in zip(unsure, self._generate(self.teacher(), [asked[i] for i in unsure])):
                w.teacher_answered, w.confidence = True, written[i].confidence
                written[i] = w
        return written

    async def write(self, asked: list[Asked]) -> list[Written]:
        return await self.batcher.submit_all(asked)

    def stream(self, asked: Asked) -> Iterator[str]:
        """The served model's answer piece by piece as it writes (no hybrid: a streamed answer cannot be taken back;
        the API streams a hybrid's decided answer instead)."""
        from transformers import TextIteratorStreamer

        tok = self.main.tokenizer
        enc = tok([asked.prompt], return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=300)
        sampling = {"do_sample": True, "temperature": asked.temperature, "top_p": asked.top_p} if asked.temperature > 0 else {}

        def run() -> None:
            with self.main.lock, torch.inference_mode():
                self.main.model.generate(
                    **enc,
                    max_new_tokens=asked.max_tokens,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                    streamer=streamer,
                    logits_processor=[NoRepeatInAnswer(enc["input_ids"].shape[1])],
                    **sampling,
                )

        threading.Thread(target=run, daemon=True, name=f"stream-{self.name}").start()
        yield from streamer


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError(['send "text": "..." or "texts": ["...", ...] (strings)'])
    return texts


def fast_encoder(tok, max_length: int) -> Callable[[list[str]], list[list[int]]]:
    """Texts to token ids, special tokens included, cut at max_length: what ``tok(texts, truncation=True)`` gives,
    read from a copy of the tokenizer's Rust core whose truncation and padding are set once, here. Two batches may
    be read at once (ONNX_WORKERS), and transformers' own call sets those on the shared core on every call: a write
    while another thread encodes fails with "Already borrowed" (huggingface/transformers#47085). Encoding only
    reads the copy, so any number of threads may share it."""
    if not getattr(tok, "is_fast", False):
        return lambda texts: tok(texts, truncation=True, max_length=max_length)["input_ids"]
    from tokenizers import Tokenizer

    core = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    core.no_padding()
    core.enable_truncation(max_length)
    return lambda texts: [e.ids for e in core.encode_batch(texts)]


def padded(ids: list[list[int]], tok) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of texts padded to their longest, on the tokenizer's padding side: in numpy,
    touching nothing of the tokenizer's (see fast_encoder), 26 µs for 8 tickets where ``tok.pad`` takes 375."""
    longest = max(len(row) for row in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = np.full((len(ids), longest), pad, dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    left = tok.padding_side == "left"
    for i, row in enumerate(ids):
        span = slice(longest - len(row), longest) if left else slice(0, len(row))
        input_ids[i, span] = row
        mask[i, span] = 1
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
