"""What a `train` run will do, resolved from a model-zoo variant or a config YAML plus command-line flags.

Config YAML keys (all optional except what the model needs; a `variant` fills the rest from its card):

    variant: TinyLLaVA-share-Sig-Phi      # start from a model card
    llm: microsoft/phi-2                  # hub id or local folder
    vision: google/siglip-so400m-patch14-384
    connector: mlp2x_gelu
    template: phi
    image_aspect: pad                     # pad | square
    vision_select: full                   # full | patch (default: from image_tokens, else patch)
    image_tokens: 729
    recipe: share                         # base | share | share-factory | base-lora
    model_max_length: 3072
    stage_overrides: {share-pretrain: {vision: partial(12), learning_rate: 2.0e-5}}
    data: {finetune: {json: /data/llava_v1_5_mix665k.json, images: /data}}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from tinyllava_bench.errors import UserError
from tinyllava_bench.train.recipes import Recipe, customise_recipe, default_max_length, get_recipe
from tinyllava_bench.train.validation import check_config, check_model_paths, check_options, check_stage

MODEL_KEYS = (
    "llm",
    "vision",
    "connector",
    "template",
    "image_aspect",
    "vision_select",
    "image_tokens",
    "vision_layer",
    "strip_question",
    "connector_kwargs",
    "name",
    "trust_remote_code",
)
CONFIG_KEYS = (*MODEL_KEYS, "variant", "recipe", "model_max_length", "stage_overrides", "data", "seed")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class ModelSpec:
    """How stage 1 builds its model: LLM + vision tower (hub ids or folders) + a new connector."""

    llm: str
    vision: str
    template: str
    connector: str = "mlp2x_gelu"
    image_aspect: str = "pad"
    vision_select: str | None = None
    image_tokens: int | None = None
    vision_layer: int = -2
    strip_question: bool = True
    connector_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    trust_remote_code: bool = False
    variant: str | None = None
    paper_data: str | None = None  # the card's data (llava-1.5 / sharegpt4v), for the record
    llm_family: str | None = (
        None  # the card's; decides the GPU precision default (bf16 for Qwen2, as Factory)
    )
    recipe_source: str | None = (
        None  # whose launch scripts the recipe follows (paper | factory); None: the recipe's
    )


@dataclass
class RunOptions:
    """Command-line settings of one run (they apply to every stage)."""

    output: Path
    data_root: Path | None = None
    stages: list[str] | None = None  # None: every stage of the recipe
    max_steps: int | None = None
    per_device_batch_size: int | None = None
    grad_accum: int | None = None
    precision: str | None = None  # None: the original's on a GPU (`default_precision`), fp32 on CPU
    gradient_checkpointing: bool | None = None  # None: on with a GPU (as the original scripts), off on CPU
    keep_eos_text: bool = False  # train on turns holding the end-of-answer text (the original masks them)
    deepspeed: str | None = None  # zero2 | zero3 | auto | a JSON file
    seed: int | None = None  # None: the config's seed, else 42
    resume: bool = False
    init_from: str | None = None
    model_max_length: int | None = None
    save_steps: int = 500
    save_total_limit: int = 1
    keep_checkpoints: bool = False
    logging_steps: int = 10
    dataloader_workers: int = 2
    preprocess_workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    report_to: str = "none"
    progress: bool = True


@dataclass
class TrainingPlan:
    model: ModelSpec
    recipe: Recipe
    options: RunOptions
    data: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> {json, images}

    @property
    def seed(self) -> int:
        """The run's seed: `build_plan` resolves an unset one to the config's, else 42."""
        if self.options.seed is None:
            raise ValueError("the plan's seed is unset: make plans with build_plan")
        return self.options.seed

    @property
    def stages(self) -> list[str]:
        return list(self.options.stages or self.recipe.stage_names)

    def data_paths(self, stage: str, data_key: str) -> tuple[Path, Path]:
        """(conversation file, image folder) of `stage`: the config's `data:` entry, else the data-root layout."""
        given = self.data.get(stage, {})
        json_given, images_given = given.get("json"), given.get("images")
        if json_given and images_given:
            json_path, images = Path(json_given), Path(images_given)
        else:
            root = self.options.data_root
            if root is None:
                raise UserError(f"stage {stage!r} has no data: pass --data-root DIR (see docs/training.md)")
            json_path = Path(json_given) if json_given else _data_file(root, data_key)
            images = Path(images_given) if images_given else root / "images"
        return json_path.expanduser().absolute(), images.expanduser().absolute()

    def to_dict(self) -> dict[str, Any]:
        options = asdict(self.options)
        options = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
        return {
            "model": asdict(self.model),
            "recipe": self.recipe.to_dict(),
            "options": options,
            "data": self.data,
        }


