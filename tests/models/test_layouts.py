"""Every LLM family x vision tower loads in every layout with the same logits; export to HF llava round-trips."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tinyllava_bench import load_model
from tinyllava_bench.errors import UserError
from tinyllava_bench.models.layouts import detect_layout
from tinyllava_bench.testing.images import make_image
from tinyllava_bench.testing.models import LLM_FAMILIES, VISION_FAMILIES

QUESTION = "What is the color of the shape?"
LAYOUTS = ("native", "factory", "factory_split", "legacy", "hf_llava")
EXPECTED_LAYOUT = {
    "native": "native",
    "factory": "factory",
    "factory_split": "factory",
    "legacy": "legacy",
    "hf_llava": "hf_llava",
}


@pytest.mark.parametrize("vision", VISION_FAMILIES)
@pytest.mark.parametrize("llm", LLM_FAMILIES)
def test_same_weights_same_logits_in_every_layout(tiny_checkpoints, llm, vision):
    paths = tiny_checkpoints(llm, vision)
    image = make_image(31, 20)
    reference = load_model(str(paths["native"]))
    expected = reference.prompt_logits(image, QUESTION)
    assert expected.dtype == torch.float32
    assert expected.shape[0] == len(reference.prompt_ids(QUESTION)) - 1 + reference.num_image_tokens
    for layout in LAYOUTS:
        if layout == "legacy" and llm == "gemma":
            continue  # TinyLLaVABench had no Gemma class
        model = load_model(str(paths[layout]))
        assert model.settings.layout == EXPECTED_LAYOUT[layout]
        assert model.render_prompt(QUESTION) == reference.render_prompt(QUESTION)
        logits = model.prompt_logits(image, QUESTION)
        vocab = expected.shape[1]
        assert logits.shape[0] == expected.shape[0], layout
        torch.testing.assert_close(logits[:, :vocab], expected, atol=1e-5, rtol=0, msg=layout)


def test_layout_detection(tiny_checkpoints):
    paths = tiny_checkpoints("phi", "siglip")
    assert {name: detect_layout(path) for name, path in paths.items()} == EXPECTED_LAYOUT


def test_hf_llava_export_runs_in_transformers(tiny_checkpoints):
    """transformers' own Llava class and processor, on our export, give our logits: serving engines can run it."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    paths = tiny_checkpoints("llama", "clip")
    ours = load_model(str(paths["native"]))
    image = make_image(40, 26, seed=3)
    expected = ours.prompt_logits(image, QUESTION)

    processor = AutoProcessor.from_pretrained(str(paths["hf_llava"]))
    hf = LlavaForConditionalGeneration.from_pretrained(str(paths["hf_llava"]), dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == ours.render_prompt(QUESTION)
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    torch.testing.assert_close(inputs["pixel_values"][0], ours.pixel_values(image), atol=1e-6, rtol=0)
    with torch.inference_mode():
        logits = hf(**inputs).logits[0]
    torch.testing.assert_close(logits[:, : expected.shape[1]], expected, atol=1e-5, rtol=0)


def test_bf16_load_matches_transformers_llava_bit_for_bit(tmp_path):
    """In bf16 our loader gives exactly the logits of transformers' Llava on the same weights, at SigLIP's 729 image
    tokens: the rotary frequencies stay float32 (cast to bf16 they moved cos/sin at position ~700 by 0.1)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from tinyllava_bench.testing.models import build_tiny_model, write_tiny_checkpoints

    paths = write_tiny_checkpoints(
        build_tiny_model("phi", "siglip", image_size=384), tmp_path, layouts=["native", "hf_llava"]
    )
    ours = load_model(str(paths["native"]), dtype="bfloat16")
    rotary = {name: b.dtype for name, b in ours.named_buffers() if name.endswith("inv_freq")}
    assert rotary and set(rotary.values()) == {torch.float32}
    assert ours.language_model.get_input_embeddings().weight.dtype == torch.bfloat16
    image = make_image(50, 40, seed=5)
    expected = ours.prompt_logits(image, QUESTION)

    processor = AutoProcessor.from_pretrained(str(paths["hf_llava"]))
    hf = LlavaForConditionalGeneration.from_pretrained(str(paths["hf_llava"]), dtype=torch.bfloat16).eval()
    inputs = processor(images=image, text=ours.render_prompt(QUESTION), return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    with torch.inference_mode():
        logits = hf(**inputs).logits[0].float()
    assert logits.shape[0] == expected.shape[0] > 729
    assert torch.equal(logits[:, : expected.shape[1]], expected)


def test_hf_llava_export_keeps_a_bf16_models_dtype(tmp_path):
    """A bf16 model exports as bf16 (not upcast to twice its size) and its weights come back bit for bit."""
    from safetensors import safe_open

    from tinyllava_bench.models.export import export_hf_llava
    from tinyllava_bench.testing.models import build_tiny_model

    model = build_tiny_model("phi", "siglip").to(torch.bfloat16)
    export_hf_llava(model, tmp_path / "hf")
    assert torch.get_default_dtype() == torch.float32  # restored after building the Llava class
    [weights] = (tmp_path / "hf").glob("*.safetensors")
    with safe_open(str(weights), framework="pt") as handle:
        dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118 (not a dict)
    assert dtypes == {"BF16"}
    loaded = load_model(str(tmp_path / "hf"), dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16
    ours = dict(model.language_model.named_parameters())
    theirs = dict(loaded.language_model.named_parameters())
    assert ours.keys() == theirs.keys()
    for name, value in ours.items():  # the export adds an <image> row to the vocabulary: compare ours
        assert torch.equal(value, theirs[name][tuple(slice(0, n) for n in value.shape)]), name


@pytest.mark.parametrize(
    ("vision", "image_size", "select", "tokens"),
    [
        ("siglip", 384, "full", 729),  # legacy SigLIP keeps every patch
        ("siglip", 384, "patch", 728),  # Factory drops the first token even without a CLS
        ("clip", 336, "patch", 576),  # CLIP-336 without its CLS
    ],
)
def test_image_token_counts(vision, image_size, select, tokens):
    from tinyllava_bench.testing.models import build_tiny_model

    model = build_tiny_model("qwen2", vision, image_size=image_size, vision_select=select, hidden=16)
    assert model.num_image_tokens == tokens
    pixels = model.pixel_values(make_image(500, 300))
    assert tuple(pixels.shape) == (3, image_size, image_size)
    assert model.encode_images(pixels[None]).shape[1] == tokens


def test_overrides_replace_checkpoint_defaults(tiny_checkpoints):
    paths = tiny_checkpoints("phi", "siglip")
    legacy = load_model(str(paths["legacy"]))
    assert (legacy.settings.template, legacy.settings.image_aspect, legacy.num_image_tokens) == (
        "phi",
        "pad",
        4,
    )
    model = load_model(str(paths["legacy"]), template="v1", image_aspect="square", vision_select="patch")
    assert (model.settings.template, model.settings.image_aspect, model.num_image_tokens) == (
        "v1",
        "square",
        3,
    )
    assert model.render_prompt("q").endswith("USER: <image>\nq ASSISTANT:")


# ----- errors: one clear message each ------------------------------------------------------------------------------
def test_folder_that_is_no_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint \\(no config.json\\)"):
        load_model(str(tmp_path))


def test_unknown_layout(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UserError, match="unknown checkpoint layout \\(config.json model_type 'bert'\\)"):
        load_model(str(tmp_path))


def test_unknown_name():
    with pytest.raises(UserError, match="no such folder, model-zoo name or hub id"):
        load_model("./does/not/exist")


def _copy(paths, layout, tmp_path):
    target = tmp_path / layout
    shutil.copytree(paths[layout], target)
    return target


def test_unsupported_llm_and_remote_code(tiny_checkpoints, tmp_path):
    folder = _copy(tiny_checkpoints("phi", "siglip"), "factory", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["model_type"] = "openelm"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UserError, match="needs code from its hub repository; load it with trust_remote_code=True"
    ):
        load_model(str(folder))
    config["text_config"]["model_type"] = "not_an_llm"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="unsupported LLM type 'not_an_llm'"):
        load_model(str(folder))


def test_missing_tokenizer(tiny_checkpoints, tmp_path):
    folder = _copy(tiny_checkpoints("phi", "siglip"), "native", tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(UserError, match="no tokenizer"):
        load_model(str(folder))


def test_missing_and_extra_weights(tiny_checkpoints, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_checkpoints("phi", "siglip"), "native", tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    dropped = dict(state)
    dropped.pop("connector.2.weight")
    save_file(dropped, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match="lacks 1 weight\\(s\\) the model needs, e.g. connector.2.weight"):
        load_model(str(folder))
    save_file(
        {**state, "connector.4.weight": state["connector.2.weight"].clone()},
        str(folder / "model.safetensors"),
    )
    with pytest.raises(
        UserError, match="has 1 weight\\(s\\) this model has no place for, e.g. connector.4.weight"
    ):
        load_model(str(folder))


def test_bin_weights_refuse_pickled_code(tiny_checkpoints, tmp_path):
    folder = _copy(tiny_checkpoints("phi", "siglip"), "factory_split", tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"_connector.0.weight": Evil()}, folder / "connector" / "pytorch_model.bin")
    with pytest.raises(UserError, match="cannot read weights"):
        load_model(str(folder))


REMOTE_CONFIG = """
from transformers import LlamaConfig


class TinyRemoteConfig(LlamaConfig):
    model_type = "tinyremote"
"""
REMOTE_MODEL = """
from transformers import LlamaForCausalLM

from .configuration_tinyremote import TinyRemoteConfig


class TinyRemoteForCausalLM(LlamaForCausalLM):
    config_class = TinyRemoteConfig
"""


def test_remote_code_llm_only_when_trusted(tiny_checkpoints, tmp_path):
    """An LLM whose code lives in its repository (as OpenELM) loads only with trust_remote_code=True."""
    paths = tiny_checkpoints("llama", "siglip")
    folder = _copy(paths, "factory", tmp_path)
    remote = tmp_path / "remote-llm"
    remote.mkdir()
    (remote / "configuration_tinyremote.py").write_text(REMOTE_CONFIG)
    (remote / "modeling_tinyremote.py").write_text(REMOTE_MODEL)
    config = json.loads((folder / "config.json").read_text())
    remote_config = {
        **config["text_config"],
        "model_type": "tinyremote",
        "auto_map": {
            "AutoConfig": "configuration_tinyremote.TinyRemoteConfig",
            "AutoModelForCausalLM": "modeling_tinyremote.TinyRemoteForCausalLM",
        },
    }
    (remote / "config.json").write_text(json.dumps(remote_config))
    config["text_config"]["model_type"] = "tinyremote"
    config["llm_model_name_or_path"] = str(remote)
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(UserError, match="unsupported LLM type 'tinyremote'"):
        load_model(str(folder))
    model = load_model(str(folder), trust_remote_code=True)
    assert type(model.language_model).__name__ == "TinyRemoteForCausalLM"
    image = make_image(30, 22)
    expected = load_model(str(paths["factory"])).prompt_logits(image, QUESTION)
    torch.testing.assert_close(model.prompt_logits(image, QUESTION), expected, atol=1e-5, rtol=0)


def _one_prompt_at_a_time(model, question: str) -> list[int]:
    """The reference: each prompt's chunks tokenised by their own calls (the training path's tokenisation)."""
    from tinyllava_bench.models.tokenization import IMAGE_TOKEN_INDEX, _tokenize_chunks

    prompt = model.render_prompt(question)
    image_token_id = model.settings.extra.get("image_token_id")
    if image_token_id is None:
        return _tokenize_chunks(prompt, model.tokenizer, with_offsets=False)[0]
    return [IMAGE_TOKEN_INDEX if t == image_token_id else t for t in model.tokenizer(prompt).input_ids]


@pytest.mark.parametrize("llm", LLM_FAMILIES)
def test_batched_prompt_ids_equal_one_at_a_time_in_every_layout(tiny_checkpoints, llm):
    questions = [QUESTION, "", "  spaces around  ", "Two\nlines <image> inside?", "ünïcödé 123"]
    for layout, path in tiny_checkpoints(llm, "siglip").items():
        model = load_model(str(path))
        expected = [_one_prompt_at_a_time(model, q) for q in questions]
        assert model.prompt_ids_many(questions) == expected, layout
        assert [model.prompt_ids(q) for q in questions] == expected, layout
    assert model.prompt_ids_many([]) == []
