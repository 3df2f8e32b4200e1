"""Tests for `regress`: the exact McNemar test, the seeded bootstrap, sample pairing, tolerances and exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.report.paired_stats import (
    mcnemar_exact_p,
    pair_samples,
    paired_bootstrap_ci,
    paired_test,
)
from tinyllava_bench.report.regress import parse_tolerances


def write_run(
    folder: Path,
    task_scores: dict[str, list[float | None]],
    *,
    name: str = "model",
    extra_metrics: dict[str, dict[str, float]] | None = None,
    key_salt: str = "",
    drop_indices: dict[str, set[int]] | None = None,
    write_samples: bool = True,
    entry: dict[str, dict] | None = None,
) -> Path:
    """A run whose headline metric is the mean of its per-sample scores x 100, and whose samples file holds
    one line per score (question_id q<i>, index i); `entry` overrides keys of a task's results.json entry."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for task, scores in task_scores.items():
        kept = [(i, s) for i, s in enumerate(scores) if i not in (drop_indices or {}).get(task, set())]
        scored = [s for _, s in kept if s is not None]
        accuracy = 100.0 * sum(scored) / len(scored) if scored else 0.0
        metrics = {"accuracy": accuracy, **(extra_metrics or {}).get(task, {})}
        tasks[task] = {
            "metrics": metrics,
            "headline": "accuracy",
            "n_samples": len(kept),
            "n_errors": len(kept) - len(scored),
            "protocol": "official",
            "judge_model": None,
            "dataset": {"id": f"lmms-lab/{task}", "revision": "r1", "fingerprint": f"hub:lmms-lab/{task}@r1"},
            "limit": 200,
            **(entry or {}).get(task, {}),
        }
        if write_samples:
            lines = [
                json.dumps(
                    {
                        "schema_version": 1,
                        # The key hashes the model fingerprint, so it differs between checkpoints.
                        "key": f"{key_salt}{task}-{i}",
                        "index": i,
                        "question_id": f"q{i}",
                        "prediction": "x",
                        "score": score,
                        "error": None if score is not None else "boom",
                    }
                )
                for i, score in kept
            ]
            (folder / f"samples_{task}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {
        "schema_version": 1,
        "model": {"name": name, "source": name, "layout": "legacy", "card": {}},
        "tasks": tasks,
        "config": {},
        "provenance": {"tool_version": "0.1.0"},
    }
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def flipped(base: list[float], lost: int, gained: int) -> list[float]:
    """`base` with the first `lost` ones turned to 0 and the first `gained` zeros turned to 1."""
    current = list(base)
    ones = [i for i, s in enumerate(base) if s == 1.0][:lost]
    zeros = [i for i, s in enumerate(base) if s == 0.0][:gained]
    for i in ones:
        current[i] = 0.0
    for i in zeros:
        current[i] = 1.0
    return current


BASE = [1.0] * 150 + [0.0] * 50  # 200 samples, 75% accuracy


def regress(tmp_path: Path, current_scores: list[float], *extra: str, capsys=None) -> tuple[int, str]:
    baseline = write_run(tmp_path / "baseline", {"gqa": BASE}, key_salt="fpA-")
    current = write_run(tmp_path / "current", {"gqa": current_scores}, key_salt="fpB-")
    code = main(["regress", "--baseline", str(baseline), "--current", str(current), *extra])
    return code, capsys.readouterr().out if capsys else ""


def test_mcnemar_exact_small_counts_by_hand():
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact_p(5, 5) == 1.0
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(3, 4) == mcnemar_exact_p(4, 3)


def test_mcnemar_exact_large_counts_agree_with_the_chi_square_approximation():
    lost, gained = 600, 500
    statistic = (abs(lost - gained) - 1) ** 2 / (lost + gained)
    chi_square_p = math.erfc(math.sqrt(statistic / 2))
    assert mcnemar_exact_p(lost, gained) == pytest.approx(chi_square_p, rel=0.1)
    assert 0 < mcnemar_exact_p(60_000, 58_000) < 1e-4


