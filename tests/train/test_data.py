"""Conversation data through the training pipeline: label masks per template, truncation, set-aside records, collation."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from tinyllava_bench.testing.models import build_tokenizer
from tinyllava_bench.train import data as train_data
from tinyllava_bench.train import encoding as train_encoding
from tinyllava_bench.train import records as train_records
from tinyllava_bench.train.collator import ConversationCollator
from tinyllava_bench.train.data import build_dataset
from tinyllava_bench.train.encoding import fit_to_length
from tinyllava_bench.train.image_checks import safe_image_path

IMAGE_TOKENS = 4
ANSWERS = ("two circles", "yes")

CONVERSATION = {
    "id": "mm",
    "image": "a.png",
    "conversations": [
        {"from": "human", "value": "How many shapes are there?\n<image>"},
        {"from": "gpt", "value": ANSWERS[0]},
        {"from": "human", "value": "Is there a red circle?"},
        {"from": "gpt", "value": ANSWERS[1]},
    ],
}
TEXT_ONLY = {
    "id": "txt",
    "conversations": [
        {"from": "human", "value": "Is the sky blue? Please answer yes or no."},
        {"from": "gpt", "value": "no"},
    ],
}


def _write(tmp_path, records, images=("a.png",)):
    (tmp_path / "images").mkdir(exist_ok=True)
    for name in images:
        Image.new("RGB", (20, 30), (10, 200, 30)).save(tmp_path / "images" / name)
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records))
    return path


def _dataset(tmp_path, records, template="phi", family="phi", max_length=1024, caption=False, tokenizer=None):
    path = _write(tmp_path, records)
    return build_dataset(
        path,
        tmp_path / "images",
        get_template(template),
        tokenizer or build_tokenizer(family),
        preprocessor_for("siglip", 28, "pad"),
        image_tokens=IMAGE_TOKENS,
        max_length=max_length,
        caption_stage=caption,
        progress=False,
    )


def _labelled_runs(labels):
    runs, current = [], []
    for position, label in enumerate(labels):
        if label != IGNORE_INDEX:
            current.append(position)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize(
    ("family", "template"),
    [
        ("phi", "phi"),  # pad = unk = eos = <|endoftext|>
        ("stablelm", "phi"),
        ("llama", "v1"),
        ("llama", "llama"),
        ("gemma", "gemma"),
        ("qwen2", "qwen2_base"),  # pad = eos
        ("qwen2", "qwen2_instruct"),
    ],
)
def test_label_masks_are_the_answers_and_their_eos(tmp_path, family, template):
    tokenizer = build_tokenizer(family)
    dataset = _dataset(tmp_path, [CONVERSATION, TEXT_ONLY], template, tokenizer=tokenizer)
    eos = get_template(template).eos
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    assert len(dataset) == 2 and dataset.report.truncated == 0 and not dataset.report.skipped
    for index, answers in ((0, ANSWERS), (1, ("no",))):
        ids, labels = dataset.token_ids(index)
        assert all(label in (IGNORE_INDEX, token) for label, token in zip(labels, ids))
        runs = _labelled_runs(labels)
        assert len(runs) == len(answers)
        for run, answer in zip(runs, answers):
            assert tokenizer.decode([ids[p] for p in run]).strip() == answer + eos
            assert ids[run[-1]] == eos_id  # the real EOS is learned, even where pad == eos
        # nothing outside the answers is learned: the labelled text is exactly the answers and their EOS
        assert sum(len(r) for r in runs) == sum(1 for label in labels if label != IGNORE_INDEX)
        assert ids.count(IMAGE_TOKEN_INDEX) == (1 if index == 0 else 0)
        if index == 0:
            assert labels[ids.index(IMAGE_TOKEN_INDEX)] == IGNORE_INDEX
            # the template moved <image> to the front of its question
            text = tokenizer.decode([t for t in ids[ids.index(IMAGE_TOKEN_INDEX) + 1 :]])
            assert text.startswith("\nHow many shapes")


def test_pad_equal_to_eos_keeps_the_eos_label_after_collation(tmp_path):
    tokenizer = build_tokenizer("phi")
    assert tokenizer.eos_token_id == tokenizer.unk_token_id  # Phi-2: pad = unk = eos
    dataset = _dataset(tmp_path, [CONVERSATION, TEXT_ONLY], "phi", tokenizer=tokenizer)
    batch = ConversationCollator(pad_token_id=tokenizer.eos_token_id)([dataset[0], dataset[1]])
    eos = tokenizer.eos_token_id
    for row, turns in ((0, 2), (1, 1)):
        n = int(batch["lengths"][row])
        assert (batch["labels"][row, :n] == eos).sum() == turns
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, n:] == eos).all()  # padding, cut away before the model sees it
    assert batch["pixel_values"].shape == (1, 3, 28, 28)


def test_caption_stage_template(tmp_path):
    records = [dict(CONVERSATION, conversations=CONVERSATION["conversations"][:2])]
    dataset = _dataset(tmp_path, records, "pretrain", caption=True)
    ids, labels = dataset.token_ids(0)
    tokenizer = build_tokenizer("phi")
    assert ids[0] == IMAGE_TOKEN_INDEX and labels[0] == IGNORE_INDEX
    assert tokenizer.decode(ids[1:]) == ANSWERS[0] + "\n"
    assert labels[1:] == ids[1:]  # the whole caption and its newline are learned
    assert dataset.spliced_lengths[0] == len(ids) - 1 + IMAGE_TOKENS


def test_fit_to_length_cuts_the_spliced_sequence_as_the_original():
    ids = [1, 2, IMAGE_TOKEN_INDEX, 3, 4, 5, 6]
    labels = [IGNORE_INDEX] * 4 + [4, 5, 6]
    # image = 4 tokens: full spliced length 6 + 4 = 10
    assert fit_to_length(ids, labels, 4, 10) == (ids, labels, 10)
    assert fit_to_length(ids, labels, 4, 8) == (ids[:5], labels[:5], 8)
    # an image across the limit keeps its placeholder (the model cuts its features), the sample is kept
    assert fit_to_length(ids, labels, 4, 5) == (ids[:3], labels[:3], 5)
    # nothing left to learn: kept all the same, as the original keeps it
    assert fit_to_length(ids, labels, 4, 7) == (ids[:4], labels[:4], 7)
    # an image wholly past the limit goes with its placeholder
    assert fit_to_length(ids, labels, 4, 2) == (ids[:2], labels[:2], 2)


def test_truncation_is_counted_and_matches_the_models_own_cut(tmp_path):
    from tinyllava_bench.testing.models import build_tiny_model

    full = _dataset(tmp_path, [CONVERSATION], "phi")
    length = full.spliced_lengths[0]
    limit = length - 3
    dataset = _dataset(tmp_path, [CONVERSATION, TEXT_ONLY], "phi", max_length=limit)
    assert dataset.report.truncated == 1 and dataset.report.kept == 2
    assert dataset.spliced_lengths[0] == limit
    ids, labels = dataset.token_ids(0)
    full_ids, full_labels = full.token_ids(0)
    assert (ids, labels) == (full_ids[:-3], full_labels[:-3])
    # TinyLlava.splice cuts at settings.max_length; the data already fits, so nothing more is cut
    model = build_tiny_model("phi", "siglip", image_size=28, max_length=limit)
    features = torch.zeros(1, model.num_image_tokens, 32)
    assert model.num_image_tokens == IMAGE_TOKENS
    spliced = model.splice([ids], features, labels=[labels], padding_side="right")
    assert spliced["inputs_embeds"].shape[1] == limit
    assert (spliced["labels"][0] != IGNORE_INDEX).sum() == sum(label != IGNORE_INDEX for label in labels)


def test_records_set_aside_are_counted_with_reasons(tmp_path):
    records = [
        CONVERSATION,
        {
            "id": "bad-roles",
            "conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}],
        },
        {"id": "odd", "conversations": [{"from": "human", "value": "<image>\nq"}]},
        {
            "id": "no-placeholder",
            "image": "a.png",
            "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        },
        {
            "id": "no-image",
            "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}],
        },
        {"id": "missing", "image": "gone.png", "conversations": CONVERSATION["conversations"]},
        TEXT_ONLY,
    ]
    dataset = _dataset(tmp_path, records, "phi")
    report = dataset.report
    assert report.records == 7 and report.kept == 2 and (report.with_images, report.text_only) == (1, 1)
    assert report.skipped == {
        train_encoding.SKIP_MALFORMED: 2,
        train_encoding.SKIP_PLACEHOLDERS: 2,
        train_encoding.SKIP_MISSING_IMAGE: 1,
    }
    assert report.skipped_examples[train_encoding.SKIP_MISSING_IMAGE] == ["missing"]
    assert dataset.sample_ids == ["mm", "txt"]
    assert "set aside" in report.summary()


def test_leading_assistant_turn_is_dropped(tmp_path):
    record = {
        "id": "x",
        "conversations": [{"from": "gpt", "value": "hello"}] + TEXT_ONLY["conversations"],
    }
    dataset = _dataset(tmp_path, [record], "phi")
    ids, labels = dataset.token_ids(0)
    assert len(_labelled_runs(labels)) == 1


def test_caption_stage_sets_text_only_aside(tmp_path):
    dataset = _dataset(tmp_path, [dict(CONVERSATION), TEXT_ONLY], "pretrain", caption=True)
    assert dataset.report.skipped == {train_encoding.SKIP_NO_IMAGE_IN_CAPTION_STAGE: 1}


def test_nothing_left_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no sample left"):
        _dataset(tmp_path, [TEXT_ONLY], "pretrain", caption=True)


@pytest.mark.parametrize("name", ["../secret.png", "/etc/passwd", "a/../../b.png"])
def test_image_paths_must_stay_in_the_folder(tmp_path, name):
    with pytest.raises(UserError, match="leaves the image folder"):
        safe_image_path(tmp_path, name)
    record = dict(CONVERSATION, image=name)
    with pytest.raises(UserError, match="leaves the image folder"):
        _dataset(tmp_path, [record], "phi")


def test_image_in_a_subfolder_is_fine(tmp_path):
    assert safe_image_path(tmp_path, "coco/train2017/x.jpg") == tmp_path / "coco" / "train2017" / "x.jpg"
    assert safe_image_path(tmp_path, "coco/../x.jpg") == tmp_path / "x.jpg"


def test_bad_files(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        train_records.read_records(path)
    path.write_text(json.dumps({"id": 1}))
    with pytest.raises(UserError, match="JSON list"):
        train_records.read_records(path)
    with pytest.raises(UserError, match="no such data file"):
        train_records.read_records(tmp_path / "none.json")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps(TEXT_ONLY) + "\n\n" + json.dumps(TEXT_ONLY) + "\n")
    assert len(train_records.read_records(jsonl)) == 2


def test_fingerprint_follows_the_content(tmp_path):
    path = _write(tmp_path, [TEXT_ONLY])
    first = train_records.file_fingerprint(path)
    assert first.startswith("sha256:") and first == train_records.file_fingerprint(path)
    path.write_text(json.dumps([TEXT_ONLY, TEXT_ONLY]))
    assert train_records.file_fingerprint(path) != first


def test_collator_orders_images_by_sample(tmp_path):
    records = [dict(CONVERSATION, id=str(i), image=f"{i}.png") for i in range(3)] + [TEXT_ONLY]
    (tmp_path / "images").mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (28, 28), colour).save(tmp_path / "images" / f"{i}.png")
    path = tmp_path / "d.json"
    path.write_text(json.dumps(records))
    dataset = build_dataset(
        path,
        tmp_path / "images",
        get_template("phi"),
        build_tokenizer("phi"),
        preprocessor_for("siglip", 28, "pad"),
        IMAGE_TOKENS,
        1024,
        caption_stage=False,
        progress=False,
    )
    batch = ConversationCollator(0)([dataset[2], dataset[3], dataset[0]])
    # channel means of the stacked images follow the sample order: blue, then red
    means = batch["pixel_values"].mean(dim=(2, 3))
    assert batch["pixel_values"].shape[0] == 2
    assert means[0].argmax() == 2 and means[1].argmax() == 0
    assert batch["lengths"].tolist() == [len(dataset[i]["input_ids"]) for i in (2, 3, 0)]
    assert "pixel_values" not in ConversationCollator(0)([dataset[3]])
    assert dataset.modality_lengths[3] < 0 < dataset.modality_lengths[0]


def _arrays(dataset):
    return [dataset.token_ids(i) for i in range(len(dataset))], dataset.images, dataset.spliced_lengths


def test_worker_processes_give_the_same_samples(tmp_path, monkeypatch):
    records = [dict(CONVERSATION, id=str(i)) for i in range(5)] + [TEXT_ONLY, {"id": "bad"}]
    serial = _dataset(tmp_path, records, "phi")
    monkeypatch.setattr(train_data, "PARALLEL_FROM", 1)
    monkeypatch.setattr(train_data, "CHUNK", 2)
    path = _write(tmp_path, records)
    parallel = build_dataset(
        path,
        tmp_path / "images",
        get_template("phi"),
        build_tokenizer("phi"),
        preprocessor_for("siglip", 28, "pad"),
        IMAGE_TOKENS,
        1024,
        caption_stage=False,
        progress=False,
        workers=2,
    )
    assert _arrays(parallel) == _arrays(serial)
    assert parallel.sample_ids == serial.sample_ids
    assert parallel.report.to_dict() == serial.report.to_dict()


def test_tokenised_data_is_cached_by_content(tmp_path, monkeypatch):
    def build(records=None):
        # the image is written once: the cache also follows the size and time of every image it names
        images = () if (tmp_path / "images" / "a.png").exists() else ("a.png",)
        path = _write(tmp_path, records or [CONVERSATION, TEXT_ONLY], images)
        return build_dataset(
            path,
            tmp_path / "images",
            get_template("phi"),
            build_tokenizer("phi"),
            preprocessor_for("siglip", 28, "pad"),
            IMAGE_TOKENS,
            1024,
            caption_stage=False,
            progress=False,
            cache_dir=tmp_path / "cache",
        )

    first = build()
    assert len(list((tmp_path / "cache").glob("tokenized-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(train_data, "encode_record", fail)
    again = build()  # same file, tokenizer, template and limits: read back
    assert _arrays(again) == _arrays(first) and again.report.to_dict() == first.report.to_dict()
    assert again.sample_ids == first.sample_ids
    with pytest.raises(AssertionError, match="tokenised again"):
        build([TEXT_ONLY])  # other content, other key


@pytest.mark.parametrize(
    ("family", "template"), [("phi", "phi"), ("llama", "v1"), ("gemma", "gemma"), ("qwen2", "qwen2_base")]
)
def test_end_of_answer_text_in_a_turn_masks_the_sample_as_the_original(tmp_path, family, template):
    eos = get_template(template).eos
    in_answer = {
        "id": "eos-answer",
        "conversations": [
            {"from": "human", "value": "Quote it."},
            {"from": "gpt", "value": f"It ends with {eos} here."},
        ],
    }
    in_question = {
        "id": "eos-question",
        "conversations": [
            {"from": "human", "value": "Say hi."},
            {"from": "gpt", "value": "hi"},
            {"from": "human", "value": f"What is {eos}?"},
            {"from": "gpt", "value": "a token"},
        ],
    }
    tokenizer = build_tokenizer(family)
    dataset = _dataset(tmp_path, [in_answer, TEXT_ONLY, in_question], template, tokenizer=tokenizer)
    assert dataset.report.kept == 3 and dataset.report.eos_text_masked == 2
    assert "2 hold the end-of-answer text" in dataset.report.summary()
    for index in (0, 2):  # kept (they take their batch slot, as in the original) but learn nothing
        assert set(dataset.token_ids(index)[1]) == {IGNORE_INDEX}
    assert len(_labelled_runs(dataset.token_ids(1)[1])) == 1
    # the option trains on them, the end text inside an answer learned as part of it
    (tmp_path / "keep").mkdir()
    kept = build_dataset(
        _write(tmp_path / "keep", [in_answer]),
        tmp_path / "keep" / "images",
        get_template(template),
        tokenizer,
        preprocessor_for("siglip", 28, "pad"),
        image_tokens=IMAGE_TOKENS,
        max_length=1024,
        caption_stage=False,
        progress=False,
        keep_eos_text=True,
    )
    assert kept.report.eos_text_masked == 0
    ids, labels = kept.token_ids(0)
    runs = _labelled_runs(labels)
    assert len(runs) == 1
    assert tokenizer.decode([ids[p] for p in runs[0]]).strip() == f"It ends with {eos} here.{eos}"


def test_end_of_answer_text_past_the_limit_keeps_the_labels_as_the_original(tmp_path):
    """The original only masks when the rounds it could count stay below model_max_length."""
    long_answer = " ".join(["word"] * 200)
    record = {
        "id": "late-eos",
        "conversations": [
            {"from": "human", "value": "Talk."},
            {"from": "gpt", "value": long_answer},
            {"from": "human", "value": "And <|endoftext|>?"},
            {"from": "gpt", "value": "no"},
        ],
    }
    dataset = _dataset(tmp_path, [record], "phi", max_length=160)
    assert dataset.report.eos_text_masked == 0 and dataset.report.truncated == 1
    assert any(label != IGNORE_INDEX for label in dataset.token_ids(0)[1])


def test_cut_keeps_samples_the_original_keeps(tmp_path):
    """An image across model_max_length, or no answer left: the original cuts the spliced sequence and trains on."""
    from tinyllava_bench.testing.models import build_tiny_model

    late_image = {
        "id": "late",
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "Say hi."},
            {"from": "gpt", "value": "hi there"},
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "a circle"},
        ],
    }
    full = _dataset(tmp_path, [late_image], "phi")
    ids, labels = full.token_ids(0)
    image_at = ids.index(IMAGE_TOKEN_INDEX)
    limit = image_at + 2  # the image's features start inside the limit and end past it
    cut = _dataset(tmp_path, [late_image], "phi", max_length=limit)
    assert cut.report.kept == 1 and cut.report.truncated == 1 and not cut.report.skipped
    cut_ids, cut_labels = cut.token_ids(0)
    assert (cut_ids, cut_labels) == (ids[: image_at + 1], labels[: image_at + 1])
    assert cut.images == [("a.png",)] and cut.spliced_lengths == [limit]
    # the earlier answer is still learned
    assert len(_labelled_runs(cut_labels)) == 1
    model = build_tiny_model("phi", "siglip", image_size=28, max_length=limit)
    spliced = model.splice(
        [cut_ids], torch.zeros(1, model.num_image_tokens, 32), labels=[cut_labels], padding_side="right"
    )
    assert spliced["inputs_embeds"].shape[1] == limit
    # an image wholly past the limit: cut with its placeholder, the sample kept
    early = _dataset(tmp_path, [late_image], "phi", max_length=image_at)
    assert early.images == [()] and early.token_ids(0)[0] == ids[:image_at]
    # nothing left to learn: kept and counted
    none_left = _dataset(tmp_path, [late_image], "phi", max_length=5)
    assert none_left.report.kept == 1 and none_left.report.no_target == 1
    assert "1 no answer token" in none_left.report.summary()


def test_modality_lengths_are_word_counts_as_the_original(tmp_path):
    dataset = _dataset(tmp_path, [CONVERSATION, TEXT_ONLY], "phi")
    words = sum(len(m["value"].split()) for m in CONVERSATION["conversations"])
    assert dataset.modality_lengths == [words, -10]  # 9 words of the question + "no"
