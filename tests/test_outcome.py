"""A finished run in plain words: the numbers in the sentences are the stored scores."""

from studio.outcome import outcome_lines

TEACHER = {"name": "teacher", "accuracy": 0.91, "macro_f1": 0.90, "size_bytes": 22_700_000, "latency_ms": 7.4}
BASELINES = [{"name": "tfidf-baseline", "macro_f1": 0.80}, {"name": "majority-baseline", "macro_f1": 0.10}]


def test_a_good_student_beside_its_teacher_and_the_baselines():
    student = {"name": "student", "accuracy": 0.893, "macro_f1": 0.87, "size_bytes": 5_100_000, "latency_ms": 3.1}
    lines = outcome_lines([TEACHER, student, *BASELINES])
    assert lines[0] == "**89 % of the test texts right**, 2 points below the teacher (91 %)."
    assert lines[1] == "It beats the simple word-count baseline (macro-F1 0.87 against 0.80)."
    assert lines[2] == (
        "**4.5× smaller** (5.1 MB, teacher 22.7 MB); **2.4× faster** per text on this machine (3.1 ms, teacher 7.4 ms)."
    )


def test_a_student_that_learned_nothing_says_so_and_what_to_try():
    same = {"name": "student", "accuracy": 0.9104, "macro_f1": 0.75, "size_bytes": 5e6, "latency_ms": 9.0}
    lines = outcome_lines([TEACHER, same, *BASELINES])
    assert "the same as the teacher" in lines[0] and "baseline does as well (macro-F1 0.80 against 0.75)" in lines[1]
    assert "1.2× slower" in lines[2]
    collapsed = {**same, "macro_f1": 0.08}
    assert "does no better than always answering the commonest label" in outcome_lines([TEACHER, collapsed, *BASELINES])[1]


def test_a_text_generator_in_words_and_nothing_for_a_run_not_measured():
    teacher = {"name": "teacher", "rouge_l": 0.177, "size_bytes": 538e6, "latency_ms": 37.0}
    student = {"name": "student", "rouge_l": 0.161, "fluent": True, "size_bytes": 270e6, "latency_ms": 23.4}
    lines = outcome_lines([teacher, student])
    assert lines[0] == "**Its answers match the reference answers 16 %** (ROUGE-L), 91% of the teacher's 18 %."
    assert "per word written" in lines[1]
    assert "not usable sentences" in outcome_lines([teacher, {**student, "fluent": False}])[1]
    assert outcome_lines([teacher, {"name": "student", "status": "failed"}]) == []


def test_small_model_first_in_words():
    student = {"name": "student", "accuracy": 0.85, "macro_f1": 0.84, "size_bytes": 5e6, "latency_ms": 3.0}
    student |= {"student_share": 0.78, "hybrid_accuracy": 0.905, "hand_over_threshold": 0.62}
    lines = outcome_lines([TEACHER, student, *BASELINES])
    assert lines[2] == (
        "Small model first: it answers **78 % of texts alone** (those it is at least 62 % sure of); with the teacher "
        "answering the rest, 90 % are right. Export with the teacher (step 6) to work this way."
    )
    hopeless = {**student, "hand_over_threshold": 1.0, "student_share": 0.0}
    assert "would pass all of them: use the teacher" in outcome_lines([TEACHER, hopeless, *BASELINES])[2]
