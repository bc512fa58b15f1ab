"""Judge text generators by what they write, not by perplexity alone.

Every model answers the same held-out prompts the way the exported ``predict.py`` does (greedy, up to
48 new tokens, never repeating a run of 3 tokens within an answer, stop at the end-of-text token). Its
answers are then scored three ways:

- against the reference answers: ROUGE-L F (longest common word sequence, ``rouge-score``; 0-1, like
  macro-F1) and chrF (character n-grams, ``sacrebleu``; 0-100, as sacrebleu reports it);
- by the teacher, without references: how surprising the teacher finds each answer after its prompt
  (perplexity of the answer's tokens), beside the same figure for the human reference answers;
- for degenerate output: empty answers, answers that repeat themselves, answers the teacher finds far
  more surprising than the human answer to the same prompt (word salad).

A model whose answers fail that check is never recommended and never answers alone in a hybrid export.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from studio import ranks
from studio.batches import prompt_text, question_of, reference_of
from studio.metrics import ModelMetrics
from studio.splits import LEAK_SAMPLE, near_repeats, row_text

JUDGED_PROMPTS = 50
"""Held-out prompts each model answers (generation is slow on a CPU)."""
NEW_TOKENS = 48
"""As the exported predict.py generates."""
GENERATE_BATCH = 8
NO_REPEAT = 3
"""No answer repeats a run of this many tokens (the prompt may be quoted): greedy decoding of a small model loops
("the suction is sucked out of the vacuum, and the suction is sucked out of the vacuum ..."), and nobody should
be shown that. The exported predict.py and the ONNX form apply the same rule."""
REPEATED = 0.3
"""An answer whose word pairs are repeats at this share (or more) repeats itself (human answers: about 0)."""
UNREADABLE = 3.0
"""An answer the teacher finds this many times as surprising as the human answer to the same prompt reads as
word salad (the teacher's own answers score about a tenth of the human ones)."""
FLUENT_SURPRISE = 2.0
"""A model is fluent when the teacher finds its answers at most this many times as surprising as the human
answers (perplexity of all answer tokens) ..."""
FLUENT_DEGENERATE = 0.1
"""... and at most this share of its answers is degenerate."""


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[dict],
    new_tokens: int = NEW_TOKENS,
    batch_size: int = GENERATE_BATCH,
) -> list[str]:
    """Greedy answers, as the export writes them: up to ``new_tokens``, stopping at the end-of-text token.
    Transformers models answer in left-padded batches; anything else (an ONNX session) one prompt at a time."""
    if not isinstance(model, PreTrainedModel):
        batch_size = 1
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    answers: list[str] = []
    try:
        for start in range(0, len(records), batch_size):
            prompts = [prompt_text(r, tokenizer) for r in records[start : start + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            out = model.generate(
                **enc,
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                logits_processor=LogitsProcessorList([NoRepeatInAnswer(enc["input_ids"].shape[1])]),
            )
            answers += [_decode(row, tokenizer) for row in out[:, enc["input_ids"].shape[1] :].tolist()]
    finally:
        tokenizer.padding_side = side
    return answers


def banned_tokens(answer: list[int], n: int = NO_REPEAT) -> set[int]:
    """Tokens that would complete a run of ``n`` tokens the answer already holds.

    >>> sorted(banned_tokens([5, 6, 7, 5, 6]))
    [7]
    """
    if n < 1 or len(answer) < n - 1:
        return set()
    tail = answer[len(answer) - n + 1 :]
    return {answer[i + n - 1] for i in range(len(answer) - n + 1) if answer[i : i + n - 1] == tail}


class NoRepeatInAnswer(LogitsProcessor):
    """Bans ``banned_tokens`` of each row's answer so far (the tokens after ``prompt_length``)."""

    def __init__(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            banned = banned_tokens(input_ids[row, self.prompt_length :].tolist())
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores


def _decode(ids: list[int], tokenizer: PreTrainedTokenizerBase) -> str:
    """The answer up to its first end-of-text token."""
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


@torch.inference_mode()
def surprise(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict], answers: list[str]
) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each answer after its prompt, under ``model``."""
    out = []
    for record, answer in zip(records, answers):
        prompt = tokenizer(prompt_text(record, tokenizer), add_special_tokens=False)["input_ids"]
        said = tokenizer(_lead(record, tokenizer) + answer, add_special_tokens=False)["input_ids"] if answer.strip() else []
        if not said:
            out.append((0.0, 0))
            continue
        ids = torch.tensor([prompt + said], device=model.device)
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="sum")
        out.append((float(nll), len(said)))
    return out


def confidences(model, tokenizer: PreTrainedTokenizerBase, records: list[dict], answers: list[str]) -> list[float]:
    """How sure ``model`` is of each of its answers: the geometric mean of its answer tokens' probabilities (as the
    exported predict.py measures it); 0 for an empty answer."""
    return [math.exp(-nll / n) if n else 0.0 for nll, n in surprise(model, tokenizer, records, answers)]


def typical_confidence(model, tokenizer: PreTrainedTokenizerBase, records: list[dict], answers: list[str]) -> float | None:
    """The median of ``confidences``: the export's default hand-over threshold for a text generator (half of
    held-out questions go to the teacher). None for a model that cannot score its own answers here."""
    try:
        said = confidences(model, tokenizer, records, answers)
    except (TypeError, AttributeError, RuntimeError, ValueError):  # e.g. an ONNX session: no logits for a whole text
        return None
    return round(statistics.median(said), 4) if said else None


def _lead(record: dict, tokenizer: PreTrainedTokenizerBase) -> str:
    """What separates prompt and answer in training text (batches.causal_text): nothing after a chat template's
    assistant turn, a space after "Answer:" or inside a plain text."""
    return "" if "prompt" in record and tokenizer.chat_template else " "


def perplexity(scores: list[tuple[float, int]]) -> float | None:
    """Perplexity over all answer tokens together; None when there are none (every answer empty)."""
    tokens = sum(n for _, n in scores)
    return math.exp(sum(s for s, _ in scores) / tokens) if tokens else None


def repeated_share(text: str, n: int = 2) -> float:
    """Share of an answer's word n-grams that already occurred earlier in it."""
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def degenerate(answer: str, answer_ppl: float, human_ppl: float) -> str | None:
    """Why an answer is no answer at all, in words; None when it is one. ``answer_ppl`` and ``human_ppl``: the
    teacher's perplexity of this answer and of the human answer to the same prompt."""
    if not re.search(r"\w", answer):
        return "empty"
    if repeated_share(answer) >= REPEATED:
        return "repeats itself"
    if answer_ppl > UNREADABLE * human_ppl:
        return "reads as word salad"
    return None