def test_bootstrap_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(1)
    differences = rng.normal(-0.1, 0.3, size=300)
    first = paired_bootstrap_ci(differences)
    assert first == paired_bootstrap_ci(differences)
    low, high = first
    assert low < differences.mean() < high
    assert high < 0  # a -0.1 shift over 300 pairs with sd 0.3 is clearly below zero
    low, high = paired_bootstrap_ci(rng.normal(0.0, 0.3, size=300))
    assert low < 0 < high


def test_pairing_uses_question_id_and_index_not_the_key():
    base = [
        {"key": "A0", "question_id": "q0", "index": 0, "score": 1.0},
        {"key": "A1", "question_id": "q1", "index": 1, "score": 0.0},
    ]
    curr = [
        {"key": "B0", "question_id": "q0", "index": 0, "score": 0.0},
        {"key": "B2", "question_id": "q2", "index": 2, "score": 1.0},
    ]
    pairing = pair_samples(base, curr)
    assert pairing.baseline.tolist() == [1.0] and pairing.current.tolist() == [0.0]
    assert (pairing.only_baseline, pairing.only_current) == (1, 1)
    test = paired_test(pairing)
    assert test.method == "mcnemar-exact" and (test.lost, test.gained) == (1, 0)


def test_a_real_drop_fails(tmp_path, capsys):
    code, out = regress(tmp_path, flipped(BASE, lost=60, gained=5), capsys=capsys)
    assert code == 1
    assert "| ❌ | gqa | **accuracy** (headline) | 75.00 | 47.50 | -27.50 |" in out
    assert "60 lost / 5 gained" in out
    assert out.rstrip().splitlines()[-1].startswith("**Verdict: ❌ FAIL")


def test_noise_passes(tmp_path, capsys):
    code, out = regress(tmp_path, flipped(BASE, lost=6, gained=4), capsys=capsys)
    assert code == 0
    assert "| ✅ | gqa |" in out
    assert "**Verdict: ✅ PASS" in out


def test_an_improvement_passes(tmp_path, capsys):
    code, out = regress(tmp_path, flipped(BASE, lost=5, gained=40), capsys=capsys)
    assert code == 0
    assert "+17.50" in out


@pytest.mark.parametrize("tolerance", ["gqa.accuracy=30", "accuracy=30"])
def test_a_drop_within_tolerance_passes(tmp_path, capsys, tolerance):
    code, out = regress(tmp_path, flipped(BASE, lost=60, gained=5), "--tolerance", tolerance, capsys=capsys)
    assert code == 0
    assert "significant drop, within tolerance" in out


def test_task_tolerance_beats_the_metric_wide_one(tmp_path, capsys):
    code, _ = regress(
        tmp_path,
        flipped(BASE, lost=60, gained=5),
        "--tolerance",
        "accuracy=30",
        "gqa.accuracy=1",
        capsys=capsys,
    )
    assert code == 1


def test_non_binary_scores_use_the_bootstrap(tmp_path, capsys):
    rng = np.random.default_rng(0)
    base = rng.choice([0.0, 0.3, 0.6, 1.0], size=200).tolist()
    worse = [max(0.0, s - 0.3) for s in base]
    baseline = write_run(tmp_path / "b", {"textvqa": base})
    current = write_run(tmp_path / "c", {"textvqa": worse})
    assert main(["regress", "--baseline", str(baseline), "--current", str(current)]) == 1
    out = capsys.readouterr().out
    assert "paired bootstrap, 200 pairs" in out and "95% CI" in out

    same = write_run(tmp_path / "s", {"textvqa": base})
    assert main(["regress", "--baseline", str(baseline), "--current", str(same)]) == 0


def test_unpaired_and_unscored_samples_are_reported_and_left_out(tmp_path, capsys):
    current_scores = flipped(BASE, lost=6, gained=4)
    current_scores[199] = None  # an error in the current run
    baseline_scores = list(BASE)
    baseline_scores[198] = None
    baseline = write_run(tmp_path / "b", {"gqa": baseline_scores})
    # sample 198: unscored in the baseline without an error (a question the task does not score, as GQA's
    # unbalanced ones)
    samples = baseline / "samples_gqa.jsonl"
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    lines[198]["error"] = None
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    current = write_run(tmp_path / "c", {"gqa": current_scores}, drop_indices={"gqa": set(range(10))})
    # missing and errored samples in the current run make it fail (below); the note still says what was left out
    assert main(["regress", "--baseline", str(baseline), "--current", str(current)]) == 1
    out = capsys.readouterr().out
    assert (
        "gqa: samples left out of the paired test: 10 only in the baseline, 1 with an error in a run, "
        "1 the task does not score (as GQA's unbalanced questions)." in out
    )
    assert "188 pairs" in out


