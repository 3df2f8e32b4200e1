"""Thumbnails for `view`: each sample's image read from the task data the run read, shrunk to a small JPEG and stored
once per distinct picture (POPE asks many questions of one image).

Samples records carry no image, so thumbnails come from the task's data, found the way the run found it (its
`--data-root`, else the data path results.json recorded, else the hub), and only when that data's fingerprint is
the one the run recorded: a thumbnail of another dataset's row would be worse than none. When the data cannot be
found the page says so and shows no thumbnails.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: the CLI imports this module at start-up for its default size
    from tinyllava_bench.report.runs import Run

DEFAULT_THUMBNAIL_PX = 96
THUMBNAIL_QUALITY = 70


@dataclass
class Thumbnails:
    """Thumbnails shared by all samples (POPE asks many questions of one image: each JPEG is stored once)."""

    size: int
    images: list[str] = field(default_factory=list)
    _by_hash: dict[str, int] = field(default_factory=dict)

    def add(self, image: Any) -> int:
        """Store a thumbnail of a PIL image; returns its index in `images`."""
        image = image.copy()
        image.thumbnail((self.size, self.size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
        data = buffer.getvalue()
        digest = hashlib.sha1(data).hexdigest()
        if digest not in self._by_hash:
            self._by_hash[digest] = len(self.images)
            self.images.append("data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"))
        return self._by_hash[digest]


def task_images(
    run: Run, task: str, data_root: Path | None
) -> tuple[Callable[[int], Any] | None, str | None]:
    """How to read row i's image of `task` the way the run did, or None and the reason there is none."""
    from tinyllava_bench.tasks import apply_overrides, load_task, load_task_data

    recorded = run.tasks[task].dataset
    config = run.config
    protocol = str(config.get("protocol") or run.tasks[task].protocol or "official")
    # where to read it from: one of a data file (`data`) or a data folder (`root`), else the hub
    data: str | None = None
    root: str | Path | None = None
    if data_root is not None:
        where, root = f"--data-root {data_root}", data_root
    elif config.get("data_root"):
        where, root = f"the run's --data-root {config['data_root']}", config["data_root"]
    elif recorded.get("local_path"):
        where, data = f"the run's data {recorded['local_path']}", recorded["local_path"]
    else:
        where = f"the hub dataset {recorded.get('id') or task}"
    try:
        task_config = load_task(task)
        options = config.get("task_options")
        if isinstance(options, Mapping) and options:
            task_config = apply_overrides(task_config, options)
        task_data = load_task_data(task_config, data=data, data_root=root, protocol=protocol)
        fingerprint = task_data.fingerprint()
    except Exception as exc:  # a missing folder, no network, a moved file: the page is still worth having
        reason = " ".join(str(exc).split())
        return None, f"{task}: no thumbnails: could not read {where} ({reason}); pass --data-root DIR"
    if recorded.get("fingerprint") and fingerprint != recorded["fingerprint"]:
        return None, (
            f"{task}: no thumbnails: {where} is not the data this run read (its fingerprint differs from the "
            f"one in results.json); pass --data-root DIR with the run's data"
        )
    return task_data.image, None


def add_thumbnails(
    task: str,
    entries: list[dict[str, Any]],
    image_of: Callable[[int], Any],
    thumbs: Thumbnails,
    notes: list[str],
    progress: bool,
) -> int:
    from tqdm import tqdm

    failed, done = 0, 0
    # one bar per task; tqdm turns itself off when stderr is not a terminal
    for entry in tqdm(entries, desc=f"{task} thumbnails", disable=None if progress else True, leave=False):
        index = entry["i"]
        if not isinstance(index, int):
            failed += 1
            continue
        try:
            entry["th"] = thumbs.add(image_of(index))
            done += 1
        except Exception:  # one unreadable image costs one thumbnail (the run recorded its error, if any)
            failed += 1
    if failed:
        notes.append(f"{task}: {failed} sample(s) have no thumbnail (their image could not be read)")
    return done
