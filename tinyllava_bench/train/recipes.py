"""Training recipes as data: which module trains how, learning rates, batch sizes and schedules per stage.

The numbers are the launch scripts' (TinyLLaVABench `scripts/tiny_llava/*.sh` for the paper's recipes,
TinyLLaVA_Factory `scripts/train/**.sh` for its own); every field can be overridden from a `--config` YAML
(`stage_overrides: {NAME: {field: value}}`) or the command line. docs/training.md lists what still departs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from tinyllava_bench.errors import UserError

MODULES = ("vision", "connector", "llm")
TUNE_KINDS = ("frozen", "full", "partial", "lora")
STAGE_TEMPLATES = ("pretrain", "model")  # `model`: the conversation template of the model being trained
DEEPSPEED_STAGES = ("zero2", "zero3")
IMAGE_ASPECTS = ("pad", "square")
SOURCES = ("paper", "factory")  # whose launch scripts a recipe follows
# Factory's LoRA defaults (tinyllava/utils/arguments.py)
LORA_R, LORA_ALPHA, LORA_DROPOUT = 64, 16, 0.05


@dataclass(frozen=True)
class Tune:
    """How one module trains: frozen, full, partial (encoder/decoder layers >= from_layer) or LoRA."""

    kind: str = "frozen"
    from_layer: int | None = None
    r: int = LORA_R
    alpha: int = LORA_ALPHA
    dropout: float = LORA_DROPOUT

    def __post_init__(self) -> None:
        if self.kind not in TUNE_KINDS:
            raise UserError(f"unknown tune type {self.kind!r}; use one of {', '.join(TUNE_KINDS)}")
        if self.kind == "partial" and (self.from_layer is None or self.from_layer < 0):
            raise UserError("partial tuning needs a layer to start from, e.g. partial(12)")

    @property
    def trains(self) -> bool:
        return self.kind != "frozen"

    @property
    def first_layer(self) -> int:
        """The first layer a partial tune trains."""
        if self.kind != "partial" or self.from_layer is None:
            raise ValueError(f"a {self.kind} tune has no first layer")
        return self.from_layer

    def describe(self) -> str:
        if self.kind == "partial":
            return f"partial({self.from_layer})"
        if self.kind == "lora":
            return f"lora(r={self.r}, alpha={self.alpha}, dropout={self.dropout})"
        return self.kind


_TUNE_CALL = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")


def parse_tune(value: Any) -> Tune:
    """`frozen`, `full`, `partial(12)`, `partial(from_layer=12)`, `lora`, `lora(r=64, alpha=16, dropout=0.05)`,
    or a mapping `{kind: partial, from_layer: 12}`."""
    if isinstance(value, Tune):
        return value
    if isinstance(value, dict):
        try:
            return Tune(**value)
        except TypeError as exc:
            raise UserError(
                f"bad tune setting {value!r} ({exc}); keys: kind, from_layer, r, alpha, dropout"
            ) from None
    match = _TUNE_CALL.match(str(value))
    if not match:
        raise UserError(f"bad tune setting {value!r}; write e.g. frozen, full, partial(12) or lora(r=64)")
    kind, arguments = match.group(1), match.group(2)
    kwargs: dict[str, Any] = {}
    for position, item in enumerate(a.strip() for a in (arguments or "").split(",") if a.strip()):
        key, _, raw = item.rpartition("=")
        key = key.strip() or ("from_layer" if kind == "partial" and position == 0 else "")
        if key not in ("from_layer", "r", "alpha", "dropout"):
            raise UserError(f"bad tune setting {value!r}: unknown argument {item!r}")
        try:
            kwargs[key] = float(raw) if key == "dropout" else int(raw)
        except ValueError:
            raise UserError(f"bad tune setting {value!r}: {item!r} is not a number") from None
    return Tune(kind=kind, **kwargs)


@dataclass(frozen=True)
class StageRecipe:
    """One training stage. `data` names the data-root file (`<data>.json`); `template` is `pretrain` (caption
    `<image>{caption}\\n`) or `model` (the model's own chat template)."""

    name: str
    data: str
    template: str
    vision: Tune
    connector: Tune
    llm: Tune
    learning_rate: float
    global_batch_size: int
    module_lr: dict[str, float] = field(
        default_factory=dict
    )  # per-module learning rate, e.g. {"vision": 2e-6}
    per_device_batch_size: int = 16  # the default split of the global batch (the paper's scripts, 8 GPUs)
    epochs: float = 1.0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    model_max_length: int | None = None  # None: the recipe's (or the variant's) default
    group_by_modality: bool = False
    deepspeed: str = "zero2"  # what `--deepspeed auto` picks for this stage
    # how this stage's images are preprocessed; None: the model's own (its card's, the one eval uses)
    image_aspect: str | None = None

    def tune(self, module: str) -> Tune:
        return {"vision": self.vision, "connector": self.connector, "llm": self.llm}[module]

    def lr_for(self, module: str) -> float:
        return float(self.module_lr.get(module, self.learning_rate))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for module in MODULES:
            data[module] = self.tune(module).describe()
        return data


@dataclass(frozen=True)
class Recipe:
    name: str
    stages: tuple[StageRecipe, ...]
    description: str = ""
    model_max_length: int = 3072
    source: str = "paper"

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage(self, name: str) -> StageRecipe:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UserError(
            f"recipe {self.name!r} has no stage {name!r}; its stages: {', '.join(self.stage_names)}"
        )

    def max_length_of(self, stage: StageRecipe) -> int:
        return stage.model_max_length or self.model_max_length

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "model_max_length": self.model_max_length,
            "source": self.source,
            "stages": [stage.to_dict() for stage in self.stages],
        }


