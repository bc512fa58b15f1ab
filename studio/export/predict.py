"""Use the exported model: small model first, the teacher only when the small one is unsure.

    python predict.py "My parcel never arrived"            one answer per text
    python predict.py --file questions.txt                 one text per line
    python predict.py --runtime onnx "..."                 ONNX Runtime instead of transformers
    python predict.py --threshold 0.9 "..."                a stricter hand-over to the teacher (1: teacher only)
    python predict.py --json "..."                         machine-readable answers

Needs torch and transformers (and onnxruntime for --runtime onnx); nothing else. The studio that
made this export also imports this file to measure how often the student answers alone, so the
figure in README.md comes from exactly this code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class Runner:
    """One model behind one call: token ids and mask in, logits (numpy, float32) out."""

    def __init__(self, folder: Path, task: str, runtime: str = "transformers", onnx_file: Path | None = None) -> None:
        from transformers import AutoTokenizer

        self.task = task
        self.continue_text = False
        """Text generation: True when the student learned to continue plain text, not to answer questions."""
        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if runtime == "onnx":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
            self.model = None
        else:
            import torch
            from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

            auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
            self.model = auto.from_pretrained(folder, trust_remote_code=False, use_safetensors=True).eval()
            self.torch = torch
        self.labels = None
        if task == "classification":
            config = json.loads((folder / "config.json").read_text())
            self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.model is None:
            return self.session.run(None, {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)})[0]
        device = self.model.device  # a bitsandbytes model may sit on a GPU
        with self.torch.inference_mode():
            out = self.model(
                input_ids=self.torch.from_numpy(ids).to(device), attention_mask=self.torch.from_numpy(mask).to(device)
            )
        return out.logits.float().cpu().numpy()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def classify(runner: Runner, texts: list[str], max_length: int = 128) -> list[tuple[str, float]]:
    """Label and confidence (the top class probability) per text."""
    enc = runner.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    probs = softmax(runner.logits(enc["input_ids"], enc["attention_mask"]))
    return [(runner.labels[int(p.argmax())], float(p.max())) for p in probs]


def prompt_of(tokenizer, question: str) -> str:
    """The prompt exactly as the student saw questions in training."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    return f"Question: {question}\nAnswer:"


def repeats(answer: list[int], vocabulary: int, n: int = 3) -> np.ndarray:
    """True for each token that would repeat a run of n tokens already in the answer (greedy loops otherwise)."""
    banned = np.zeros(vocabulary, dtype=bool)
    tail = answer[len(answer) - n + 1 :] if len(answer) >= n - 1 else None
    for i in range(len(answer) - n + 1):
        if answer[i : i + n - 1] == tail:
            banned[answer[i + n - 1]] = True
    return banned


def generate(runner: Runner, question: str, max_new_tokens: int = 48) -> tuple[str, float]:
    """Greedy answer, never repeating a run of 3 tokens, and its confidence (geometric mean of the chosen tokens'
    probabilities)."""
    tok = runner.tokenizer
    prompt = question if runner.continue_text else prompt_of(tok, question)
    ids = np.array([tok(prompt, add_special_tokens=False)["input_ids"]], dtype=np.int64)
    start, log_probs = ids.shape[1], []
    for _ in range(max_new_tokens):
        probs = softmax(runner.logits(ids, np.ones_like(ids))[0, -1])
        token = int(np.where(repeats(ids[0, start:].tolist(), probs.shape[0]), -1.0, probs).argmax())
        if token == tok.eos_token_id:
            break
        log_probs.append(math.log(max(float(probs[token]), 1e-12)))
        ids = np.concatenate([ids, [[token]]], axis=1)
    confidence = math.exp(sum(log_probs) / len(log_probs)) if log_probs else 0.0
    return tok.decode(ids[0, start:], skip_special_tokens=True).strip(), confidence


def student_answers(confidence: float, threshold: float) -> bool:
    """The student keeps its answer at or above ``threshold``; a threshold of 1 (or more) sends every input on."""
    return confidence >= threshold and threshold < 1.0


def answer(texts: list[str], student: Runner, teacher: Runner | None, threshold: float) -> list[dict]:
    """The student answers; below ``threshold`` confidence the teacher (when exported) answers instead."""
    results = []
    for text in texts:
        said, confidence = classify(student, [text])[0] if student.task == "classification" else generate(student, text)
        result = {"input": text, "answer": said, "confidence": round(confidence, 4), "by": "student"}
        if teacher is not None and not student_answers(confidence, threshold):
            said, confidence = classify(teacher, [text])[0] if teacher.task == "classification" else generate(teacher, text)
            result.update(answer=said, teacher_confidence=round(confidence, 4), by="teacher")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    settings = json.loads((HERE / "export.json").read_text())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to answer")
    parser.add_argument("--file", type=Path, help="a text file, one input per line")
    parser.add_argument("--runtime", choices=["transformers", "onnx"], default=settings["runtime"])
    parser.add_argument(
        "--threshold",
        type=float,
        default=settings.get("threshold") or 0.0,
        help="below this confidence the teacher answers (needs the hybrid export)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    args = parser.parse_args(argv)
    texts = args.texts + (args.file.read_text(encoding="utf-8").splitlines() if args.file else [])
    texts = [t for t in texts if t.strip()]
    if not texts:
        parser.error("give at least one text (or --file)")
    if args.runtime == "onnx" and not (HERE / "onnx" / "model.onnx").exists():
        parser.error("this export has no onnx/model.onnx; use --runtime transformers")
    student = Runner(HERE / "model", settings["task"], args.runtime, HERE / "onnx" / "model.onnx")
    teacher = Runner(HERE / "teacher", settings["task"]) if (HERE / "teacher").exists() else None
    for runner in filter(None, [student, teacher]):
        runner.continue_text = settings.get("inputs") == "text"
    for result in answer(texts, student, teacher, args.threshold):
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{result['answer']}\t({result['by']}, confidence {result['confidence']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