def test_other_metrics_are_reported_without_a_test(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE}, extra_metrics={"gqa": {"balanced": 70.0}})
    current = write_run(tmp_path / "c", {"gqa": BASE}, extra_metrics={"gqa": {"balanced": 65.0}})
    assert main(["regress", "--baseline", str(baseline), "--current", str(current)]) == 0
    out = capsys.readouterr().out
    assert "|  | gqa | balanced | 70.00 | 65.00 | -5.00 |  | not tested (not the headline) |" in out


def test_summary_goes_to_out_and_tasks_in_one_run_are_listed(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE, "pope": BASE})
    current = write_run(tmp_path / "c", {"gqa": flipped(BASE, 60, 5), "mme": BASE})
    summary = tmp_path / "out" / "summary.md"
    code = main(["regress", "--baseline", str(baseline), "--current", str(current), "--out", str(summary)])
    assert code == 1
    text = summary.read_text()
    assert text == capsys.readouterr().out
    assert "Only in the baseline, not compared: pope." in text
    assert "Only in the current run, not compared: mme." in text
    assert "**Verdict: ❌ FAIL" in text and "gqa.accuracy (-27.50)" in text


def test_missing_samples_file_cannot_be_vouched_for(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": flipped(BASE, 60, 5)}, write_samples=False)
    assert main(["regress", "--baseline", str(baseline), "--current", str(current)]) == 1
    out = capsys.readouterr().out
    assert "| ❌ | gqa |" in out
    assert (
        f"- ❌ gqa: no per-sample file {current / 'samples_gqa.jsonl'}, so the drop cannot be tested" in out
    )
    assert "**Verdict: ❌ FAIL" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tolerance", "accuracy"], "METRIC=POINTS"),
        (["--tolerance", "accuracy=-1"], ">= 0"),
        (["--tolerance", "accuracy=lots"], "not a number"),
        (["--alpha", "1.5"], "between 0 and 1"),
    ],
)
def test_user_errors_exit_2(tmp_path, capsys, argv, message):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    assert main(["regress", "--baseline", str(baseline), "--current", str(baseline), *argv]) == 2
    assert message in capsys.readouterr().err


def test_runs_without_a_common_task_exit_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"pope": BASE})
    assert main(["regress", "--baseline", str(baseline), "--current", str(current)]) == 2
    assert "share no task" in capsys.readouterr().err
    assert main(["regress", "--baseline", str(tmp_path / "nowhere"), "--current", str(current)]) == 2


def test_parse_tolerances():
    assert parse_tolerances(["gqa.accuracy=0.5", "f1=1", "mme.perception=20"]) == {
        "gqa.accuracy": 0.5,
        "f1": 1.0,
        "mme.perception": 20.0,
    }
    with pytest.raises(UserError):
        parse_tolerances(["=1"])


# --- `regress` never passes what it cannot vouch for (issue 16 item 1) ---


def run_regress(baseline: Path, current: Path, *extra: str) -> int:
    return main(["regress", "--baseline", str(baseline), "--current", str(current), *extra])


def reasons(out: str) -> list[str]:
    """The summary's cannot-vouch lines, one per reason."""
    return [line for line in out.splitlines() if line.startswith("- ❌ ")]


