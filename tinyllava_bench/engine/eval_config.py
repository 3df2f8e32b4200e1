"""What one `eval` run is asked to do (the CLI's flags, the API's arguments), as results.json's `config` records it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.judge.redaction import redact_url


@dataclass
class EvalConfig:
    model: str
    tasks: list[str]
    output: Path
    limit: int | None = None
    batch_size: int | str = "auto"
    protocol: str = "official"
    device: str = "cpu"
    dtype: str | None = None
    num_workers: int = 2
    judge_model: str | None = None
    judge_temperature: float | None = None
    judge_max_tokens: int | None = None
    judge_retries: int | None = None
    judge_base_url: str | None = None
    judge_cache: Path | None = None
    data_root: Path | None = None
    seed: int = 0
    model_args: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    max_error_rate: float = 0.0  # the share of errored or unjudged samples a run may have and still exit 0
    # each image's prompt prefix prefilled once for all its questions (the same answers as without)
    prefix_sharing: bool = True
    show_progress: bool = True

    def public(self) -> dict[str, Any]:
        """The settings as results.json records them; credentials inside a judge URL are masked."""
        public = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        public["judge_base_url"] = redact_url(self.judge_base_url)
        return public
