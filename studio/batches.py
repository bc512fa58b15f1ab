"""Turn dataset records into token batches; shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import PreTrainedTokenizerBase

from studio.losses import NO_LABEL


def causal_text(record: dict, tokenizer: PreTrainedTokenizerBase) -> str:
    """The training text of a causal-LM record; prompt/response pairs use the chat template."""
    if "text" in record:
        return record["text"] + (tokenizer.eos_token or "")
    messages = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return f"Question: {record['prompt']}\nAnswer: {record['response']}{tokenizer.eos_token or ''}"


def question_of(record: dict) -> str:
    """What a user would type: the prompt, or the first third of a plain text."""
    if "prompt" in record:
        return record["prompt"]
    words = record["text"].split()
    return " ".join(words[: max(1, len(words) // 3)])


def reference_of(record: dict) -> str:
    """What a good answer looks like: the response, or the rest of a plain text after its first third."""
    if "response" in record:
        return record["response"]
    words = record["text"].split()
    return " ".join(words[max(1, len(words) // 3) :])


def prompt_text(record: dict, tokenizer: PreTrainedTokenizerBase) -> str:
    """The part of a record a user would type, formatted for generation."""
    if "prompt" not in record:
        return question_of(record)
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": record["prompt"]}], tokenize=False, add_generation_prompt=True
        )
    return f"Question: {record['prompt']}\nAnswer:"


def encode_records(
    records: list[dict], tokenizer: PreTrainedTokenizerBase, max_length: int, label_ids: dict[str, int] | None = None
) -> list[dict]:
    """Token ids per record (unpadded), with its index (to find cached teacher logits) and label."""
    if label_ids is not None:
        texts = [r["text"] for r in records]
    else:
        texts = [causal_text(r, tokenizer) for r in records]
    encoded = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=label_ids is not None)
    items = []
    for i, ids in enumerate(encoded["input_ids"]):
        item = {"index": i, "input_ids": ids}
        if label_ids is not None:  # a text the user left unlabelled learns from the teacher's answer alone
            item["label"] = label_ids[records[i]["label"]] if "label" in records[i] else NO_LABEL
        items.append(item)
    return items


def collate(items: list[dict], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad a list of encoded items to the longest (or ``pad_to``) length."""
    length = pad_to or max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it["input_ids"])
        ids[row, :n] = torch.tensor(it["input_ids"])
        mask[row, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "index": torch.tensor([it["index"] for it in items])}
    if "label" in items[0]:
        batch["labels"] = torch.tensor([it["label"] for it in items])
    return batch


GROUP = 50
"""Length-grouped shuffling sorts windows of this many batches by length (as transformers' Trainer
does with group_by_length): batches pad to similar lengths, so varied texts train up to twice as fast."""


def iter_batches(
    items: list[dict], batch_size: int, pad_id: int, seed: int | None = None, pad_to: int | None = None, by_length: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches in order, or shuffled reproducibly when ``seed`` is given (same seed, same order).

    ``by_length``: with a seed, each window of GROUP batches is sorted by length and the batches
    are shuffled; without one, all items go longest first (order does not matter to a score)."""
    order = list(range(len(items)))
    size = lambda i: len(items[i]["input_ids"])  # noqa: E731
    if seed is None:
        if by_length:
            order.sort(key=size, reverse=True)
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    else:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(items), generator=generator).tolist()
        if by_length:
            window = GROUP * batch_size
            order = [
                i for start in range(0, len(order), window) for i in sorted(order[start : start + window], key=size, reverse=True)
            ]
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if by_length:
            batches = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
    for batch in batches:
        yield collate([items[i] for i in batch], pad_id, pad_to)


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


def label_index(labels: list[str]) -> dict[str, int]:
    """Each label's index: the model's class ids, in the order of the run's labels."""
    return {label: i for i, label in enumerate(labels)}