def test_current_run_missing_samples_the_baseline_scored_fails(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": BASE}, drop_indices={"gqa": set(range(10))})
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert reasons(out) == [
        "- ❌ gqa: 10 sample(s) the baseline scored are missing from the current run (first: q0, q1, q2)."
    ]
    assert out.rstrip().splitlines()[-1].startswith("**Verdict: ❌ FAIL: cannot vouch for gqa")


def test_fewer_samples_without_samples_files_fails(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": BASE[:150]})
    (baseline / "samples_gqa.jsonl").unlink()
    (current / "samples_gqa.jsonl").unlink()
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert "- ❌ gqa: the current run covers 150 sample(s), the baseline 200." in reasons(out)


def test_an_errored_sample_fails(tmp_path, capsys):
    scores = list(BASE)
    scores[7] = None  # the sample's line carries error "boom"
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": scores})
    assert run_regress(baseline, current) == 1
    assert reasons(capsys.readouterr().out) == [
        "- ❌ gqa: 1 sample(s) errored in the current run (first: q7: boom)."
    ]


def test_a_run_whose_samples_all_errored_fails(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": [None] * len(BASE)})
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert "- ❌ gqa: 200 sample(s) errored in the current run (first: q0: boom)." in reasons(out)
    assert "✅" not in out


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"n_errors": 2}, "- ❌ gqa: results.json counts 2 errored sample(s) (n_errors) in the current run."),
        (
            {"n_judge_failures": 3},
            "- ❌ gqa: results.json counts 3 failed judge review(s) (n_judge_failures) in the current run.",
        ),
    ],
)
def test_error_counts_in_results_json_fail(tmp_path, capsys, entry, reason):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": entry})
    assert run_regress(baseline, current) == 1
    assert reasons(capsys.readouterr().out) == [reason]


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        ({"accuracy": math.nan}, "- ❌ gqa: the current run's accuracy is not a number (NaN)."),
        ({"accuracy": math.inf}, "- ❌ gqa: the current run's accuracy is not a number (Infinity)."),
        ({"accuracy": "75.0"}, "- ❌ gqa: the current run's accuracy is not a number ('75.0')."),
        ({"accuracy": None}, "- ❌ gqa: the current run's accuracy is not a number (null)."),
        ({}, "- ❌ gqa: the current run has no accuracy metric."),
    ],
)
def test_a_headline_that_is_missing_or_not_a_number_fails(tmp_path, capsys, metrics, reason):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": {"metrics": metrics}})
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert reason in reasons(out)
    assert "nan" not in out.lower().replace("(nan)", "")  # never shown as if it were a value


def test_a_nan_baseline_headline_fails(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE}, entry={"gqa": {"metrics": {"accuracy": math.nan}}})
    current = write_run(tmp_path / "c", {"gqa": BASE})
    assert run_regress(baseline, current) == 1
    assert "- ❌ gqa: the baseline's accuracy is not a number (NaN)." in reasons(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("current_metrics", "reason"),
    [
        ({"accuracy": 75.0}, "- ❌ gqa: the current run has no balanced metric."),
        (
            {"accuracy": 75.0, "balanced": "n/a"},
            "- ❌ gqa: the current run's balanced is not a number ('n/a').",
        ),
    ],
)
def test_any_other_metric_missing_or_not_a_number_fails(tmp_path, capsys, current_metrics, reason):
    baseline = write_run(tmp_path / "b", {"gqa": BASE}, extra_metrics={"gqa": {"balanced": 70.0}})
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": {"metrics": current_metrics}})
    assert run_regress(baseline, current) == 1
    assert reasons(capsys.readouterr().out) == [reason]


def test_different_data_is_refused_unless_allowed(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    other_data = {"id": "lmms-lab/gqa", "revision": "r1", "fingerprint": "sha256:0123456789abcdef"}
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": {"dataset": other_data}})
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert (
        "- ❌ gqa: dataset fingerprint differs (baseline hub:lmms-lab/gqa@r1, current sha256:0123456789abcdef)."
        in out
    )
    assert "| gqa | **accuracy**" not in out  # nothing compared
    assert out.rstrip().splitlines()[-1].startswith("**Verdict: ❌ REFUSED")
    assert "--allow-data-change" in out

    assert run_regress(baseline, current, "--allow-data-change") == 0
    out = capsys.readouterr().out
    assert "| ✅ | gqa | **accuracy** (headline)" in out
    verdict = out.rstrip().splitlines()[-1]
    assert verdict.startswith("**Verdict: ✅ PASS") and "--allow-data-change" in verdict
    assert "dataset fingerprint differs" in verdict


def test_unrecorded_data_cannot_be_vouched_for(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE}, entry={"gqa": {"dataset": {}}})
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": {"dataset": {}}})
    assert run_regress(baseline, current) == 1
    assert reasons(capsys.readouterr().out) == [
        "- ❌ gqa: neither run records its dataset fingerprint, so the data cannot be checked; re-run `eval` "
        "(it records it) or pass --allow-data-change."
    ]
    assert run_regress(baseline, current, "--allow-data-change") == 0