def _data_file(root: Path, key: str) -> Path:
    for suffix in (".json", ".jsonl"):
        if (root / f"{key}{suffix}").is_file():
            return root / f"{key}{suffix}"
    return root / f"{key}.json"


def read_config(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a training config is a mapping of settings")
    unknown = set(data) - set(CONFIG_KEYS)
    if unknown:
        raise UserError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(CONFIG_KEYS)}"
        )
    check_config(data, path)
    base = path.parent
    # local model folders in a config are relative to the config file
    for key in ("llm", "vision"):
        if isinstance(data.get(key), str) and data[key].startswith("."):
            data[key] = str((base / data[key]).resolve())
    for entry in (data.get("data") or {}).values():
        for key in ("json", "images"):
            if isinstance(entry, dict) and isinstance(entry.get(key), str) and not os.path.isabs(entry[key]):
                entry[key] = str((base / entry[key]).resolve())
    return data


def spec_from_card(name: str) -> tuple[ModelSpec, str, int]:
    """(model spec, recipe name, default model_max_length) from the model card called `name`."""
    from tinyllava_bench.models.zoo import find_card, list_cards

    card = find_card(name)
    if card is None:
        names = ", ".join(c.name for c in list_cards() if c.recipe)
        raise UserError(f"unknown variant {name!r}; `tinyllava-bench zoo` lists them: {names}")
    if not card.recipe:
        raise UserError(f"{card.name}: its card names no training recipe; train it with --config")
    factory = card.name.startswith("Factory-") or (card.source or "").startswith("Factory")
    spec = ModelSpec(
        llm=card.llm,
        vision=card.vision,
        template=card.template,
        connector=card.connector,
        image_aspect=card.image_aspect,
        image_tokens=card.image_tokens,
        strip_question=factory,
        name=card.name,
        trust_remote_code=False,  # never on by itself: the user says so in --config (see _check_remote_code)
        variant=card.name,
        paper_data=card.data,
        llm_family=card.llm_family,
        recipe_source="factory" if factory else "paper",
    )
    return spec, card.recipe, default_max_length(card.name, card.recipe, card.source)


