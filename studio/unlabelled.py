"""Texts without a label (classification): kept apart in unlabelled.jsonl for the teacher to label.

They are streamed to disk as the file is read, up to ``max_unlabelled`` (the rest are counted and left out),
and after the split a text that repeats a validation or test text is left out too: a student taught the
teacher's answer to a test text would be graded on a text it has learned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

FILE = "unlabelled.jsonl"


def _key(text: str) -> str:
    """A text as compared for repeats: case and spacing do not make a new text."""
    return re.sub(r"\s+", " ", text).strip().lower()


class Unlabelled:
    def __init__(self, folder: Path, cap: int) -> None:
        self.cap = cap
        self.kept = self.over = self.repeats = 0
        self._raw = folder / f".{FILE}"
        self._out = None

    def add(self, line: str) -> None:
        """One text without a label (its JSON line), kept while under the cap."""
        if self.kept >= self.cap:
            self.over += 1
            return
        if self._out is None:
            self._out = self._raw.open("w", encoding="utf-8")
        self._out.write(line)
        self.kept += 1

    def close(self, folder: Path) -> None:
        """Write unlabelled.jsonl without the texts that repeat a validation or test text of ``folder``."""
        if self._out is None:
            return
        self._out.close()
        held_out = set()
        for name in ("validation", "test"):
            path = folder / f"{name}.jsonl"
            if path.exists():
                with path.open(encoding="utf-8") as f:
                    held_out |= {_key(json.loads(line)["text"]) for line in f if line.strip()}
        self.kept = 0
        with self._raw.open(encoding="utf-8") as src, (folder / FILE).open("w", encoding="utf-8") as out:
            for line in src:
                if _key(json.loads(line)["text"]) in held_out:
                    self.repeats += 1
                    continue
                out.write(line)
                self.kept += 1
        self._raw.unlink()

    def warnings(self, cap: int) -> list[str]:
        said = []
        if self.over and not cap:
            said.append(f"{self.over:,} text(s) without a label were left out (unlabelled texts are turned off).")
        elif self.over:
            said.append(
                f"{self.over:,} text(s) without a label past the first {cap:,} were left out (the limit on unlabelled "
                "texts; raise it to use more)."
            )
        if self.repeats:
            said.append(
                f"{self.repeats:,} text(s) without a label repeat a validation or test text and were left out: the "
                "student must not learn the answer to a text it is graded on."
            )
        return said
