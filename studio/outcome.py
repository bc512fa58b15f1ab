"""What a run came to, in plain words: the student beside its teacher and the simple baselines.

"89 % of the test texts right, 2 points below the teacher; 4.4× smaller; 2.4× faster": what a shop owner
needs to decide, from the same stored scores the Compare step and the model card show.
"""

from __future__ import annotations

from collections.abc import Sequence

from studio.baselines import MAJORITY, TFIDF


def _by_name(models: Sequence[dict]) -> dict[str, dict]:
    return {m["name"]: m for m in models}


def _percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def _points(student: float, teacher: float) -> str:
    """The gap in percentage points, in words."""
    gap = (student - teacher) * 100
    if abs(gap) < 0.5:
        return "the same as the teacher"
    return f"{abs(gap):.0f} point{'s' if round(abs(gap)) != 1 else ''} {'below' if gap < 0 else 'above'} the teacher"


def _times(big: float | None, small: float | None) -> float | None:
    return big / small if big and small else None


def _hand_over(me: dict) -> list[str]:
    """Small model first: how much it answers alone, and the pair's accuracy (studio.hand_over)."""
    share, both, threshold = me.get("student_share"), me.get("hybrid_accuracy"), me.get("hand_over_threshold")
    if share is None or both is None or threshold is None or threshold <= 0:
        return []  # not measured, or alone it is already within a point of the teacher: nothing to hand over
    if threshold >= 1.0:
        return ["Asked to pass the texts it is unsure of to the teacher, it would pass all of them: use the teacher."]
    return [
        f"Small model first: it answers **{_percent(share)} of texts alone** (those it is at least {_percent(threshold)} "
        f"sure of); with the teacher answering the rest, {_percent(both)} are right. Export with the teacher (step 6) "
        "to work this way."
    ]


def outcome_lines(models: Sequence[dict], name: str = "student") -> list[str]:
    """Plain-language lines about model ``name`` of a run (rows as Compare reads them: name and scores)."""
    rows = _by_name(models)
    me, teacher = rows.get(name), rows.get("teacher")
    if not me or me.get("size_bytes") is None:
        return []
    lines = []
    if me.get("accuracy") is not None:
        said = f"**{_percent(me['accuracy'])} of the test texts right**"
        if teacher and teacher.get("accuracy") is not None:
            said += f", {_points(me['accuracy'], teacher['accuracy'])} ({_percent(teacher['accuracy'])})"
        lines.append(said + ".")
        tfidf, majority = rows.get(TFIDF, {}).get("macro_f1"), rows.get(MAJORITY, {}).get("macro_f1")
        f1 = me.get("macro_f1")
        if f1 is not None and tfidf is not None:
            if f1 > tfidf:
                lines.append(f"It beats the simple word-count baseline (macro-F1 {f1:.2f} against {tfidf:.2f}).")
            elif majority is not None and f1 <= majority:
                lines.append(
                    f"⚠️ It does no better than always answering the commonest label (macro-F1 {f1:.2f}): it has not "
                    "learned your labels. More labelled rows, a longer preset or another teacher may help."
                )
            else:
                lines.append(
                    f"⚠️ A simple word-count baseline does as well (macro-F1 {tfidf:.2f} against {f1:.2f}): "
                    "export the baseline (step 6), or try more data, a longer preset or another teacher."
                )
        lines += _hand_over(me)
    elif me.get("rouge_l") is not None:
        said = f"**Its answers match the reference answers {_percent(me['rouge_l'])}** (ROUGE-L)"
        if teacher and teacher.get("rouge_l"):
            said += f", {me['rouge_l'] / teacher['rouge_l']:.0%} of the teacher's {_percent(teacher['rouge_l'])}"
        lines.append(said + ".")
        if me.get("fluent") is False or (me.get("degenerate_share") or 0) > 0.1:
            lines.append("⚠️ Many of its answers are not usable sentences: read them in step 5 before you use it.")
    if teacher:
        smaller = _times(teacher.get("size_bytes"), me.get("size_bytes"))
        faster = _times(teacher.get("latency_ms"), me.get("latency_ms"))
        parts = []
        if smaller:
            sizes = f"{me['size_bytes'] / 1e6:.1f} MB, teacher {teacher['size_bytes'] / 1e6:.1f} MB"
            parts.append(f"**{smaller:.1f}× smaller** ({sizes})")
        if faster:
            unit = "per text" if me.get("accuracy") is not None else "per word written"
            speed = f"{faster:.1f}× faster" if faster >= 1 else f"{1 / faster:.1f}× slower"
            times = f"{me['latency_ms']:.1f} ms, teacher {teacher['latency_ms']:.1f} ms"
            parts.append(f"**{speed}** {unit} on this machine ({times})")
        if parts:
            lines.append("; ".join(parts) + ".")
    return lines
