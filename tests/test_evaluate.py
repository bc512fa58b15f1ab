from studio.cli import format_table
from studio.dataset import prepare_dataset
from studio.evaluate import evaluate_classifier
from studio.teacher import load_classifier, load_tokenizer, resolve_source


def test_teacher_agrees_with_itself_and_metrics_are_consistent(tiny_bert, samples, tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:201]) + "\n")
    test = prepare_dataset(data, tmp_path / "ds").split("test")
    labels = sorted({r["label"] for r in test})
    source = resolve_source(str(tiny_bert))
    model, _ = load_classifier(source, labels)
    tok = load_tokenizer(source)
    first, preds = evaluate_classifier("a", model, tok, test, labels, size_bytes=1)
    second, _ = evaluate_classifier("b", model, tok, test, labels, size_bytes=1, teacher_predictions=preds)
    assert second.agreement == 1.0 and second.accuracy == first.accuracy
    truth = [labels.index(r["label"]) for r in test]
    assert first.accuracy == sum(p == t for p, t in zip(preds, truth)) / len(truth)
    table = format_table([vars(first), vars(second)])
    assert table.splitlines()[0].split()[:3] == ["model", "accuracy", "macro-F1"]
