"""Splitting checked rows into train / validation / test so nothing leaks: related rows (the same answer, the
same prompt, near repeats) stay on one side, and any near repeats left across the split are named.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Protocol

from studio.data_files import load_split
from studio.words import Task


class Shares(Protocol):
    """How much to hold out, and the seed (DatasetOptions has these)."""

    validation_fraction: float
    test_fraction: float
    seed: int


def split_indices(labels: list[str] | None, n: int, opts: Shares, groups: list[int] | None = None) -> dict[str, list[int]]:
    """Seeded split; stratified by label so every split keeps the class balance, or (``groups``) by whole
    groups of related rows, so no held-out row has a relative in training."""
    if groups is not None:
        return group_split(groups, opts)
    rng = random.Random(opts.seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        by_label[labels[i] if labels else ""].append(i)
    split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for key in sorted(by_label):
        idx = by_label[key]
        rng.shuffle(idx)
        n_test = round(len(idx) * opts.test_fraction)
        n_val = round(len(idx) * opts.validation_fraction)
        if labels and opts.test_fraction > 0:
            n_test = max(1, n_test)
        if len(idx) - n_test - n_val < 1:
            n_val = max(0, len(idx) - n_test - 1)
        split["test"] += idx[:n_test]
        split["validation"] += idx[n_test : n_test + n_val]
        split["train"] += idx[n_test + n_val :]
    for part in split.values():
        part.sort()
    return split


def group_split(groups: list[int], opts: Shares) -> dict[str, list[int]]:
    """Whole groups, in seeded order, fill test, then validation, then train; train always keeps one."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    order = sorted(members)
    random.Random(opts.seed).shuffle(order)
    want = {"test": round(len(groups) * opts.test_fraction), "validation": round(len(groups) * opts.validation_fraction)}
    split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for group in order:
        side = next((name for name in ("test", "validation") if len(split[name]) < want[name]), "train")
        split[side] += members[group]
    if not split["train"]:  # one or two huge groups: training needs something
        side = "validation" if split["validation"] else "test"
        split["train"], split[side] = split[side], []
    for part in split.values():
        part.sort()
    return split


GROUP_LIMIT = 20_000
"""Rows up to which near repeats are found by comparing every pair (beyond it, only identical ones group)."""


def related_groups(pairs: list[tuple[str, str]]) -> list[int]:
    """A group id per (prompt or text, answer) row: rows that share an answer or a prompt, or nearly repeat
    each other (word TF-IDF cosine a little below the leak check's NEAR_REPEAT, for a margin), share a group."""
    threshold = NEAR_REPEAT - 0.05
    parent = list(range(len(pairs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    first: dict[tuple[str, str], int] = {}
    for i, (prompt, answer) in enumerate(pairs):
        for key in (("prompt", _plain(prompt)), ("answer", _plain(answer))):
            if key[1]:
                join(i, first.setdefault(key, i))
    if 1 < len(pairs) <= GROUP_LIMIT:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [f"{prompt} {answer}".strip() for prompt, answer in pairs]
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
        for start in range(0, len(texts), 2_000):
            similar = (vectors[start : start + 2_000] @ vectors.T).tocoo()
            for i, j, value in zip(similar.row, similar.col, similar.data):
                if value >= threshold and start + i != j:
                    join(start + int(i), int(j))
    return [root(i) for i in range(len(pairs))]


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def split_note(groups: list[int]) -> str:
    kinds = len(set(groups))
    if kinds == len(groups):
        return ""
    return (
        f"Rows that share an answer or nearly repeat each other were kept on the same side of the split "
        f"({len(groups):,} rows in {kinds:,} groups), so no held-out prompt is a rephrasing of a training one."
    )


NEAR_REPEAT = 0.9
"""Cosine similarity of word TF-IDF vectors at which a held-out row counts as a repeat of a training row."""
LEAK_SAMPLE = (2_000, 50_000)
"""Held-out and training rows compared at most (a seeded sample beyond that): the check stays a few seconds."""


def near_repeats(held_out: list[str], train: list[str], threshold: float = NEAR_REPEAT) -> list[tuple[int, int]]:
    """(held-out index, training index) of each held-out text that nearly repeats a training text: the same
    words give the same vector, so "Hi, how do I cancel?" repeats "How do I cancel?"."""
    if not held_out or not train:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train + held_out)
    similar = vectorizer.transform(held_out) @ vectorizer.transform(train).T
    found = []
    for i in range(similar.shape[0]):
        row = similar.getrow(i)
        if row.nnz and row.data.max() >= threshold:
            found.append((i, int(row.indices[row.data.argmax()])))
    return found


def row_text(record: dict) -> str:
    return " ".join(str(record.get(k, "")) for k in ("text", "prompt", "response") if record.get(k))


def leak_warnings(folder: Path, name: str) -> list[str]:
    """A warning when held-out rows nearly repeat training rows: scores on them measure memory, not skill."""
    rng = random.Random(0)
    held = [row_text(r) for r in load_split(folder, name)]
    train = [row_text(r) for r in load_split(folder, "train")]
    held_sample = rng.sample(held, min(len(held), LEAK_SAMPLE[0]))
    train_sample = rng.sample(train, min(len(train), LEAK_SAMPLE[1]))
    found = near_repeats(held_sample, train_sample)
    if not found:
        return []
    i, j = found[0]
    share = len(found) / len(held_sample)
    return [
        f"{len(found):,} of the {len(held_sample):,} {name} rows{' checked' if len(held_sample) < len(held) else ''} "
        f'({share:.0%}) nearly repeat a training row (e.g. "{held_sample[i][:80]}" and '
        f'"{train_sample[j][:80]}"), so scores on them measure memory, not skill. Remove the repeats from '
        "your file, or bring a test file of your own."
    ]


FEW_TEST_TEXTS = 50
"""Below this many labelled test texts a score is mostly luck: each text moves it by two points or more."""


def few_held_out(test: int, task: str) -> list[str]:
    """A warning when a classifier will be tested on so few labelled texts that one text moves a score a lot."""
    if task != Task.CLASSIFICATION or not 0 < test < FEW_TEST_TEXTS:
        return []
    return [
        f"Only {test} labelled texts are held out to test the models: each one moves a score by {100 / test:.0f} "
        "points, so small differences between models are luck. Label more texts, or drop a test file of your own "
        "(texts without a label never count here)."
    ]