@dataclass
class Judged:
    """One model's answers and how they were judged."""

    answers: list[str]
    rouge_l: float
    chrf: float
    answer_perplexity: float | None
    """The teacher's perplexity of these answers (all answer tokens together; None if all are empty)."""
    repetition: float
    """Mean share of repeated word pairs in an answer."""
    degenerate: list[str | None] = field(default_factory=list)
    fluent: bool = True
    why_not: str = ""

    @property
    def degenerate_share(self) -> float:
        return sum(d is not None for d in self.degenerate) / max(1, len(self.degenerate))

    def metrics(self) -> dict:
        return {
            "rouge_l": self.rouge_l,
            "chrf": self.chrf,
            "answer_perplexity": self.answer_perplexity,
            "repetition": self.repetition,
            "degenerate_share": self.degenerate_share,
            "fluent": self.fluent,
        }


def reference_scores(answers: list[str], references: list[str]) -> tuple[float, float]:
    """Mean ROUGE-L F-measure (0-1) and corpus chrF (0-100)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = statistics.fmean(scorer.score(ref, ans)["rougeL"].fmeasure for ans, ref in zip(answers, references))
    chrf = sacrebleu.corpus_chrf(answers, [references]).score
    return rouge, float(chrf)


class Judge:
    """The teacher reads every model's answers to the same prompts, and the human ones."""

    def __init__(self, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict]) -> None:
        self.teacher, self.tokenizer = teacher.eval(), tokenizer
        self.records = records[:JUDGED_PROMPTS]
        self.references = [reference_of(r) for r in self.records]
        self.human = surprise(self.teacher, tokenizer, self.records, self.references)
        self.human_ppl = perplexity(self.human)
        self.human_each = [math.exp(s / n) if n else math.inf for s, n in self.human]

    def judge(self, answers: list[str]) -> Judged:
        scores = surprise(self.teacher, self.tokenizer, self.records, answers)
        rouge, chrf = reference_scores(answers, self.references)
        each = [math.exp(s / n) if n else math.inf for s, n in scores]
        found = [degenerate(a, p, h) for a, p, h in zip(answers, each, self.human_each)]
        judged = Judged(
            answers=answers,
            rouge_l=rouge,
            chrf=chrf,
            answer_perplexity=perplexity(scores),
            repetition=statistics.fmean(repeated_share(a) for a in answers) if answers else 0.0,
            degenerate=found,
        )
        problems = []
        if judged.degenerate_share > FLUENT_DEGENERATE:
            bad, why = next((a, d) for a, d in zip(answers, found) if d)
            example = f'"{bad[:80]}" {why}' if bad.strip() else "an empty answer"
            problems.append(
                f"{sum(d is not None for d in found)} of {len(answers)} answers are no answer at all (e.g. {example})"
            )
        human = self.human_ppl
        if judged.answer_perplexity is not None and human and judged.answer_perplexity > FLUENT_SURPRISE * human:
            problems.append(
                f"the teacher finds its answers {judged.answer_perplexity / human:.1f}x as surprising as the human answers"
            )
        judged.fluent, judged.why_not = not problems, "; ".join(problems)
        return judged


