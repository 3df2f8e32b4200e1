"""Reports on run folders: paper-shaped tables, a leaderboard CSV, plots, the sample viewer and a regression
verdict for CI. The public entry points are `tinyllava_bench.report` and `tinyllava_bench.regress` (docs/api.md)."""

# The model-card keys an ablation view can vary (`report --group-by`); here, not in runs.py, so the CLI builds its
# parser without loading the run-folder readers (pydantic, the task registry).
CARD_AXES = ("vision", "llm", "recipe", "data", "connector")
