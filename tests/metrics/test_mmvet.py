"""MM-Vet: judge reply parsing, and aggregation with the official rounding."""

import math

import pytest

from tinyllava_bench.metrics.mmvet import (
    capabilities_of,
    parse_mmvet_score,
    score,
)


@pytest.mark.parametrize(
    ("content", "official", "lmms"),
    [
        ("0.5", 0.5, 0.5),
        ("1.0 because", 1.0, 1.0),
        ("0.3\n", 0.3, 0.3),
        ("1e-1", 0.1, 0.1),
        ("1.5", None, None),
        ("-0.1", None, None),
        ("Correct", None, None),
        ("0.5.", None, None),
        (" 0.5", None, 0.5),  # official splits before stripping: the first token is ""
        ("", None, None),
        (None, None, None),
    ],
)
def test_parse_score(content, official, lmms):
    assert parse_mmvet_score(content) == official
    assert parse_mmvet_score(content, "lmms-eval") == lmms


@pytest.mark.parametrize("content", ["nan", "NaN", "-nan", "inf", "-inf", "infinity"])
def test_nan_and_inf_are_no_score(content):
    # the official range check (`score > 1.0 or score < 0.0`) lets nan through; a NaN score would make every
    # mean NaN and results.json invalid JSON, so here it is "not a score: ask again" under both protocols
    assert parse_mmvet_score(content) is None
    assert parse_mmvet_score(content, "lmms-eval") is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1.5, -0.1])
def test_a_judgement_outside_0_1_never_becomes_a_metric(bad):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        score(_rows([["rec"], ["ocr"]]), ["a", "b"], judgements=[0.5, bad])


def test_capabilities_from_list_or_comma_string():
    assert capabilities_of({"capability": "rec,ocr, math"}) == ["rec", "ocr", "math"]
    assert capabilities_of({"capability": ["gen", "know"]}) == ["gen", "know"]


def _rows(capabilities):
    return [{"question_id": f"v1_{i}", "capability": c} for i, c in enumerate(capabilities)]


def test_total_and_capabilities_official_rounding():
    rows = _rows(["rec,ocr", ["rec"], "ocr,math"])
    result = score(rows, ["a", "b", "c"], judgements=[0.5, 0.0, 0.0])
    assert result.scores == [0.5, 0.0, 0.0]
    assert result.metrics["total"] == 16.7  # 16.666… rounded to 1 decimal as the grader does
    assert result.metrics["rec"] == 25.0
    assert result.metrics["ocr"] == 25.0
    assert result.metrics["math"] == 0.0
    assert "gen" not in result.metrics  # no question has it
    assert result.metrics["unscored"] == 0.0
    lmms = score(rows, ["a", "b", "c"], "lmms-eval", [0.5, 0.0, 0.0])
    assert lmms.metrics["total"] == pytest.approx(50 / 3)


def test_official_rounding_is_numpy_rounding():
    # 0.7 / 200 * 100 = 0.35 (stored just below); Python's round gives 0.3, the grader's numpy gives 0.4
    rows = _rows(["rec"] * 200)
    judgements = [0.7] + [0.0] * 199
    assert round(0.35, 1) == 0.3
    assert score(rows, ["p"] * 200, judgements=judgements).metrics["total"] == 0.4
    assert score(rows, ["p"] * 200, "lmms-eval", judgements).metrics["total"] == pytest.approx(0.35)


def test_unjudged_samples_are_excluded_and_counted():
    rows = _rows(["rec", "rec", "ocr"])
    result = score(rows, ["a", "b", "c"], judgements=[1.0, None, 0.0])
    assert result.scores == [1.0, None, 0.0]
    assert result.metrics["total"] == 50.0
    assert result.metrics["rec"] == 100.0
    assert result.metrics["unscored"] == 1.0


def test_judgements_are_required():
    with pytest.raises(ValueError, match="one judge score per row"):
        score(_rows(["rec"]), ["a"])
    with pytest.raises(ValueError, match="one judge score per row"):
        score(_rows(["rec"]), ["a"], judgements=[])
