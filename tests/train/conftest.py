"""Fixtures for the trainer tests: tiny pretrained-looking LLM and vision folders, and synthetic colour data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import TrainerCallback

from tinyllava_bench.testing.models import write_model_parts

# Colour words whose first token carries the leading space in the tiny tokenizer and differs per colour (" red"
# splits into a bare space token, which the answer-span labels leave out).
COLOURS = {"green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30), "pink": (240, 80, 190)}
QUESTION = "What color is the shape?\nAnswer the question using a single word or phrase."


def colour_records(n: int, caption: bool, start: int = 0) -> list[dict]:
    names = list(COLOURS)
    records = []
    for i in range(start, start + n):
        colour = names[i % len(names)]
        question = "<image>\n" + ("Describe the image." if caption else QUESTION)
        records.append(
            {
                "id": f"s{i}",
                "image": f"{colour}.png",
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": colour}],
            }
        )
    return records


def write_colour_data(
    root: Path, counts: dict[str, int] | None = None, text_only: int = 0, shade: int = 0
) -> Path:
    """A data root: `<stage>.json` per stage (caption records for *pretrain stages) and images/ per colour.

    `text_only` text-only records are added to the conversation stages; `shade` shifts every colour a little.
    """
    counts = counts or {"pretrain": 16, "finetune": 16}
    (root / "images").mkdir(parents=True, exist_ok=True)
    for colour, rgb in COLOURS.items():
        Image.new("RGB", (28, 28), tuple(min(255, c + shade) for c in rgb)).save(
            root / "images" / f"{colour}.png"
        )
    for stage, n in counts.items():
        caption = stage.endswith("pretrain")
        records = colour_records(n, caption)
        if not caption:
            records += [
                {
                    "id": f"t{i}",
                    "conversations": [
                        {"from": "human", "value": "Is the sky blue? Please answer yes or no."},
                        {"from": "gpt", "value": "yes"},
                    ],
                }
                for i in range(text_only)
            ]
        (root / f"{stage}.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="session")
def model_parts(tmp_path_factory):
    cache: dict[tuple, dict[str, str]] = {}

    def get(llm: str = "phi", vision: str = "siglip", vision_layers: int = 4) -> dict[str, str]:
        key = (llm, vision, vision_layers)
        if key not in cache:
            cache[key] = write_model_parts(
                tmp_path_factory.mktemp(f"parts-{llm}-{vision}"), llm, vision, vision_layers
            )
        return cache[key]

    return get


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine's cores are shared: one intra-op thread is faster than two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_config(path: Path, parts: dict[str, str], **settings) -> Path:
    """A training config YAML for the tiny parts (phi template unless said otherwise)."""
    import yaml

    config = {"llm": parts["llm"], "vision": parts["vision"], "template": "phi", "model_max_length": 256}
    config.update(settings)
    path.write_text(yaml.safe_dump(config))
    return path


def run_options(output: Path, data_root: Path, **changes):
    """Fast RunOptions for tests: no workers, no progress bars, small batches."""
    from tinyllava_bench.train.plan import RunOptions

    values = dict(
        output=output,
        data_root=data_root,
        per_device_batch_size=4,
        grad_accum=1,
        save_steps=1000,
        logging_steps=1,
        dataloader_workers=0,
        progress=False,
    )
    values.update(changes)
    return RunOptions(**values)


def checkpointed_pretrain_plan(
    setup: dict,
    output: Path,
    resume: bool = False,
    config_name: str = "c.yaml",
    data: Path | None = None,
    **settings,
):
    """A 6-step pretrain stage that saves every 2 steps (3 kept): what the resume and loss-curve tests interrupt."""
    from tinyllava_bench.train.plan import build_plan

    settings.setdefault("recipe", "base")
    config = write_config(setup["root"] / config_name, setup["parts"], **settings)
    options = run_options(
        output,
        data or setup["data"],
        max_steps=6,
        save_steps=2,
        save_total_limit=3,
        per_device_batch_size=2,
        stages=["pretrain"],
        resume=resume,
    )
    return build_plan(None, config, options)


class CrashAt(TrainerCallback):
    """A trainer callback that stops the run with an error at `step` (after the checkpoint before it was written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")
