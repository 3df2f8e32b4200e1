"""Templates render SPEC §1's strings byte for byte; training labels cover answers and their EOS only."""

from __future__ import annotations

import pytest

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.templates import SYSTEM_PROMPT, TEMPLATES, get_template
from tinyllava_bench.models.tokenization import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    encode_conversation,
    tokenize_with_images,
)
from tinyllava_bench.testing.models import build_tokenizer

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
EOS = {
    "phi": "<|endoftext|>",
    "v1": "</s>",
    "llama": "</s>",
    "gemma": "<eos>",
    "qwen2_base": "<|endoftext|>",
    "qwen2_instruct": "<|im_end|>",
}


def test_system_prompt_is_byte_exact():
    assert SYSTEM_PROMPT == SYSTEM


@pytest.mark.parametrize("name", list(EOS))
def test_eval_prompt(name):
    prompt = get_template(name).render_prompt("What is this?")
    assert prompt == f"{SYSTEM} USER: <image>\nWhat is this? ASSISTANT:"


def test_factory_strips_question_legacy_keeps_it():
    template = get_template("phi")
    assert template.render_prompt("  Why?\n", strip_question=True).endswith("USER: <image>\nWhy? ASSISTANT:")
    assert template.render_prompt("  Why?\n", strip_question=False).endswith(
        "USER: <image>\n  Why?\n ASSISTANT:"
    )


@pytest.mark.parametrize("name", list(EOS))
def test_training_string(name):
    text, spans = get_template(name).render_conversation([("<image>\nq1", "a1"), ("q2", "a2")])
    eos = EOS[name]
    assert text == f"{SYSTEM} USER: <image>\nq1 ASSISTANT: a1{eos}USER: q2 ASSISTANT: a2{eos}"
    assert [text[s:e] for s, e in spans] == [f"a1{eos}", f"a2{eos}"]


def test_pretrain_and_hf_llava_templates():
    text, spans = get_template("pretrain").render_conversation([("<image>", "a red circle")])
    assert text == "<image>a red circle\n"
    assert text[spans[0][0] : spans[0][1]] == "a red circle\n"
    assert get_template("hf_llava").render_prompt("Hi?") == "USER: <image>\nHi?\nASSISTANT:"


def test_text_only_conversation_has_no_image():
    text, _ = get_template("v1").render_conversation([("hello", "hi")])
    assert "<image>" not in text
    assert text == f"{SYSTEM} USER: hello ASSISTANT: hi</s>"


def test_unknown_template():
    with pytest.raises(UserError, match="unknown template 'tiny_llama'"):
        get_template("tiny_llama")
    assert set(EOS) | {"pretrain", "hf_llava"} == set(TEMPLATES)


def test_image_placeholder_with_bos_tokenizer():
    tok = build_tokenizer("llama")
    ids = tokenize_with_images("USER: <image>\nred", tok)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    # the chunk after the image is tokenised on its own, its BOS dropped
    assert ids[ids.index(IMAGE_TOKEN_INDEX) + 1 :] == tok("\nred").input_ids[1:]


def _answer_text(tok, ids, labels):
    return tok.decode([t for t, label in zip(ids, labels) if label != IGNORE_INDEX])


@pytest.mark.parametrize(
    ("family", "template"),
    [("phi", "phi"), ("llama", "v1"), ("gemma", "gemma"), ("qwen2", "qwen2_base"), ("stablelm", "phi")],
)
def test_labels_cover_answers_and_eos(family, template):
    tok = build_tokenizer(family)
    tpl = get_template(template)
    ids, labels = encode_conversation(tpl, tok, [("<image>\nWhat color?", "red"), ("How many?", "two")])
    assert len(ids) == len(labels)
    # the space before an answer belongs to its first token, which the loss must cover
    assert "".join(_answer_text(tok, ids, labels).split()) == f"red{tpl.eos}two{tpl.eos}"
    eos_id = tok.convert_tokens_to_ids(tpl.eos)
    assert [t for t, label in zip(ids, labels) if label == eos_id] == [eos_id, eos_id]
    assert labels[ids.index(IMAGE_TOKEN_INDEX)] == IGNORE_INDEX


def test_phi_pad_equal_to_eos_keeps_real_eos():
    tok = build_tokenizer("phi")
    tok.pad_token = tok.unk_token  # Factory's Phi fix-up: pad = unk = eos = <|endoftext|>
    assert tok.pad_token_id == tok.eos_token_id
    ids, labels = encode_conversation(get_template("phi"), tok, [("<image>\nq", "yes")])
    assert labels[-1] == tok.eos_token_id


def test_pretrain_labels():
    tok = build_tokenizer("llama")
    ids, labels = encode_conversation(get_template("pretrain"), tok, [("<image>", "a red circle")])
    assert ids[:2] == [tok.bos_token_id, IMAGE_TOKEN_INDEX]
    assert labels[:2] == [IGNORE_INDEX, IGNORE_INDEX]
    assert _answer_text(tok, ids, labels) == "a red circle\n"


def test_whitespace_token_before_an_answer_is_learned():
    """A tokenizer that splits the space before an answer into a token of its own must label that token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {
        c: i
        for i, c in enumerate(
            ["[UNK]", "</s>", " ", "A", "S", "I", "T", "N", "U", "E", "R", ":", "2", "<image>"]
        )
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per character
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="[UNK]")
    template = get_template("v1")
    ids, labels = encode_conversation(template, fast, [("<image>\nq", "2")])
    labelled = [fast.convert_ids_to_tokens(t) for t, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert labelled[0] == " " and labelled[1] == "2"


@pytest.mark.parametrize("name", list(EOS))
def test_image_only_turn_renders_as_the_original(name):
    """Both original codes strip the turn after moving `<image>` to its front: `USER: <image> ASSISTANT:`."""
    eos = EOS[name]
    text, spans = get_template(name).render_conversation([("<image>", "a1"), ("  <image>\n ", "a2")])
    assert text == f"{SYSTEM} USER: <image> ASSISTANT: a1{eos}USER: <image> ASSISTANT: a2{eos}"
    assert [text[s:e] for s, e in spans] == [f"a1{eos}", f"a2{eos}"]
    # Factory's eval prompt strips the same way; the legacy eval keeps `<image>\n` before an empty question
    template = get_template(name)
    assert template.render_prompt("", strip_question=True) == f"{SYSTEM} USER: <image> ASSISTANT:"
    assert template.render_prompt("<image>", strip_question=True) == f"{SYSTEM} USER: <image> ASSISTANT:"
    assert template.render_prompt("", strip_question=False) == f"{SYSTEM} USER: <image>\n ASSISTANT:"


def test_empty_answer_follows_factory():
    text, spans = get_template("phi").render_conversation([("q", "")])
    assert text == f"{SYSTEM} USER: q ASSISTANT: <|endoftext|>"
    assert text[spans[0][0] : spans[0][1]] == "<|endoftext|>"
