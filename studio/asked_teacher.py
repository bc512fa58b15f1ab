"""A teacher that is asked, not trained: an instruction-tuned text generator reads your label names (with their
descriptions) and a few of your labelled texts, then scores each label name as the answer for a text.

    AskedTeacher     what is asked: the model (catalog key, folder, or a model an OpenAI-compatible server serves),
                     the label names, their descriptions and the examples; recorded with the run
    LocalScorer      a model on this machine: the shared part of the prompt runs once (its attention cache is
                     reused for every text); a label's score is the model's log-probability of its name's first
                     token after "Category:" (all of its tokens when two names begin alike)
    EndpointScorer   a server you run (llama.cpp's llama-server, vLLM, ...) through the OpenAI client: one
                     completion token with the top log-probabilities, read for the label names' first tokens
    AnswerBook       every answer kept in a SQLite file, keyed by the model and the whole prompt: a re-run
                     asks nothing twice

Soft labels come from those scores (never from parsed text), calibrated by the answer to an empty text: a small
model that says "billing" to everything is corrected for that leaning (contextual calibration, Zhao et al. 2021).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from studio.errors import ConfigError, StudioError
from studio.models import load_causal_lm, load_tokenizer
from studio.progress import Progress, report
from studio.teacher import resolve_source

TEXT_CHARS = 600
"""A text is cut to this many characters in the prompt: the start of a text says what it is about, and the cost
of asking grows with its length."""
EXAMPLE_CHARS = 200
CONTENT_FREE = "N/A"
TOP_LOGPROBS = 20
"""How many of the endpoint's most likely first tokens are read (vLLM's default cap is 20)."""


class TeacherEndpointError(StudioError):
    """The teacher's server could not be reached or did not answer as an OpenAI-compatible server does."""


@dataclass
class AskedTeacher:
    model: str
    """A catalog key or local folder; with ``endpoint``, the model name the server knows it by."""
    labels: list[str]
    endpoint: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)
    """(text, label) pairs from the labelled rows, shown before each text."""

    def prefix(self) -> str:
        """The part of the prompt every text shares."""
        lines = ["Sort each text into exactly one of these categories:"]
        for label in self.labels:
            about = self.descriptions.get(label, "")
            lines.append(f"- {shown(label)}" + (f": {about}" if about else ""))
        lines.append("")
        for text, label in self.examples:
            lines += [f"Text: {_cut(text, EXAMPLE_CHARS)}", f"Category: {shown(label)}", ""]
        return "\n".join(lines) + "\n"

    @staticmethod
    def suffix(text: str) -> str:
        return f"Text: {_cut(text, TEXT_CHARS)}\nCategory:"

    def identity(self) -> str:
        return json.dumps([self.endpoint, self.model, self.labels])

    def to_dict(self) -> dict:
        return {**asdict(self), "examples": [list(e) for e in self.examples]}

    @classmethod
    def from_dict(cls, data: dict) -> AskedTeacher:
        return cls(**{**data, "examples": [tuple(e) for e in data.get("examples", [])]})


