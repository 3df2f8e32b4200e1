"""This project's own layout (`model_type: tinyllava_bench`): what `train` writes and the fixtures start from.

config.json holds the full text and vision configs, the settings and the preprocessor; tensors keep our names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllava_bench.models.assemble import (
    CheckpointParts,
    export_state,
)
from tinyllava_bench.models.checkpoint_files import read_state_dict, write_state_dict
from tinyllava_bench.models.layouts.parts import (
    connector_kwargs,
    load_tokenizer,
    merge_settings,
    read_config,
    vision_config_from_dict,
    vision_dict,
    write_json,
)
from tinyllava_bench.models.llm import text_config_from_dict
from tinyllava_bench.models.preprocess import ImagePreprocessor
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava

NATIVE_MODEL_TYPE = "tinyllava_bench"


NATIVE_FORMAT_VERSION = 1


def read_native(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    config = read_config(folder)
    trust = bool(overrides.get("trust_remote_code"))
    text_config = text_config_from_dict(config["text_config"], trust_remote_code=trust, source=source)
    settings = merge_settings(config["settings"], overrides)
    _note_training(settings, config.get("training"))
    preprocessor = ImagePreprocessor.from_dict({**config["preprocessor"], "aspect": settings.image_aspect})
    return CheckpointParts(
        layout="native",
        source=source,
        name=config.get("name") or folder.name,
        text_config=text_config,
        vision_config=vision_config_from_dict(config["vision_config"]),
        settings=settings,
        state=read_state_dict(folder),
        tokenizer=load_tokenizer(folder, None, resolve, source, trust_remote_code=trust),
        preprocessor=preprocessor,
        connector_kwargs=config.get("connector_kwargs", {}),
    )


def _note_training(settings: ModelSettings, training: Any) -> None:
    """A checkpoint our trainer wrote knows its recipe and the card it reproduces: reports group by them."""
    if not isinstance(training, dict):
        return
    for key, source in (("recipe", "recipe"), ("paper_variant", "variant"), ("data", "paper_data")):
        if training.get(source) is not None:
            settings.extra[key] = training[source]


def save_native(model: TinyLlava, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """This project's own layout: full configs, settings and preprocessor in config.json; our tensor names."""
    folder = Path(folder)
    settings = model.settings.to_dict()
    settings["layout"] = "native"
    config = {
        "model_type": NATIVE_MODEL_TYPE,
        "format_version": NATIVE_FORMAT_VERSION,
        "name": model.name or folder.name,
        "text_config": model.language_model.config.to_dict(),
        "vision_config": vision_dict(model),
        "settings": settings,
        "preprocessor": model.preprocessor.to_dict(),
        "connector_kwargs": connector_kwargs(model),
        **(extra or {}),
    }
    write_json(folder / "config.json", config)
    write_state_dict(export_state(model), folder)
    model.tokenizer.save_pretrained(str(folder))
    return folder
