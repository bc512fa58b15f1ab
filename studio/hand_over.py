"""Small model first, the teacher when it is unsure: the rule that decides who answers, in one place.

A classifier's answer stays the student's when its confidence (the top class probability) is at or above
a threshold; below it the teacher answers. The threshold the studio chooses is the lowest at which the pair
stays within ``TOLERANCE`` of the teacher's own accuracy on the validation split. Evaluation measures it
for every model of a run (so Try it and the result card can say when the teacher would be asked), and the
export's hybrid measures it again on the exported files with this same rule. The exported predict.py
carries its own copy of ``student_answers`` (it runs without the studio); a test keeps the two equal.
"""

from __future__ import annotations

TOLERANCE = 0.01


def student_answers(confidence: float, threshold: float) -> bool:
    """The student keeps its answer at or above ``threshold``; a threshold of 1 (or more) sends every input on."""
    return confidence >= threshold and threshold < 1.0


def hybrid_accuracy(student: list[tuple[str, float]], teacher: list[str], labels: list[str], threshold: float) -> float:
    """Accuracy of the pair: the student's (label, confidence) where it answers, the teacher's label elsewhere."""
    right = [(s == y) if student_answers(c, threshold) else (t == y) for (s, c), t, y in zip(student, teacher, labels)]
    return sum(right) / max(1, len(right))


def share_alone(confidences: list[float], threshold: float) -> float:
    """The part of the inputs the student answers alone at ``threshold``."""
    return sum(student_answers(c, threshold) for c in confidences) / max(1, len(confidences))


def choose_threshold(student: list[tuple[str, float]], teacher: list[str], labels: list[str]) -> float:
    """The lowest threshold whose hybrid accuracy is within TOLERANCE of the teacher alone."""
    target = sum(t == y for t, y in zip(teacher, labels)) / max(1, len(labels)) - TOLERANCE
    for threshold in sorted({0.0} | {round(c, 4) for _, c in student}):
        if hybrid_accuracy(student, teacher, labels, threshold) >= target:
            return threshold
    return 1.0  # the teacher answers everything


def hand_over_words(confidence: float, threshold: float | None, generator: bool = False) -> str:
    """Whether the teacher would be asked for an answer this sure, in a sentence. A text generator's threshold is
    its median confidence on held-out questions (the export's default): half of such questions go to the teacher."""
    if threshold is None:
        return ""
    if generator:
        if student_answers(confidence, threshold):
            return (
                f"It would answer alone: it is {confidence:.0%} sure of this answer, at least as sure as of half its "
                f"answers to held-out questions ({threshold:.0%})."
            )
        return (
            f"The teacher would be asked: it is {confidence:.0%} sure of this answer, less than of half its answers "
            f"to held-out questions ({threshold:.0%})."
        )
    if threshold >= 1.0:
        return "The teacher would be asked: on your validation examples this model is not good enough to answer alone."
    if student_answers(confidence, threshold):
        return f"It would answer alone: it is at least {threshold:.0%} sure, the confidence from which it matches the teacher."
    return f"The teacher would be asked: below {threshold:.0%} sure, this model is wrong more often than the teacher."