def side_by_side(book: dict, count: int = 5, models: list[str] | None = None) -> list[dict]:
    """The first ``count`` judged prompts: the prompt, the reference and each model's answer (marked when
    degenerate), for the CLI, Compare and the model card."""
    names = models or list(book.get("by_model", {}))
    rows = []
    for i, prompt in enumerate(book.get("prompts", [])[:count]):
        row = {"prompt": prompt, "reference": book["references"][i]}
        for name in names:
            if name in book["by_model"]:
                why = (book.get("degenerate", {}).get(name) or [None] * (i + 1))[i]
                row[name] = book["by_model"][name][i] + (f"  [{why}]" if why else "")
        rows.append(row)
    return rows


def answers_text(book: dict, count: int = 5) -> str:
    """Plain text of ``side_by_side``: what people read before they trust a number."""
    lines = [
        f"Answers to the first {min(count, len(book.get('prompts', [])))} held-out prompts (greedy, up to "
        f"{NEW_TOKENS} tokens, no run of {NO_REPEAT} tokens repeated, as the export answers):"
    ]
    for row in side_by_side(book, count):
        lines.append(f"Q: {row.pop('prompt')}")
        width = max(len(k) for k in row)
        lines += [f"  {name + ':':<{width + 1}} {text}" for name, text in row.items()]
    return "\n".join(lines)


class AnswerBook:
    """Text generators: every model answers the same held-out prompts and the teacher judges the answers."""

    def __init__(self, test: list[dict], train: list[dict]) -> None:
        """Judged on test prompts that do not nearly repeat a training row (a test file of the user's own may)."""
        candidates = test[: 4 * JUDGED_PROMPTS]
        repeats = {i for i, _ in near_repeats([row_text(r) for r in candidates], [row_text(r) for r in train[: LEAK_SAMPLE[1]]])}
        fresh = [r for i, r in enumerate(candidates) if i not in repeats]
        self.records = fresh[:JUDGED_PROMPTS]
        self.skipped = len(repeats)
        self.judge: Judge | None = None
        self.by_model: dict[str, list[str]] = {}
        self.degenerate: dict[str, list[str | None]] = {}

    def add(self, row: ModelMetrics, model, tokenizer) -> None:
        """Answer the prompts with ``model`` and put the judgement in ``row``; the teacher comes first."""
        if self.judge is None:
            self.judge = Judge(model, tokenizer, self.records)
        # in a job of several processes each writes the answers to its part of the prompts
        judged = self.judge.judge(ranks.spread(lambda part: generate_answers(model, tokenizer, part), self.records))
        for key, value in judged.metrics().items():
            setattr(row, key, value)
        if row.name != "teacher":
            row.hand_over_threshold = typical_confidence(model, tokenizer, self.records, judged.answers)
        row.fluency_note = judged.why_not
        self.by_model[row.name], self.degenerate[row.name] = judged.answers, judged.degenerate

    def report(self) -> dict:
        judge = self.judge
        return {
            "prompts": [question_of(r) for r in self.records],
            "references": judge.references if judge else [],
            "reference_perplexity": judge.human_ppl if judge else None,
            "skipped_repeats": self.skipped,
            "by_model": self.by_model,
            "degenerate": self.degenerate,
        }