def shown(label: str) -> str:
    """A label as the model reads it: 'technical_issue' is asked as 'technical issue' (a small model scores
    words it knows far better than a column value: macro-F1 0.33 against 0.25 on the bundled tickets)."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def _cut(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " …"


def parse_descriptions(text: str, labels: Sequence[str]) -> dict[str, str]:
    """'label: what it means', one a line; a line naming no label is refused with the labels there are."""
    found, problems = {}, []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, sep, about = line.partition(":")
        if not sep or name.strip() not in labels:
            problems.append(
                f"label_descriptions: '{line.strip()[:60]}' does not start with one of your labels and a colon "
                f"(your labels: {', '.join(labels)})"
            )
            continue
        found[name.strip()] = about.strip()
    if problems:
        raise ConfigError(problems)
    return found


def pick_examples(rows: list[dict], labels: Sequence[str], per_label: int) -> list[tuple[str, str]]:
    """Up to ``per_label`` labelled texts a label, the shortest first (they cost the least to show), taken in
    turn label by label so no label sits only at the end of the prompt."""
    by_label = {label: sorted((r["text"] for r in rows if r.get("label") == label), key=len) for label in labels}
    return [(by_label[label][i], label) for i in range(per_label) for label in labels if i < len(by_label[label])]


# --------------------------------------------------------------------------- the answers, kept


class AnswerBook:
    """Scores already asked for, by sha256 of (teacher, prompt): kept in SQLite, so they outlive the run."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, scores TEXT NOT NULL)")

    def get(self, keys: list[str]) -> dict[str, list[float]]:
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found |= {
                k: json.loads(v) for k, v in self.db.execute(f"SELECT key, scores FROM answers WHERE key IN ({marks})", chunk)
            }
        return found

    def put(self, answers: dict[str, list[float]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)", [(k, json.dumps(v)) for k, v in answers.items()])

    def close(self) -> None:
        self.db.close()


def _key(teacher: AskedTeacher, prompt: str) -> str:
    return hashlib.sha256(f"{teacher.identity()}\0{prompt}".encode()).hexdigest()


Scorer = Callable[[str, list[str], list[str]], torch.Tensor]
"""(shared prefix, per-text suffixes, label names) -> raw log-probability scores [N, C]."""


def ask(
    teacher: AskedTeacher,
    texts: list[str],
    scorer: Scorer,
    book: AnswerBook | None = None,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Calibrated log-probabilities over the labels [N, C]: the answers in ``book`` are reused, the rest asked
    ``batch_size`` at a time (and kept in ``book`` as they come, so an interrupted run keeps what it asked)."""
    prefix = teacher.prefix()
    prompts = [teacher.suffix(t) for t in [CONTENT_FREE, *texts]]
    keys = [_key(teacher, prefix + p) for p in prompts]
    known = book.get(keys) if book is not None else {}
    missing = [i for i, k in enumerate(keys) if k not in known]
    for done, start in enumerate(range(0, len(missing), batch_size)):
        chunk = missing[start : start + batch_size]
        scores = scorer(prefix, [prompts[i] for i in chunk], [shown(label) for label in teacher.labels])
        fresh = {keys[i]: row for i, row in zip(chunk, scores.tolist())}
        known |= fresh
        if book is not None:
            book.put(fresh)
        if on_batch is not None:
            on_batch(done + 1, math.ceil(len(missing) / batch_size))
    raw = torch.tensor([known[k] for k in keys], dtype=torch.float32)
    calibrated = raw[1:].log_softmax(-1) - raw[:1].log_softmax(-1)  # divide out the leaning seen on an empty text
    return calibrated.log_softmax(-1)


# --------------------------------------------------------------------------- a model on this machine


class LocalScorer:
    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self._prefix: tuple[str, object, int] | None = None

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prefix_cache(self, prefix: str):
        if self._prefix is None or self._prefix[0] != prefix:
            ids = torch.tensor([self._ids(prefix)])
            with torch.inference_mode():
                past = self.model(input_ids=ids, use_cache=True).past_key_values
            self._prefix = (prefix, past, ids.shape[1])
        return self._prefix[1], self._prefix[2]

    @torch.inference_mode()
    def __call__(self, prefix: str, suffixes: list[str], labels: list[str]) -> torch.Tensor:
        names = [self._ids(" " + label) for label in labels]
        firsts = [n[0] for n in names]
        if len(set(firsts)) == len(firsts):
            last = self._last_logits(prefix, [self._ids(s) for s in suffixes])
            return last.log_softmax(-1)[:, firsts]
        # two names begin with the same token: each name's tokens are scored whole, one sequence a label
        rows = [self._ids(s) for s in suffixes]
        out = torch.empty(len(rows), len(labels))
        for c, name in enumerate(names):
            out[:, c] = self._sequence_logprob(prefix, rows, name)
        return out

    def _run(self, prefix: str, rows: list[list[int]]) -> tuple[torch.Tensor, list[int]]:
        """Logits for each row after the shared prefix (rows right-padded), and the rows' lengths."""
        past, length = self._prefix_cache(prefix)
        past = copy.deepcopy(past)
        past.batch_repeat_interleave(len(rows))
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        full_mask = torch.cat([torch.ones(len(rows), length, dtype=mask.dtype), mask], dim=1)
        logits = self.model(input_ids=ids, attention_mask=full_mask, past_key_values=past, use_cache=True).logits
        return logits.float(), [len(r) for r in rows]

    def _last_logits(self, prefix: str, rows: list[list[int]]) -> torch.Tensor:
        logits, lengths = self._run(prefix, rows)
        return logits[torch.arange(len(rows)), torch.tensor(lengths) - 1]

    def _sequence_logprob(self, prefix: str, rows: list[list[int]], name: list[int]) -> torch.Tensor:
        logits, lengths = self._run(prefix, [r + name for r in rows])
        logp = logits.log_softmax(-1)
        total = torch.zeros(len(rows))
        for i, n in enumerate(lengths):
            start = n - len(name)  # the first name token is predicted from the position before it
            for j, token in enumerate(name):
                total[i] += logp[i, start - 1 + j, token]
        return total


# --------------------------------------------------------------------------- a server the user runs


class EndpointScorer:
    """Any OpenAI-compatible completions server: the prompt goes to ``endpoint``, one token comes back with its
    top log-probabilities. Nothing is parsed from the answer's text."""

    def __init__(self, endpoint: str, model: str, api_key: str = "", timeout_s: float = 120.0, retries: int = 1) -> None:
        from openai import OpenAI

        self.endpoint, self.model = endpoint, model
        self.client = OpenAI(base_url=endpoint, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=retries)

    def __call__(self, prefix: str, suffixes: list[str], labels: list[str]) -> torch.Tensor:
        return torch.tensor([self._one(prefix + s, labels) for s in suffixes])

    def _one(self, prompt: str, labels: list[str]) -> list[float]:
        import openai

        try:
            reply = self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS
            )
        except openai.APIConnectionError as err:
            raise TeacherEndpointError(
                f"The teacher's server at {self.endpoint} could not be reached ({err.__cause__ or err}). Start it "
                "(e.g. llama-server -m model.gguf --port 8080) or correct teacher_endpoint."
            ) from err
        except openai.APIStatusError as err:
            raise TeacherEndpointError(
                f"The teacher's server at {self.endpoint} refused the request (HTTP {err.status_code}: "
                f"{str(err.message)[:200]}). Check that it serves '{self.model}' and offers /completions with logprobs."
            ) from err
        choice = reply.choices[0]
        top = (choice.logprobs.top_logprobs or [None])[0] if choice.logprobs else None
        if not top:
            raise TeacherEndpointError(
                f"The teacher's server at {self.endpoint} answered without log-probabilities; the studio reads "
                "the model's scores over your label names, so the server must support 'logprobs' on /completions."
            )
        return label_scores(dict(top), labels)


def label_scores(top: dict[str, float], labels: list[str]) -> list[float]:
    """Each label's log-probability as the first token's: the mass of the top tokens that begin its name
    (' bill' begins 'billing'); a name none begins gets less than the least likely token seen."""
    floor = min(top.values()) - 1.0
    scores = []
    for label in labels:
        name = label.lower()
        hits = [lp for token, lp in top.items() if token.strip() and name.startswith(token.strip().lower())]
        scores.append(float(torch.tensor(hits).logsumexp(0)) if hits else floor)
    return scores


# --------------------------------------------------------------------------- in a run


def asked_teacher_of(config, dataset) -> AskedTeacher:
    """The teacher a run's settings ask: its labels, their descriptions, and examples from the labelled rows."""
    labels = dataset.report.labels
    return AskedTeacher(
        model=config.teacher,
        labels=labels,
        endpoint=config.teacher_endpoint,
        descriptions=parse_descriptions(config.label_descriptions, labels),
        examples=pick_examples(dataset.split("train"), labels, config.prompt_examples),
    )


def scorer_for(teacher: AskedTeacher) -> Scorer:
    if teacher.endpoint:
        return EndpointScorer(teacher.endpoint, teacher.model, os.environ.get("SLM_STUDIO_TEACHER_API_KEY", ""))
    source = resolve_source(teacher.model)
    check_can_answer(source.path, teacher.model)
    return LocalScorer(load_causal_lm(source), load_tokenizer(source))


def check_can_answer(folder: str, name: str) -> None:
    """Only a text generator can be asked: it scores the words that come next, an encoder does not."""
    config = Path(folder) / "config.json"
    architectures = json.loads(config.read_text()).get("architectures") or [] if config.exists() else []
    if architectures and not any(a.endswith("ForCausalLM") for a in architectures):
        raise ConfigError(
            [
                f"teacher_training 'ask' needs a text generator as the teacher (e.g. smollm2-135m) or a server "
                f"(teacher_endpoint); {name} is a {architectures[0]}, which cannot be asked. Use 'auto' to train it"
            ]
        )


def teacher_folder(teacher: AskedTeacher) -> str:
    """Where the asked teacher's weights are (its address, when a server runs it)."""
    if teacher.endpoint:
        return teacher.endpoint
    return resolve_source(teacher.model).path


def answers_of(
    teacher: AskedTeacher,
    records: list[dict],
    book_path: Path,
    on_progress=None,
    scorer: Scorer | None = None,
) -> torch.Tensor:
    """The teacher's calibrated log-probabilities for ``records`` [N, C], asked once and kept in ``book_path``."""
    texts = [r["text"] for r in records]
    book = AnswerBook(book_path)
    try:
        return ask(
            teacher,
            texts,
            scorer or _Lazy(teacher),
            book,
            on_batch=lambda done, of: report(
                on_progress, Progress("cache", 1, 1, done, of, message=f"asking the teacher about {len(texts):,} texts")
            ),
        )
    finally:
        book.close()


class _Lazy:
    """The scorer, built on the first question: when every answer is in the book, no model is loaded."""

    def __init__(self, teacher: AskedTeacher) -> None:
        self.teacher, self.scorer = teacher, None

    def __call__(self, prefix: str, suffixes: list[str], labels: list[str]) -> torch.Tensor:
        self.scorer = self.scorer or scorer_for(self.teacher)
        return self.scorer(prefix, suffixes, labels)