def test_across_protocols_regress_refuses_instead_of_reporting_a_regression(tmp_path, capsys):
    baseline = write_run(tmp_path / "b", {"gqa": BASE})
    current = write_run(
        tmp_path / "c", {"gqa": flipped(BASE, 60, 5)}, entry={"gqa": {"protocol": "lmms-eval"}}
    )
    assert run_regress(baseline, current) == 1
    out = capsys.readouterr().out
    assert "- ❌ gqa: protocol differs (baseline official, current lmms-eval)." in out
    assert "dropped significantly" not in out
    assert out.rstrip().splitlines()[-1].startswith("**Verdict: ❌ REFUSED")
    # the same scores under another protocol are refused too (they used to pass)
    same = write_run(tmp_path / "s", {"gqa": BASE}, entry={"gqa": {"protocol": "lmms-eval"}})
    assert run_regress(baseline, same) == 1


@pytest.mark.parametrize(
    ("key", "before", "after"),
    [("judge_model", "gpt-4-0613", "gpt-4o"), ("scorer", "gqa", "gqa_lenient")],
)
def test_a_different_scorer_is_refused(tmp_path, capsys, key, before, after):
    baseline = write_run(tmp_path / "b", {"gqa": BASE}, entry={"gqa": {key: before}})
    current = write_run(tmp_path / "c", {"gqa": BASE}, entry={"gqa": {key: after}})
    assert run_regress(baseline, current) == 1
    label = "judge model" if key == "judge_model" else "scorer"
    assert f"- ❌ gqa: {label} differs (baseline {before}, current {after})." in capsys.readouterr().out


def test_task_tolerance_applies_to_the_headline(tmp_path, capsys):
    code, out = regress(tmp_path, flipped(BASE, lost=60, gained=5), "--tolerance", "gqa=30", capsys=capsys)
    assert code == 0
    assert "significant drop, within tolerance" in out
    # the more specific TASK.METRIC wins over TASK, which wins over METRIC
    code, _ = regress(
        tmp_path, flipped(BASE, 60, 5), "--tolerance", "gqa=30", "gqa.accuracy=1", capsys=capsys
    )
    assert code == 1
    code, _ = regress(tmp_path, flipped(BASE, 60, 5), "--tolerance", "accuracy=30", "gqa=1", capsys=capsys)
    assert code == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch=1", "'nosuch' is no task or metric of the two runs"),
        ("pope=1", "'pope' is no task or metric of the two runs"),
        ("gqa.nosuch=1", "task gqa has no metric 'nosuch'"),
        ("gqa=fast", "'fast' is not a number"),
        ("gqa=nan", "finite number"),
    ],
)
def test_a_tolerance_that_matches_nothing_is_a_usage_error(tmp_path, capsys, spec, message):
    code, _ = regress(tmp_path, flipped(BASE, 60, 5), "--tolerance", spec, capsys=None)
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_per_task_lines_say_what_was_compared(tmp_path, capsys):
    rng = np.random.default_rng(0)
    base_textvqa = rng.choice([0.0, 0.3, 0.6, 1.0], size=200).tolist()
    baseline = write_run(tmp_path / "b", {"gqa": BASE, "textvqa": base_textvqa})
    current = write_run(
        tmp_path / "c", {"gqa": flipped(BASE, 60, 5), "textvqa": base_textvqa}, key_salt="other-"
    )
    assert run_regress(baseline, current) == 1
    lines = capsys.readouterr().out.splitlines()
    assert (
        "- gqa: 200 sample(s) paired; McNemar exact; Δ accuracy -27.50; p = 4.9e-13; ❌ regression" in lines
    )
    assert "- textvqa: 200 sample(s) paired; paired bootstrap; Δ accuracy +0.00; p = 1; ✅ pass" in lines
