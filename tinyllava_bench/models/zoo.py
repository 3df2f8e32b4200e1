"""The model zoo: one YAML card per released checkpoint and per paper variant (model_zoo/*.yaml)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tinyllava_bench.errors import UserError
from tinyllava_bench.paths import model_zoo_dir


def _known_benchmarks(scores: dict[str, float]) -> dict[str, float]:
    # a card's score keys are the paper columns the task YAMLs name (`benchmark.paper_column`): the one fact the
    # models layer takes from the task registry
    from tinyllava_bench.tasks.registry import paper_columns

    known = paper_columns()
    unknown = sorted(set(scores) - set(known))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return scores


class ReportedScores(BaseModel):
    """Scores for the same model from a second source that disagrees with paper_scores (shown beside them)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)  # e.g. "legacy README (DLCV-BUAA/TinyLLaVABench, Model Details)"
    scores: dict[str, float]

    @field_validator("scores")
    @classmethod
    def _benchmarks(cls, scores: dict[str, float]) -> dict[str, float]:
        return _known_benchmarks(scores)


class ModelCard(BaseModel):
    """What is known of one model: where it lives, how it is built and trained, what the paper reported."""

    model_config = ConfigDict(extra="forbid")

    name: str
    checkpoint: str | None = None  # hub id; None for paper variants that were not released
    layout: str | None = None  # legacy | factory | hf_llava | native
    llm: str
    llm_family: str
    vision: str
    connector: str = "mlp2x_gelu"
    template: str
    image_aspect: str
    image_tokens: int
    recipe: str | None = None
    data: str | None = None
    params_b: float | None = None
    resolution: int | None = None
    source: str | None = None  # where the reported scores come from
    paper_variant: str | None = None  # row of paper_scores.csv
    paper_scores: dict[str, float] = Field(
        default_factory=dict
    )  # = the paper_variant row of paper_scores.csv
    # values other sources give where they differ from paper_scores; each keeps its own source
    reported_elsewhere: list[ReportedScores] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)  # load_model overrides this card needs
    notes: str | None = None

    @field_validator("paper_scores")
    @classmethod
    def _paper_benchmarks(cls, scores: dict[str, float]) -> dict[str, float]:
        return _known_benchmarks(scores)

    def reference_scores(self) -> dict[str, list[tuple[float, str]]]:
        """Benchmark -> every (value, source) the card knows, paper_scores first."""
        found: dict[str, list[tuple[float, str]]] = {}
        for bench, value in self.paper_scores.items():
            found.setdefault(bench, []).append((value, self.source or "paper_scores"))
        for other in self.reported_elsewhere:
            for bench, value in other.scores.items():
                found.setdefault(bench, []).append((value, other.source))
        return found

    def disagreements(self) -> dict[str, list[tuple[float, str]]]:
        """The benchmarks whose sources give different values, with every (value, source)."""
        return {
            bench: values
            for bench, values in self.reference_scores().items()
            if len({value for value, _ in values}) > 1
        }

    def overrides_for_load(self) -> dict[str, Any]:
        return dict(self.overrides)

    def metadata(self) -> dict[str, Any]:
        """The card as results.json's model.card."""
        return {
            "llm": self.llm,
            "vision": self.vision,
            "connector": self.connector,
            "recipe": self.recipe,
            "data": self.data,
            "template": self.template,
            "image_aspect": self.image_aspect,
            "image_tokens": self.image_tokens,
            "params_b": self.params_b,
            "paper_variant": self.paper_variant,
        }


def _read_card(path: Path) -> ModelCard:
    try:
        data = yaml.safe_load(path.read_text())
        return ModelCard(**(data or {}))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    except (TypeError, ValidationError) as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in getattr(exc, "errors", lambda: [])()
        )
        raise UserError(f"{path}: invalid model card ({fields or exc})") from None


@lru_cache(maxsize=4)
def _load_zoo(folder: str) -> dict[str, ModelCard]:
    cards = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        card = _read_card(path)
        cards[card.name] = card
    return cards


def list_cards() -> list[ModelCard]:
    return list(_load_zoo(str(model_zoo_dir())).values())


def find_card(name: str) -> ModelCard | None:
    """The card named `name`, or whose checkpoint is `name` (a hub id); None when there is none."""
    cards = _load_zoo(str(model_zoo_dir()))
    if name in cards:
        return cards[name]
    lowered = name.lower()
    for card in cards.values():
        if card.name.lower() == lowered:
            return card
    return None


def card_for_checkpoint(checkpoint: str) -> ModelCard | None:
    for card in _load_zoo(str(model_zoo_dir())).values():
        if card.checkpoint and card.checkpoint.lower() == checkpoint.lower():
            return card
    return None
