"""The interface the engine runs a model through, and its two adapters over TinyLLaVA.

The engine (engine/generation.py) only ever calls what `EvalModel` names: render and tokenise prompts, turn
requests into batches of prepared inputs (`prepare`), generate token ids for a chunk of a batch (`generate`),
decode them, and `release` the model when done. It records `name`, `checkpoint_dir`, `read_from`, `settings`,
`dtype`, `card` and `card_fields()` in results.json and the model's fingerprint. Anything that implements these
can be evaluated: `TinyLlavaModel` (the batched, prefix-sharing path every run takes), `BareGenerateModel` (one
sample at a time through the model's plain generate: a reference), and testing/fake_model.py's `FakeModel`.

Errors: `generate` raises when the chunk fails; the engine then retries sample by sample, so one bad sample fails
alone (and an `auto` batch size halves on out-of-memory). `prepare` reports a bad image in `Prepared.error`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tinyllava_bench.engine.batching import Prepared, Request, prepared_batches, shared_batches


@runtime_checkable
class EvalModel(Protocol):
    """What the engine needs of a model (see the module docstring)."""

    name: str
    checkpoint_dir: Any  # Path | None: the folder its files came from (fingerprinted); None for none
    read_from: dict[str, Any]  # other folders it read (vision tower, tokenizer ...), fingerprinted too
    card: Any  # a model-zoo card (models/zoo.py ModelCard) or None
    supports_prefix_sharing: bool  # whether generate() gains from a batch's repeated images

    @property
    def settings(self) -> Any:
        """Load settings: `.layout` and `.to_dict()` (recorded, and part of the model's fingerprint)."""
        ...

    @property
    def dtype(self) -> Any: ...

    def card_fields(self) -> dict[str, Any]:
        """results.json's model card when no zoo card names this model."""
        ...

    def render_prompt(self, question: str) -> str: ...

    def tokenize_prompts(self, prompts: list[str]) -> list[list[int]]: ...

    def prepare(
        self,
        requests: Sequence[Request],
        load_image: Callable[[int], Any],
        batch_size: Callable[[], int],
        num_workers: int,
        share: bool,
    ) -> Iterator[list[Prepared]]:
        """Batches of model-ready inputs for `requests`, in order (with `share`, one image's requests together)."""
        ...

    def begin_batch(self, ready: list[Prepared], share: bool) -> Any:
        """State kept across the chunks one batch is run in (e.g. prefilled image prefixes); passed to generate."""
        ...

    def generate(
        self, chunk: list[Prepared], max_new_tokens: int, sampling: Any, state: Any
    ) -> list[list[int]]:
        """Token ids of each answer (ending at and including the first stop token); raises when the chunk fails.

        `sampling`: None for greedy, else models/sampling.py's Sampling, one seed per row of `chunk`."""
        ...

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]: ...

    def release(self) -> None:
        """Free what the model holds (memory, GPU cache); it is not used afterwards."""
        ...


@dataclass
class _SharedBatch:
    """One batch's prefix sharing: each request's image key (None: its image is asked about once in the batch)
    and the prefixes prefilled so far, kept across the batch's chunks."""

    share_key: Mapping[int, Hashable | None]
    prefixes: Any = field(default=None)


class TinyLlavaModel:
    """models/tinyllava.TinyLlava under the engine: batched generation, image-prefix sharing when asked."""

    supports_prefix_sharing = True

    def __init__(self, model: Any) -> None:
        self.model = model
        self.name = model.name
        self.checkpoint_dir = model.checkpoint_dir
        self.read_from = model.read_from
        self.card = model.card

    @property
    def settings(self) -> Any:
        return self.model.settings

    @property
    def dtype(self) -> Any:
        return self.model.dtype

    def card_fields(self) -> dict[str, Any]:
        model = self.model
        extra = model.settings.extra
        return {
            "llm": model.language_model.config.model_type,
            "vision": model.vision_tower.family,
            "connector": model.settings.connector,
            "recipe": extra.get("recipe"),
            "data": extra.get("data"),
            "template": model.settings.template,
            "image_aspect": model.settings.image_aspect,
            "image_tokens": model.num_image_tokens,
            "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
            "paper_variant": extra.get("paper_variant"),
        }

    def render_prompt(self, question: str) -> str:
        return self.model.render_prompt(question)

    def tokenize_prompts(self, prompts: list[str]) -> list[list[int]]:
        return self.model.tokenize_prompts(prompts)

    def prepare(
        self,
        requests: Sequence[Request],
        load_image: Callable[[int], Any],
        batch_size: Callable[[], int],
        num_workers: int,
        share: bool,
    ) -> Iterator[list[Prepared]]:
        preprocess = self.model.preprocessor
        if share:  # the batch size is read per batch: an `auto` size that halved applies to the next one
            return shared_batches(requests, load_image, preprocess, batch_size, num_workers)
        return prepared_batches(requests, load_image, preprocess, batch_size(), num_workers)

    def begin_batch(self, ready: list[Prepared], share: bool) -> _SharedBatch | None:
        if not share:
            return None
        from tinyllava_bench.models.prefix_sharing import PrefixStore

        # a batch holds whole image groups: an image asked about once gains nothing from a prefill of its own
        asked = Counter(p.request.image_key for p in ready)
        keys = {id(p): p.request.image_key if asked[p.request.image_key] > 1 else None for p in ready}
        # each image of this batch prefilled once, whatever chunks its questions take
        return _SharedBatch(keys, PrefixStore())

    def generate(
        self, chunk: list[Prepared], max_new_tokens: int, sampling: Any, state: _SharedBatch | None
    ) -> list[list[int]]:
        if state is not None:
            return self.model.generate_ids_shared(
                [p.pixels for p in chunk],
                [p.request.prompt_ids for p in chunk],
                [state.share_key[id(p)] for p in chunk],
                max_new_tokens=max_new_tokens,
                sampling=sampling,
                prefixes=state.prefixes,
            )
        return self.model.generate_ids(
            [p.pixels for p in chunk],
            [p.request.question for p in chunk],
            max_new_tokens=max_new_tokens,
            prompt_ids=[p.request.prompt_ids for p in chunk],
            sampling=sampling,
        )

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        return self.model.decode(token_ids)

    def release(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class BareGenerateModel(TinyLlavaModel):
    """The plain loop: one sample at a time through the model's own generate, no batching, no prefix sharing.

    The reference the batched path is checked against (greedy answers must agree), and the shape an adapter for a
    model outside the TinyLLaVA family starts from."""

    supports_prefix_sharing = False

    def begin_batch(self, ready: list[Prepared], share: bool) -> None:
        return None

    def generate(
        self, chunk: list[Prepared], max_new_tokens: int, sampling: Any, state: Any
    ) -> list[list[int]]:
        answers = []
        for row, prepared in enumerate(chunk):
            [answer] = self.model.generate_ids(
                [prepared.pixels],
                [prepared.request.question],
                max_new_tokens=max_new_tokens,
                prompt_ids=[prepared.request.prompt_ids],
                sampling=sampling.rows([row]) if sampling is not None else None,
            )
            answers.append(answer)
        return answers