def build_plan(variant: str | None, config_path: Path | None, options: RunOptions) -> TrainingPlan:
    """Resolve the model, the recipe (with overrides) and the stages to run."""
    config = read_config(config_path) if config_path else {}
    variant = variant or config.get("variant")
    if variant:
        spec, recipe_name, max_length = spec_from_card(variant)
    else:
        missing = [k for k in ("llm", "vision", "template") if not config.get(k)]
        if missing and not options.init_from:
            raise UserError(
                f"say which model to train: --variant NAME, or a --config with {', '.join(missing)} "
                "(see docs/training.md)"
            )
        spec = ModelSpec(
            llm=config.get("llm", ""), vision=config.get("vision", ""), template=config.get("template", "")
        )
        recipe_name, max_length = "base", 3072
    spec = replace(spec, **{k: config[k] for k in MODEL_KEYS if k in config})
    _check_remote_code(spec, config_path)
    recipe_name = config.get("recipe") or recipe_name
    max_length = options.model_max_length or config.get("model_max_length") or max_length
    recipe = get_recipe(recipe_name, spec.recipe_source)
    recipe = customise_recipe(recipe, config.get("stage_overrides"), int(max_length))
    if options.model_max_length:
        # the command line wins over per-stage settings too
        stages = tuple(replace(s, model_max_length=options.model_max_length) for s in recipe.stages)
        recipe = replace(recipe, stages=stages)
    if options.seed is None:
        options = replace(options, seed=int(config.get("seed", 42)))
    # training.json records where things were: absolute paths mean the same from any working directory
    options = replace(
        options,
        output=Path(options.output).expanduser().absolute(),
        data_root=Path(options.data_root).expanduser().absolute() if options.data_root else None,
        init_from=_local_absolute(options.init_from),
    )
    spec = replace(spec, llm=_local_absolute(spec.llm) or "", vision=_local_absolute(spec.vision) or "")
    check_model_paths(spec.llm, spec.vision)
    gpu = torch.cuda.is_available()
    if options.precision is None:
        options = replace(options, precision=default_precision(spec) if gpu else "fp32")
    if options.gradient_checkpointing is None:
        options = replace(options, gradient_checkpointing=gpu)
    plan = TrainingPlan(spec, recipe, options, data=dict(config.get("data") or {}))
    _check_options(plan)
    return plan


def _check_remote_code(spec: ModelSpec, config_path: Path | None) -> None:
    """trust_remote_code runs code from the LLM's repository: only a real `true` the user wrote turns it on."""
    from tinyllava_bench.models.llm import REMOTE_CODE_FAMILIES

    where = str(config_path) if config_path else "a --config file"
    if not isinstance(spec.trust_remote_code, bool):
        raise UserError(
            f"{where}: trust_remote_code must be the boolean true or false, not {spec.trust_remote_code!r}"
        )
    if spec.llm_family in REMOTE_CODE_FAMILIES and not spec.trust_remote_code:
        raise UserError(
            f"the {spec.llm_family} LLM's code is not in transformers: it runs code from its hub repository. "
            f"Only if you trust that repository, put `trust_remote_code: true` in {where}"
        )


def _local_absolute(name: str | None) -> str | None:
    """A local folder's absolute path; a hub id (or nothing) as given."""
    if name and Path(name).expanduser().exists():
        return str(Path(name).expanduser().absolute())
    return name


def default_precision(spec: ModelSpec) -> str:
    """The original scripts' precision on a GPU: fp16, bf16 for Qwen2 LLMs (Factory's qwen2/ scripts)."""
    family = spec.llm_family
    if family is None:
        config = Path(spec.llm).expanduser() / "config.json"
        try:
            family = json.loads(config.read_text()).get("model_type") if config.is_file() else None
        except ValueError:
            family = None
    family = family or Path(spec.llm).name
    return "bf16" if str(family).lower().startswith("qwen2") else "fp16"


def _check_options(plan: TrainingPlan) -> None:
    options = plan.options
    check_options(options)
    for stage in plan.recipe.stages:
        check_stage(stage)
    if options.stages is not None:
        unknown = [s for s in options.stages if s not in plan.recipe.stage_names]
        if unknown or not options.stages:
            raise UserError(
                f"recipe {plan.recipe.name!r} has stages {', '.join(plan.recipe.stage_names)}; "
                f"--stages got {', '.join(options.stages) or 'nothing'}"
            )
        order = [plan.recipe.stage_names.index(s) for s in options.stages]
        if order != sorted(set(order)):
            raise UserError(
                f"--stages must list stages once each, in recipe order: {', '.join(plan.recipe.stage_names)}"
            )
    if options.precision not in PRECISIONS:
        raise UserError(f"unknown precision {options.precision!r}; use one of {', '.join(PRECISIONS)}")
    for name in ("max_steps", "per_device_batch_size", "grad_accum", "save_steps", "logging_steps"):
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    unknown_data = set(plan.data) - set(plan.recipe.stage_names)
    if unknown_data:
        raise UserError(
            f"config data: no stage(s) {', '.join(sorted(unknown_data))} in recipe {plan.recipe.name!r}"
        )
