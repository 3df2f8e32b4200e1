"""The README's prefix-sharing figures are the committed benchmark results' (benchmarks/prefix_sharing.py writes
them), and its description of the demo is the demo's settings: a rerun that changes the JSON without the README, a
settings change without the README, or a hand edit of the README, fails here."""

from __future__ import annotations

import json

import pytest

from tinyllava_bench.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"


def _wall_ratio(path: str, shape: str, slower: str) -> float:
    results = json.loads((RESULTS / path).read_text())["results"]
    wall = {(r["model"], r["shape"], r["runner"]): r["wall_s"] for r in results}
    return wall[("mid", shape, slower)] / wall[("mid", shape, "shared")]


def test_readme_prefix_sharing_figures_are_the_benchmarks():
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    sharing = {
        shape: _wall_ratio("prefix_sharing.json", shape, "unshared")
        for shape in ("gqa30", "pope18", "single")
    }
    lmms = {
        shape: _wall_ratio("prefix_sharing_llava_hf.json", shape, "llava_hf") for shape in ("gqa30", "pope18")
    }
    assert (
        f"**{sharing['gqa30']:.2f}×** faster than `--no-prefix-sharing` at 30 questions per image" in readme
    )
    assert f"{sharing['pope18']:.1f}× at 18 (POPE-shaped), {sharing['single']:.2f}× at one" in readme
    assert f"**{lmms['gqa30']:.2f}×** (30 per image) and {lmms['pope18']:.2f}× (18 per image)" in readme


def test_readme_demo_description_matches_its_settings():
    from tinyllava_bench.demo.settings import DemoSettings

    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    settings = DemoSettings()
    assert f"in their hub column names, {settings.n_eval:,} questions each;" in readme
    assert f"(the demo's two runs above: {settings.n_eval * len(settings.tasks):,} samples each," in readme


def test_the_readme_demo_picture_shows_the_numbers_of_the_readme_block():
    """docs/images/demo_benchmarks.png is the seed-0 demo run's chart (`python -m tinyllava_bench.demo.readme` copies
    it with the block): the values it was drawn from are the seeds file's seed-0 scores."""
    from tinyllava_bench.demo.readme import DEFAULT_SEEDS, PLOT, _labels
    from tinyllava_bench.report.plots import read_plotted_values

    seeds = json.loads((REPO_ROOT / DEFAULT_SEEDS).read_text())
    drawn = read_plotted_values(REPO_ROOT / PLOT)
    labels = _labels()
    first = seeds["runs"][0]
    assert first["seed"] == 0 and set(drawn) == set(first["scores"])
    for model, scores in first["scores"].items():
        assert drawn[model] == pytest.approx({labels[task]: value for task, value in scores.items()})
