"""Every setting of a distillation run, with its help text: light to import (no torch), so the CLI builds its
options and the worker checks a job's config without loading a model library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.settings import Check, Settings, setting
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

    teacher: str = setting("minilm-l6", "Catalog key, local model folder, or hub id (online only).", advanced=False)
    student: str | None = setting(
        None, "The student: empty builds it from the teacher's layers; else a catalog key or folder.", label="Student model"
    )
    student_layers: int = setting(
        0,
        "Layers kept from the teacher (from MiniLM-L6 when a text generator teaches a "
        "classifier). Fewer is smaller and faster, but learns less. 0 chooses: 3 for a "
        "classifier; for a text generator a quick probe of a half, two fifths and a third "
        "of the teacher's layers ('answers' recipe), or a third ('plain').",
        label="Student layers",
    )
    recipe: str = setting(
        "auto",
        "Text generators: 'answers' first teaches the teacher your answers (LoRA), has it "
        "answer your questions and reworded ones in its own words, mixes in general text so the "
        "student keeps its grammar, and distils by a token budget; 'plain' distils a layer-dropped "
        "student on your rows alone (faster, but a small student trained on a few hundred rows "
        "loses its language). 'auto' is 'answers'.",
        choices=("auto", "answers", "plain"),
        label="Text-generator recipe",
        task=Task.CAUSAL_LM,
    )
    kd_tokens: int = setting(
        0,
        "Text generators, 'answers' recipe: tokens the student is distilled on (0: 400,000). Cost grows with it.",
        label="Words to learn from (tokens)",
        task=Task.CAUSAL_LM,
    )
    epochs: int = setting(
        2, "Passes over the training split, at least; small data trains for min_steps instead.", label="Passes over your data"
    )
    min_steps: int = setting(
        250,
        "Optimizer steps at least, however small the data: a few hundred is what a fresh head needs.",
        label="Training steps, at least",
    )
    max_steps: int = setting(
        0,
        "Optimizer steps at most, per training stage (0: no cap beyond epochs and early stopping).",
        label="Training steps, at most",
    )
    patience: int = setting(
        4,
        "Stop when this many validations in a row did not improve (0: never stop early). The "
        "best validated weights are kept either way.",
        label="Stop after this many checks without progress",
    )
    balance: str = setting(
        "auto",
        "Classification: 'weights' counts each class equally in the loss, 'off' counts "
        "each row equally, 'auto' weighs classes when the commonest has 1.5x the rows of the "
        "rarest.",
        choices=("auto", "weights", "off"),
        label="Weigh rare labels",
        task=Task.CLASSIFICATION,
    )
    temperature: float = setting(
        2.0,
        "Softens the teacher's distribution; 1-4 is usual. Higher passes on more 'dark knowledge'.",
        label="Softness of the teacher's answers (temperature)",
    )
    alpha: float = setting(
        0.5,
        "Weight of the teacher's soft targets vs the true labels (0 = labels only, 1 = teacher only).",
        label="Teacher vs your labels (alpha)",
    )
    learning_rate: float = setting(
        1e-4, "Student learning rate; LoRA usually wants ~5x more than full fine-tuning.", label="Student learning rate"
    )
    weight_decay: float = setting(
        0.01, "AdamW weight decay: pulls weights towards 0; more resists overfitting small data.", label="Weight decay"
    )
    warmup_ratio: float = setting(
        0.06, "Share of the steps over which the learning rate rises from 0 (then it falls linearly).", label="Warm-up share"
    )
    teacher_training: str = setting(
        "auto",
        "Classification, a teacher with no head for your labels: 'full' "
        "fine-tunes every weight; 'head' keeps its weights and fits only its "
        "classification head on what it reads (one pass over the data: minutes, not "
        "hours, for a 135 M-parameter teacher on a CPU); 'auto' is 'head' for text "
        "generators used as classifiers and 'full' for encoders. 'ask' trains nothing: an instruction-tuned "
        "text generator (the teacher, or the model served at teacher_endpoint) is shown your label names, their "
        "descriptions and a few of your labelled texts, and its scores over the label names are its answer; for "
        "when you have very few labels (a small model asked this way is a weak teacher: see the README).",
        choices=("auto", "full", "head", "ask"),
        label="How the teacher learns your labels",
        task=Task.CLASSIFICATION,
    )
    teacher_endpoint: str = setting(
        "",
        "With 'ask': the address of an OpenAI-compatible server you run (llama.cpp's llama-server, vLLM, ...), e.g. "
        "http://127.0.0.1:8080/v1; the teacher is then the name of the model it serves. Your texts are sent to this "
        "address. Empty: the teacher runs here.",
        label="Teacher server address (OpenAI-compatible)",
        task=Task.CLASSIFICATION,
    )
    label_descriptions: str = setting(
        "",
        "With 'ask': one line a label, 'label: what it means' (e.g. 'billing: payments, invoices, refunds of a "
        "charge'). The asked teacher reads them; clearer words, better answers.",
        label="What each label means",
        task=Task.CLASSIFICATION,
    )
    prompt_examples: int = setting(
        1,
        "With 'ask': labelled texts shown to the teacher for each label (0: none, zero-shot). Each makes every "
        "question longer and slower; a small model can be confused by many.",
        label="Examples shown to the asked teacher, per label",
        task=Task.CLASSIFICATION,
    )
    teacher_learning_rate: float = setting(
        0.0,
        "0 (Auto) tries 3e-5, 1e-4 and 3e-4 on the validation split and keeps "
        "the best (about 1.4x the teacher's training time); a number skips the "
        "search.",
        label="Teacher learning rate",
    )
    teacher_epochs: int = setting(
        2,
        "Classification: passes (at least) to fine-tune a teacher that has no head for your labels.",
        label="Teacher's passes over your data",
        task=Task.CLASSIFICATION,
    )
    batch_size: int = setting(
        16, "Examples per optimizer step. Larger is steadier and needs more memory.", label="Texts per step (batch size)"
    )
    max_length: int = setting(
        0,
        "Tokens read per example; longer texts are cut. 0 fits it to the data (95 % of "
        "texts whole, at most 256). Cost grows with it.",
        label="Longest text read (tokens)",
    )
    lora: bool = setting(
        False,
        "Train small LoRA adapters instead of all student weights (merged at the end).",
        label="Train small adapters (LoRA)",
    )
    qlora: bool = setting(
        False,
        "QLoRA: keep the student's base weights in 4-bit NF4 while LoRA trains (needs "
        "bitsandbytes; implies lora). Uses far less memory for big students; on a CPU each step "
        "is slower, not faster.",
        label="Adapters on a 4-bit base (QLoRA)",
    )
    lora_r: int = setting(
        8, "LoRA rank: the adapters' width. Higher learns more and trains more weights.", label="Adapter width (LoRA rank)"
    )
    lora_alpha: int = setting(
        16,
        "LoRA scale (alpha / rank multiplies the adapters' output); twice the rank is usual.",
        label="Adapter scale (LoRA alpha)",
    )
    lora_dropout: float = setting(0.05, "Dropout on the LoRA adapters' input while training.", label="Adapter dropout")
    top_k: int = setting(
        32,
        "Causal LM: teacher logits kept per position in the cache. More is closer, but larger.",
        label="Teacher words kept per position (top k)",
        task=Task.CAUSAL_LM,
    )
    trim_vocab: bool = setting(
        True,
        "Classification only: drop vocabulary rows the data never uses (halves a small encoder).",
        label="Drop words your data never uses",
        task=Task.CLASSIFICATION,
    )
    unlabelled: bool = setting(
        True,
        "Texts in your data without a label: the teacher labels them (its full answer, not just a label) and the "
        "student learns from those answers too. The teacher itself learns from the labelled rows only.",
        label="Learn from texts without a label",
        task=Task.CLASSIFICATION,
    )
    unlabelled_min_confidence: float = setting(
        0.0,
        "Texts without a label whose teacher answer is less sure than this (its top probability, 0-1) are left out of "
        "the student's training: fewer, surer examples. 0 keeps them all.",
        label="Least teacher confidence on a text without a label",
        task=Task.CLASSIFICATION,
    )
    unlabelled_agreement: bool = setting(
        False,
        "Texts without a label are kept only when the teacher's answer matches the label of the most similar "
        "labelled text (TF-IDF): fewer, surer examples, when the teacher is weak.",
        label="Keep only answers your labelled texts agree with",
        task=Task.CLASSIFICATION,
    )
    labels_only_student: bool = setting(
        False,
        "Also train the same student on the labels alone (no teacher), to show what distillation adds.",
        flag="labels-only",
        label="Also train without the teacher, to compare",
        task=Task.CLASSIFICATION,
    )
    seed: int = setting(13, "Random seed: the same seed, data and settings train the same model.", label="Random seed")
    threads: int = setting(0, "CPU threads; 0 uses every core.", advanced=False)
    processes: int = setting(
        0,
        "Processes that train together, each on its part of every batch (data-parallel): one per GPU to use every "
        "GPU of the machine. 0 (Auto): one per GPU where there are several, else one. On a CPU, more processes share "
        "the same cores and are rarely faster.",
        label="Processes (one per GPU)",
    )
    machines: int = setting(
        1,
        "Machines the job trains on together, each with the processes above: the worker that takes the job waits for "
        "workers on other machines to join it. Their artifact folder must be one shared folder (NFS and the like), "
        "the same path on each.",
        label="Machines",
    )

    def checks(self) -> list[Check]:
        return [
            ("student_layers", 0 <= self.student_layers <= 64, "0 (choose) or a whole number from 1 to 64"),
            ("kd_tokens", 0 <= self.kd_tokens <= 1_000_000_000, "0 (400,000) or a positive number"),
            ("temperature", 0.5 <= self.temperature <= 20, "from 0.5 to 20 (2 is a good start)"),
            ("alpha", 0.0 <= self.alpha <= 1.0, "from 0 to 1"),
            ("unlabelled_min_confidence", 0.0 <= self.unlabelled_min_confidence < 1.0, "from 0 up to (not) 1"),
            ("epochs", 1 <= self.epochs <= 100, "from 1 to 100"),
            ("min_steps", 0 <= self.min_steps <= 100_000, "from 0 to 100000"),
            ("max_steps", 0 <= self.max_steps <= 1_000_000, "0 (no cap) or a positive number"),
            ("patience", 0 <= self.patience <= 100, "0 (never stop early) to 100"),
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
            ("prompt_examples", 0 <= self.prompt_examples <= 8, "from 0 to 8"),
            ("threads", 0 <= self.threads <= 512, "0 (all cores) or a positive number"),
            ("processes", 0 <= self.processes <= 64, "0 (Auto: one per GPU) or from 1 to 64"),
            ("machines", 1 <= self.machines <= 64, "from 1 to 64"),
        ]

    def other_problems(self) -> list[str]:
        problems = [] if self.teacher else ["teacher is empty; name a catalog entry, a folder or a hub id"]
        if self.teacher_endpoint and self.teacher_training != "ask":
            problems.append("teacher_endpoint is set, but teacher_training is not 'ask'; set it to 'ask' or clear the address")
        if self.teacher_endpoint and not self.teacher_endpoint.startswith(("http://", "https://")):
            problems.append(f"teacher_endpoint '{self.teacher_endpoint}' is not a web address; write it as http://host:port/v1")
        return problems


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
