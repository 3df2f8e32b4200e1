"""A fake model for the engine: deterministic answers computed from the question, no weights, no tensors.

It implements engine/model_protocol.py's EvalModel, so `evaluate(config, model=FakeModel())` runs the whole engine
(requests, batches, the samples log, scoring, the run folder) in a fraction of a second. Its answers are a function
of the question alone (and of the image's size where `answer` asks for it), so a test can compute what each sample
must hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tinyllava_bench.engine.batching import Prepared, Request, prepared_batches


def yes_or_no(question: str) -> str:
    """The default answer: `yes` or `no`, picked by a hash of the question."""
    return "yes" if hashlib.sha256(question.encode()).digest()[0] % 2 == 0 else "no"


def image_size(image: Any) -> tuple[int, int]:
    """The fake's image preprocessing: the picture's size (a real decode, so a bad image fails its sample)."""
    return tuple(image.size)


@dataclass
class FakeSettings:
    layout: str = "fake"
    template: str = "fake"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FakeModel:
    """Answers `answer(question)`; a question for which `fails(question)` is true raises in generate (that sample
    fails alone). `generated` lists every question generated for, in order; `released` tells whether the engine
    released it."""

    supports_prefix_sharing = False

    def __init__(
        self,
        answer: Callable[[str], str] = yes_or_no,
        fails: Callable[[str], bool] | None = None,
        name: str = "fake",
    ) -> None:
        self.answer = answer
        self.fails = fails
        self.name = name
        self.checkpoint_dir = None
        self.read_from: dict[str, Any] = {}
        self.card = None
        self.generated: list[str] = []
        self.released = False
        self._settings = FakeSettings()

    @property
    def settings(self) -> FakeSettings:
        return self._settings

    @property
    def dtype(self) -> str:
        return "float32"

    def card_fields(self) -> dict[str, Any]:
        return {"llm": "fake", "vision": None, "template": self._settings.template, "params_b": 0.0}

    def render_prompt(self, question: str) -> str:
        return f"USER: <image>\n{question} ASSISTANT:"

    def tokenize_prompts(self, prompts: list[str]) -> list[list[int]]:
        return [list(prompt.encode()) for prompt in prompts]

    def prepare(
        self,
        requests: Sequence[Request],
        load_image: Callable[[int], Any],
        batch_size: Callable[[], int],
        num_workers: int,
        share: bool,
    ) -> Iterator[list[Prepared]]:
        return prepared_batches(requests, load_image, image_size, batch_size(), num_workers)

    def begin_batch(self, ready: list[Prepared], share: bool) -> None:
        return None

    def generate(
        self, chunk: list[Prepared], max_new_tokens: int, sampling: Any, state: Any
    ) -> list[list[int]]:
        answers = []
        for prepared in chunk:
            question = prepared.request.question
            if self.fails is not None and self.fails(question):
                raise RuntimeError(f"the fake model fails on {question!r}")
            self.generated.append(question)
            answers.append(list(self.answer(question).encode())[:max_new_tokens])
        return answers

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        return [bytes(ids).decode("utf-8", "replace").strip() for ids in token_ids]

    def release(self) -> None:
        self.released = True