FROZEN, FULL = Tune("frozen"), Tune("full")

# Stage 1 of every recipe: the connector alone learns to map image features to captions (LLaVA-558k). The paper's
# pretrain.sh sets no image_aspect_ratio (so `square`, the default) and uses ZeRO-2.
BASE_PRETRAIN = StageRecipe(
    name="pretrain",
    data="pretrain",
    template="pretrain",
    vision=FROZEN,
    connector=FULL,
    llm=FROZEN,
    learning_rate=1e-3,
    global_batch_size=256,
    per_device_batch_size=32,
    deepspeed="zero2",
    image_aspect="square",
)
BASE_FINETUNE = StageRecipe(
    name="finetune",
    data="finetune",
    template="model",
    vision=FROZEN,
    connector=FULL,
    llm=FULL,
    learning_rate=2e-5,
    global_batch_size=128,
    group_by_modality=True,
    deepspeed="zero3",
)  # image_aspect: the model's (`pad` on the paper's cards, finetune.sh; `square` on Factory's, its finetune.sh)
# The paper's share recipe: a second pretraining on ShareGPT4V captions with the vision tower's upper half,
# the connector and the LLM all training.
SHARE_PRETRAIN = StageRecipe(
    name="share-pretrain",
    data="share-pretrain",
    template="pretrain",
    vision=Tune("partial", from_layer=12),
    connector=FULL,
    llm=FULL,
    learning_rate=2e-5,
    global_batch_size=256,
    per_device_batch_size=8,
    deepspeed="zero3",
    image_aspect="square",  # a caption stage as the first; Factory's pretrain_share.sh sets square
)

# TinyLLaVA_Factory's pretrain scripts (pretrain.sh, qwen2/, share/) run ZeRO-3; its image aspect is square throughout.
FACTORY_PRETRAIN = replace(BASE_PRETRAIN, deepspeed="zero3")

RECIPES: dict[str, Recipe] = {
    "base": Recipe(
        "base",
        (BASE_PRETRAIN, BASE_FINETUNE),
        "pretrain: connector only (lr 1e-3, batch 256); finetune: LLM + connector (lr 2e-5, batch 128)",
    ),
    "share": Recipe(
        "share",
        (BASE_PRETRAIN, SHARE_PRETRAIN, BASE_FINETUNE),
        "base pretrain, then ShareGPT4V pretrain with vision layers >= 12 + connector + LLM (lr 2e-5, batch 256), "
        "then finetune LLM + connector",
    ),
    "share-factory": Recipe(
        "share-factory",
        (FACTORY_PRETRAIN, replace(SHARE_PRETRAIN, vision=FROZEN), BASE_FINETUNE),
        "as share, with the vision tower frozen in the ShareGPT4V pretrain (TinyLLaVA_Factory's scripts)",
        source="factory",
    ),
    # TinyLLaVA_Factory scripts/train/lora/finetune_lora.sh: r 128, alpha 256, lr 2e-4, no modality grouping
    "base-lora": Recipe(
        "base-lora",
        (
            FACTORY_PRETRAIN,
            replace(
                BASE_FINETUNE,
                llm=Tune("lora", r=128, alpha=256, dropout=0.05),
                learning_rate=2e-4,
                group_by_modality=False,
                deepspeed="zero2",
            ),
        ),
        "base pretrain, then LoRA finetune of the LLM (r 128, alpha 256, lr 2e-4) + full connector",
        source="factory",
    ),
}

