"""Reports on run folders: paper-shaped tables, a leaderboard CSV, plots, the sample viewer and a regression
verdict for CI. The public entry points are `tinyllava_bench.report` and `tinyllava_bench.regress` (docs/api.md)."""
