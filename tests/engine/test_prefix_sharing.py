"""Image-prefix sharing (on by default) gives every sample the answer it gets without sharing: every tiny LLM and
vision family, every checkpoint layout, greedy and sampled, on tasks with many questions per image, one, a mix, and
an image that fails to load; and the planner keeps one picture's questions together."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tinyllava_bench import load_model
from tinyllava_bench.cli import main
from tinyllava_bench.engine.batching import Request, image_groups, shared_batches
from tinyllava_bench.models.prefix_sharing import PrefixStore
from tinyllava_bench.models.sampling import Sampling
from tinyllava_bench.testing.images import make_image
from tinyllava_bench.testing.models import LLM_FAMILIES, VISION_FAMILIES

QUESTIONS = [
    "What?",
    "What is the color of the shape in the top left corner of the picture?",
    "How many?",
    "Is there a red circle? Please answer yes or no.",
    "What word is written?",
]
# rows -> picture: three questions about picture 0, one about picture 1, two about picture 2, interleaved
PICTURE_OF_ROW = [0, 1, 0, 2, 0, 2]


@pytest.mark.parametrize("vision", VISION_FAMILIES)
@pytest.mark.parametrize("llm", LLM_FAMILIES)
def test_shared_generation_equals_unshared_in_every_layout(tiny_checkpoints, llm, vision):
    pictures = [make_image(w, h, seed=s) for s, (w, h) in enumerate([(31, 20), (20, 31), (28, 28)])]
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(len(PICTURE_OF_ROW))]
    seeds = tuple(range(100, 100 + len(PICTURE_OF_ROW)))
    for layout, folder in tiny_checkpoints(llm, vision).items():
        model = load_model(str(folder))
        pixels = [model.pixel_values(p) for p in pictures]
        images = [pixels[p] for p in PICTURE_OF_ROW]
        ids = model.prompt_ids_many(questions)
        for sampling in (None, Sampling(1.0, seeds)):
            unshared = model.generate_ids(
                images, questions, max_new_tokens=8, prompt_ids=ids, sampling=sampling
            )
            shared = model.generate_ids_shared(
                images, ids, PICTURE_OF_ROW, max_new_tokens=8, sampling=sampling
            )
            assert shared == unshared, (layout, sampling is not None)
            # one row at a time on one store: each picture prefilled once, then reused across batches
            store = PrefixStore()
            one_by_one = [
                model.generate_ids_shared(
                    [images[r]],
                    [ids[r]],
                    [PICTURE_OF_ROW[r]],
                    max_new_tokens=8,
                    sampling=sampling.rows([r]) if sampling else None,
                    prefixes=store,
                )[0]
                for r in range(len(PICTURE_OF_ROW))
            ]
            assert one_by_one == unshared, (layout, sampling is not None)
            assert len(store.entries) == len(pictures)
        assert len({tuple(a) for a in unshared}) > 1  # not every prompt collapsed to one answer


def test_rows_that_cannot_share_run_unshared(tiny_checkpoints):
    """No image key, or a prompt cut at max_length: those rows take the unshared path, with the same answers."""
    model = load_model(str(tiny_checkpoints("llama", "clip")["native"]))
    picture = model.pixel_values(make_image(25, 25))
    questions = ["What?", "How many?", "What word is written?"]
    ids = model.prompt_ids_many(questions)
    expected = model.generate_ids([picture] * 3, questions, max_new_tokens=6, prompt_ids=ids)
    assert model.generate_ids_shared([picture] * 3, ids, ["a", None, "a"], max_new_tokens=6) == expected
    model.settings.max_length = len(ids[1]) - 1 + model.num_image_tokens  # row 1 is cut, the others are not
    expected = model.generate_ids([picture] * 3, questions, max_new_tokens=6, prompt_ids=ids)
    store = PrefixStore()
    shared = model.generate_ids_shared([picture] * 3, ids, ["a"] * 3, max_new_tokens=6, prefixes=store)
    assert shared == expected
    assert len(store.entries) == 1


def _request(index: int, key: str | None, length: int, error: str | None = None) -> Request:
    return Request(index, f"k{index}", index, "q", "p", [1] * length, error=error, image_key=key)


def test_planner_keeps_groups_together_and_loads_each_image_once():
    requests = [
        _request(0, "a", 5),
        _request(1, "b", 9),
        _request(2, "a", 7),
        _request(3, None, 3),
        _request(4, "b", 4),
        _request(5, "a", 6, error="prompt: no question"),
        _request(6, "c", 2),
    ]
    groups = image_groups(requests)
    assert [[r.index for r in g] for g in groups] == [[1, 4], [2, 0], [5], [3], [6]]
    loaded: list[int] = []

    def load(index: int) -> str:
        loaded.append(index)
        if index == 6:
            raise OSError("broken file")
        return f"image{index}"

    sizes = iter([3, 3, 3, 3])
    batches = list(shared_batches(requests, load, lambda image: image, lambda: next(sizes), 0))
    assert [[p.request.index for p in b] for b in batches] == [[1, 4], [2, 0, 5], [3, 6]]
    assert sorted(loaded) == [1, 2, 3, 6]  # one load per image group; the errored request loads nothing
    prepared = {p.request.index: p for b in batches for p in b}
    assert prepared[4].pixels == prepared[1].pixels == "image1"
    assert prepared[5].error == "prompt: no question"
    assert prepared[6].error == "image: broken file"


# ----- the whole eval, with and without sharing ----------------------------------------------------------------
# GQA rows -> image: a group of 7, 1, 4 (its image missing), 1, 2, 6, 3 questions, interleaved in the file
GROUP_SIZES = [7, 1, 4, 1, 2, 6, 3]
MISSING_GROUP = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("data")
    path = write_task_data("gqa", root, n=sum(GROUP_SIZES), seed=3, image_mode="files")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    images = sorted({row["imageId"] for row in rows})
    groups = [g for g, size in enumerate(GROUP_SIZES) for _ in range(size)]
    order = sorted(range(len(rows)), key=lambda i: (i % 3, i))  # interleave the groups across the file
    for row, position in zip(rows, order):
        row["imageId"] = images[groups[position]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "images" / f"{images[MISSING_GROUP]}.png").unlink()
    write_task_data("pope", root, n=8, seed=3)  # pairs of questions per embedded image (keyed by its bytes)
    return root


def _shared_pope_images(data: Path) -> int:
    import pyarrow.parquet as pq

    images = Counter(i["bytes"] for i in pq.read_table(data / "pope.parquet").column("image").to_pylist())
    return sum(1 for count in images.values() if count > 1)  # an image asked about once is not shared


def _eval(checkpoint: Path, data: Path, output: Path, *extra: str) -> dict:
    options = "generation.max_new_tokens=8"
    if "--sampled" in extra:
        extra = tuple(e for e in extra if e != "--sampled")
        options += ",generation.temperature=0.7"
    code = main(
        [
            "eval",
            "--model",
            str(checkpoint),
            "--tasks",
            "gqa,pope",
            "--data-root",
            str(data),
            "--output",
            str(output),
            "--device",
            "cpu",
            "--num-workers",
            "0",
            "--max-error-rate",
            "0.5",
            "--task-options",
            options,
            *extra,
        ]
    )
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    samples = {
        task: [
            {k: s[k] for k in ("key", "index", "prompt", "prediction", "error")}
            for s in map(json.loads, (output / f"samples_{task}.jsonl").read_text().splitlines())
        ]
        for task in ("gqa", "pope")
    }
    return {"results": results, "samples": samples}


@pytest.mark.parametrize("llm,vision,layout", [("phi", "siglip", "native"), ("gemma", "clip", "factory")])
@pytest.mark.parametrize("sampled", [False, True])
def test_eval_with_sharing_equals_without(
    tiny_checkpoints, data, tmp_path, monkeypatch, llm, vision, layout, sampled
):
    from tinyllava_bench.models.tinyllava import TinyLlava

    prefilled: list = []  # (image key, prefix ids) of every prefix prefilled
    images_per_prefill: list[int] = []
    prefill = TinyLlava._prefill_prefixes

    def counted(self, prefixes, keys, images):
        new = [key for key in dict.fromkeys(keys) if key not in prefixes]
        prefilled.extend(new)
        images_per_prefill.append(len({image for image, _ in new}))
        return prefill(self, prefixes, keys, images)

    monkeypatch.setattr(TinyLlava, "_prefill_prefixes", counted)
    checkpoint = tiny_checkpoints(llm, vision)[layout]
    mode = ("--sampled",) if sampled else ()
    off = _eval(checkpoint, data, tmp_path / "off", "--batch-size", "4", "--no-prefix-sharing", *mode)
    assert off["results"]["config"]["prefix_sharing"] is False
    assert prefilled == []
    for batch_size in ("1", "4", "auto"):
        images_per_prefill.clear()
        on = _eval(checkpoint, data, tmp_path / f"on{batch_size}", "--batch-size", batch_size, *mode)
        assert on["results"]["config"]["prefix_sharing"] is True
        if (
            batch_size == "auto"
        ):  # CPU: up to 8 questions of one picture per chunk, never two pictures' prefills
            assert max(images_per_prefill) == 1
        # each image asked about more than once and loaded is prefilled exactly once, even at batch size 1:
        # GQA's groups of 7, 2, 6 and 3 (the 4 have no image, the 1s run unshared), and POPE's repeated images
        shared_images = [key for key, _ in prefilled]
        assert len(shared_images) == len(set(shared_images)) == 4 + _shared_pope_images(data)
        prefilled.clear()
        assert on["samples"] == off["samples"]
        for task in ("gqa", "pope"):
            assert on["results"]["tasks"][task]["metrics"] == off["results"]["tasks"][task]["metrics"]
    gqa = off["samples"]["gqa"]
    assert sum(1 for s in gqa if s["error"]) == GROUP_SIZES[MISSING_GROUP]
    assert all(s["error"].startswith("image: no image file") for s in gqa if s["error"])
    assert len({s["prediction"] for s in gqa if s["prediction"] is not None}) > 1


def test_cpu_auto_chunks_hold_one_image_each():
    from tinyllava_bench.engine.batching import CPU_SHARED_CHUNK, BatchSizer

    images = ["a"] * 11 + ["b"] * 2 + [None, None] + ["c"]
    items = list(range(len(images)))

    def chunks(sizer: BatchSizer) -> list[list[str | None]]:
        seen: list[list[str | None]] = []
        sizer.run(
            items, lambda chunk: seen.append([images[i] for i in chunk]) or chunk, lambda i: images[i] or i
        )
        return seen

    shared = chunks(BatchSizer("auto", "cpu", prefix_sharing=True))
    assert [len(c) for c in shared] == [CPU_SHARED_CHUNK, 11 - CPU_SHARED_CHUNK, 2, 1, 1, 1]
    assert all(len(set(c)) == 1 for c in shared)
    assert [len(c) for c in chunks(BatchSizer("auto", "cpu"))] == [1] * len(items)  # unshared: one at a time
    assert [len(c) for c in chunks(BatchSizer("4", "cpu", prefix_sharing=True))] == [4, 4, 4, 4]  # as asked
    assert BatchSizer("auto", "cuda", prefix_sharing=True).size == 64


def test_ranks_get_whole_image_groups():
    from tinyllava_bench.engine.distributed import Dist
    from tinyllava_bench.engine.generation import shard as _shard

    pending = list(range(10))
    keys = {0: "a", 1: "b", 2: "a", 3: None, 4: "c", 5: "a", 6: "b", 7: None, 8: "c", 9: "c"}
    shares = [_shard(pending, keys, Dist(rank=r, world=2)) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == pending
    for key in ("a", "b", "c"):
        rows = {i for i, k in keys.items() if k == key}
        assert rows <= set(shares[0]) or rows <= set(shares[1])
    assert _shard(pending, {}, Dist(rank=1, world=2)) == pending[1::2]  # without sharing: every other row