_STAGE_FIELDS = {f.name for f in fields(StageRecipe)} - {"name"}


def get_recipe(name: str, source: str | None = None) -> Recipe:
    """The recipe called `name`, as `source`'s launch scripts run it (`factory`: ZeRO-3 for the caption pretrain,
    as TinyLLaVA_Factory's pretrain.sh); None keeps the recipe's own source."""
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise UserError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None
    if source is None or source == recipe.source:
        return recipe
    if source not in SOURCES:
        raise UserError(f"unknown recipe source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "factory":
        stages = tuple(FACTORY_PRETRAIN if s == BASE_PRETRAIN else s for s in recipe.stages)
    else:
        stages = tuple(BASE_PRETRAIN if s == FACTORY_PRETRAIN else s for s in recipe.stages)
    return replace(recipe, stages=stages, source=source)


def override_stage(stage: StageRecipe, changes: dict[str, Any]) -> StageRecipe:
    """`stage` with `changes` applied (tune settings parsed, numbers checked); unknown keys are a user error."""
    unknown = set(changes) - _STAGE_FIELDS
    if unknown:
        raise UserError(
            f"stage {stage.name!r}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_STAGE_FIELDS))}"
        )
    values = dict(changes)
    for module in MODULES:
        if module in values:
            values[module] = parse_tune(values[module])
    if "module_lr" in values:
        module_lr = values["module_lr"] or {}
        bad = set(module_lr) - set(MODULES)
        if bad:
            raise UserError(
                f"stage {stage.name!r}: module_lr keys must be among {', '.join(MODULES)}, got {bad}"
            )
        values["module_lr"] = {k: float(v) for k, v in module_lr.items()}
    for key in ("learning_rate", "epochs", "warmup_ratio", "weight_decay", "max_grad_norm"):
        if key in values:
            values[key] = _number(stage.name, key, values[key], float)
    for key in ("global_batch_size", "per_device_batch_size", "model_max_length"):
        if key in values and values[key] is not None:
            values[key] = _number(stage.name, key, values[key], int)
    if values.get("warmup_ratio", stage.warmup_ratio) >= 1:
        raise UserError(f"stage {stage.name!r}: warmup_ratio is a fraction of the steps, below 1")
    if values.get("template", stage.template) not in STAGE_TEMPLATES:
        raise UserError(f"stage {stage.name!r}: template must be one of {', '.join(STAGE_TEMPLATES)}")
    if values.get("image_aspect", stage.image_aspect) not in (None, *IMAGE_ASPECTS):
        raise UserError(f"stage {stage.name!r}: image_aspect must be one of {', '.join(IMAGE_ASPECTS)}")
    if values.get("deepspeed", stage.deepspeed) not in DEEPSPEED_STAGES:
        raise UserError(f"stage {stage.name!r}: deepspeed must be one of {', '.join(DEEPSPEED_STAGES)}")
    return replace(stage, **values)


def _number(stage: str, key: str, value: Any, kind: type) -> Any:
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise UserError(f"stage {stage!r}: {key} must be a number, got {value!r}") from None
    if number < 0 or (kind is int and number == 0):
        raise UserError(f"stage {stage!r}: {key} must be positive, got {value!r}")
    return number


def customise_recipe(
    recipe: Recipe,
    stage_changes: dict[str, dict[str, Any]] | None = None,
    model_max_length: int | None = None,
) -> Recipe:
    """`recipe` with per-stage overrides (`{stage name: {field: value}}`) and a new default max length."""
    stage_changes = dict(stage_changes or {})
    unknown = set(stage_changes) - set(recipe.stage_names)
    if unknown:
        raise UserError(
            f"recipe {recipe.name!r} has no stage(s) {', '.join(sorted(unknown))}; "
            f"its stages: {', '.join(recipe.stage_names)}"
        )
    stages = tuple(override_stage(s, stage_changes.get(s.name) or {}) for s in recipe.stages)
    return replace(recipe, stages=stages, model_max_length=model_max_length or recipe.model_max_length)


def default_max_length(card_name: str, recipe_name: str, source: str | None = None) -> int:
    """3072 as the paper; TinyLLaVA_Factory's base scripts use 2048 (its share and LoRA scripts 3072)."""
    factory = card_name.startswith("Factory-") or (source or "").startswith("Factory")
    return 2048 if factory and recipe_name == "base" else 3072
