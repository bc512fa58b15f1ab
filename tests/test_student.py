import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from studio.models import load_classifier
from studio.student import count_parameters, layer_drop_student, select_layers, trim_vocabulary
from studio.teacher import resolve_source
from tiny_models import sample_texts


def test_select_layers_keeps_first_and_last():
    assert select_layers(6, 3) == [0, 2, 5]
    assert select_layers(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert select_layers(4, 4) == [0, 1, 2, 3]
    assert select_layers(6, 1) == [5]


def test_layer_drop_copies_kept_layers(tiny_llama):
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama)
    student = layer_drop_student(teacher, 2)
    assert student.config.num_hidden_layers == 2 and student.config.studio_kept_layers == [0, 3]
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    for s_idx, t_idx in enumerate([0, 3]):
        key = "model.layers.{}.mlp.up_proj.weight"
        assert torch.equal(s_sd[key.format(s_idx)], t_sd[key.format(t_idx)])
    assert torch.equal(s_sd["model.embed_tokens.weight"], t_sd["model.embed_tokens.weight"])
    assert count_parameters(student) < count_parameters(teacher)


def test_trim_vocabulary_keeps_predictions(tiny_bert, tmp_path):
    source = resolve_source(str(tiny_bert))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model, ready = load_classifier(source, ["a", "b", "c"])
    assert not ready
    model.eval()
    texts = sample_texts(200)
    before = model(**tokenizer(texts[:8], padding=True, return_tensors="pt")).logits
    full_vocab = model.config.vocab_size
    trimmed = trim_vocabulary(model, tokenizer, texts, tmp_path / "tok")
    assert trimmed is not None and model.config.vocab_size < full_vocab
    after = model(**trimmed(texts[:8], padding=True, return_tensors="pt")).logits
    assert torch.allclose(before, after, atol=1e-5)
    original = [tokenizer.convert_ids_to_tokens(tokenizer(t)["input_ids"]) for t in texts]
    again = [trimmed.convert_ids_to_tokens(trimmed(t)["input_ids"]) for t in texts]
    assert original == again
