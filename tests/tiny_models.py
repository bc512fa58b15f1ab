"""Tiny models built from configs (seconds, not minutes), saved like real ones and loaded the same way."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SAMPLES = Path(__file__).resolve().parent.parent / "studio" / "samples"


def sample_texts(limit: int = 600) -> list[str]:
    with (SAMPLES / "support_tickets.csv").open(encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(limit), csv.DictReader(f))]


BERT_VOCAB = Path(__file__).resolve().parent / "tiny_bert_vocab.txt"
"""The tiny BERT's 600 word pieces, kept in a file: the WordPiece trainer that made them from the sample tickets
breaks ties in a different order each run (other pieces, other ids), which made every test that trains the tiny
BERT a little different from session to session."""


def build_tiny_bert(folder: Path, layers: int = 4, seed: int = 0) -> Path:
    """A 4-layer, 32-wide BERT encoder without a classification head, plus a WordPiece tokenizer; the same
    tokenizer and weights every run."""
    pieces = BERT_VOCAB.read_text(encoding="utf-8").splitlines()
    tok = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    with torch.random.fork_rng():  # the same weights every run
        torch.manual_seed(seed)
        model = BertModel(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def build_tiny_llama(folder: Path, vocab_size: int = 400, layers: int = 4, seed: int = 0) -> Path:
    """A 4-layer, 32-wide Llama causal LM with a byte-level BPE tokenizer; the same weights every run (tests
    must not pass or fail with the draw of a random start)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        sample_texts(),
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    eos = tok.token_to_id("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def small_config(**kw):
    """Distillation settings sized for tests: one epoch, tiny batches of short texts, two threads."""
    from studio.distill_config import DistillConfig

    base = dict(
        student_layers=2,
        epochs=1,
        teacher_epochs=1,
        batch_size=32,
        max_length=48,
        min_steps=0,
        learning_rate=1e-3,
        teacher_learning_rate=1e-3,
        threads=2,
        kd_tokens=4000,
    )
    return DistillConfig(**{**base, **kw})


def tickets_few_labels(samples: Path, path: Path, rows: int, labelled: int, extra: list[dict] | None = None) -> Path:
    """The first ``rows`` bundled support tickets as a CSV at ``path``, only the first ``labelled`` keeping their
    label (the rest: an empty label, as a user's export of mostly unlabelled texts has), then ``extra`` rows."""
    import csv

    read = list(csv.DictReader((samples / "support_tickets.csv").open(encoding="utf-8")))[:rows]
    for row in read[labelled:]:
        row["category"] = ""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(read[0]))
        writer.writeheader()
        writer.writerows(read + [{**read[0], **r} for r in extra or []])
    return path
