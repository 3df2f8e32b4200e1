"""Paired statistics of two runs' per-sample scores: samples paired by identity, the exact McNemar test for 0/1
scores and a seeded paired bootstrap for the rest, as a PairedTest that says whether the current run dropped."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tinyllava_bench.report.runs import sample_identity

DEFAULT_ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: under no change each discordant pair is a fair coin, so
    p = 2 * P(Binomial(lost + gained, 1/2) <= min(lost, gained)), capped at 1.

    Summed in log space, so it stays exact (to float precision) for any count; no normal approximation is used.
    """
    if lost < 0 or gained < 0:
        raise ValueError("discordant counts must be >= 0")
    n = lost + gained
    if n == 0:
        return 1.0
    smaller = min(lost, gained)
    ks = np.arange(smaller + 1, dtype=float)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(k + 1) + math.lgamma(n - k + 1) for k in ks])
        - n * math.log(2.0)
    )
    peak = log_terms.max()
    tail = math.exp(peak) * float(np.exp(log_terms - peak).sum())
    return min(1.0, 2.0 * tail)


def _bootstrap_means(values: np.ndarray, *, resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` resamples of `values` (pairs drawn with replacement), with a fixed seed."""
    if values.size == 0:
        raise ValueError("no paired differences")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunks keep memory at ~chunk * n indices even for 200k-sample tasks.
    chunk = max(1, min(resamples, 2_000_000 // values.size))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[picks].mean(axis=1)
    return means


def paired_bootstrap_ci(
    differences: Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile (1 - alpha) confidence interval of the mean of paired differences, resampling pairs with a fixed
    seed so the same inputs always give the same interval."""
    means = _bootstrap_means(np.asarray(differences, dtype=float), resamples=resamples, seed=seed)
    return _percentile_interval(means, alpha)


def _percentile_interval(means: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) quantiles of resampled means."""
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _bootstrap_p(means: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the mean difference is 0": twice the smaller share of resampled means on
    either side of 0, with the +1 correction so that it is never 0 from a finite number of resamples."""
    below = int((means <= 0).sum())
    above = int((means >= 0).sum())
    return min(1.0, 2.0 * (min(below, above) + 1) / (means.size + 1))


@dataclass(frozen=True)
class PairedTest:
    """A paired test of per-sample scores (current - baseline) on the samples both runs scored."""

    method: Literal["mcnemar-exact", "paired-bootstrap"]
    n_paired: int
    mean_baseline: float
    mean_current: float
    alpha: float
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lost: int | None = None
    gained: int | None = None

    @property
    def mean_difference(self) -> float:
        return self.mean_current - self.mean_baseline

    @property
    def significant_drop(self) -> bool:
        if self.method == "mcnemar-exact":
            return (
                self.p_value is not None
                and self.p_value < self.alpha
                and (self.lost or 0) > (self.gained or 0)
            )
        return self.ci_high is not None and self.ci_high < 0

    def describe(self) -> str:
        if self.method == "mcnemar-exact":
            return (
                f"McNemar exact, {self.n_paired} pairs: {self.lost} lost / {self.gained} gained, "
                f"p = {format_p(self.p_value)}"
            )
        level = round((1 - self.alpha) * 100)
        return (
            f"paired bootstrap, {self.n_paired} pairs: mean Δ {self.mean_difference:+.4f}, "
            f"{level}% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}], p = {format_p(self.p_value)}"
        )

    @property
    def label(self) -> str:
        return "McNemar exact" if self.method == "mcnemar-exact" else "paired bootstrap"


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


@dataclass(frozen=True)
class SamplePairing:
    """Per-sample scores of one task in both runs, paired by sample identity, and what the current run lacks."""

    baseline: np.ndarray
    current: np.ndarray
    only_baseline: int
    only_current: int
    unscored: int  # in either run: errors and questions the task does not score (GQA's unbalanced ones)
    errored: int  # of the unscored: an error in either run
    unidentified: int
    # Samples the baseline scored that the current run lacks, or has without a score and without an error.
    missing: tuple[str, ...] = ()
    unscored_in_current: tuple[str, ...] = ()
    # Every sample of the current run with an error, paired or not: (sample, error message).
    current_errors: tuple[tuple[str, str], ...] = ()


def _label(identity: tuple) -> str:
    """How a report names one sample: its question_id, else its index, else its key."""
    if identity[0] == "row":
        return identity[1] or identity[2]
    return identity[1]


@dataclass
class _ScoredSamples:
    scores: dict[tuple, float | None] = field(default_factory=dict)
    errors: dict[tuple, str] = field(default_factory=dict)
    unidentified_errors: list[str] = field(default_factory=list)
    unidentified: int = 0


def _scored_by_identity(samples: Iterable[Mapping]) -> _ScoredSamples:
    found = _ScoredSamples()
    for sample in samples:
        identity = sample_identity(sample)
        error = sample.get("error")
        if identity is None:
            found.unidentified += 1
            if error:
                found.unidentified_errors.append(str(error))
            continue
        score = sample.get("score")
        # A later line for the same sample (a resumed run) supersedes an earlier one.
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            found.scores[identity] = float(score)
        else:
            found.scores[identity] = None
        if error:
            found.errors[identity] = str(error)
        else:
            found.errors.pop(identity, None)
    return found


def pair_samples(baseline: Iterable[Mapping], current: Iterable[Mapping]) -> SamplePairing:
    """Pair two tasks' sample lines by question_id + index (or key); unscored and one-sided samples are counted
    and left out."""
    base_found, curr_found = _scored_by_identity(baseline), _scored_by_identity(current)
    base, curr = base_found.scores, curr_found.scores
    common = [identity for identity in base if identity in curr]
    both_scored = [i for i in common if base[i] is not None and curr[i] is not None]
    unscored = [i for i in common if base[i] is None or curr[i] is None]
    errored = set(base_found.errors) | set(curr_found.errors)
    scored_by_baseline = [i for i in base if base[i] is not None]
    return SamplePairing(
        baseline=np.array([base[i] for i in both_scored], dtype=float),
        current=np.array([curr[i] for i in both_scored], dtype=float),
        only_baseline=sum(1 for i in base if i not in curr),
        only_current=sum(1 for i in curr if i not in base),
        unscored=len(unscored),
        errored=sum(1 for i in unscored if i in errored),
        unidentified=base_found.unidentified + curr_found.unidentified,
        missing=tuple(_label(i) for i in scored_by_baseline if i not in curr),
        unscored_in_current=tuple(
            _label(i)
            for i in scored_by_baseline
            if i in curr and curr[i] is None and i not in curr_found.errors
        ),
        current_errors=(
            *((_label(i), message) for i, message in curr_found.errors.items()),
            *(("(no id)", message) for message in curr_found.unidentified_errors),
        ),
    )


def paired_test(pairing: SamplePairing, *, alpha: float = DEFAULT_ALPHA) -> PairedTest | None:
    """McNemar when every paired score is 0 or 1, else a paired bootstrap; None with no pairs."""
    base, curr = pairing.baseline, pairing.current
    if base.size == 0:
        return None
    n_paired, mean_baseline, mean_current = int(base.size), float(base.mean()), float(curr.mean())
    if np.isin(base, (0.0, 1.0)).all() and np.isin(curr, (0.0, 1.0)).all():
        lost = int(((base == 1.0) & (curr == 0.0)).sum())
        gained = int(((base == 0.0) & (curr == 1.0)).sum())
        return PairedTest(
            "mcnemar-exact",
            n_paired,
            mean_baseline,
            mean_current,
            alpha=alpha,
            p_value=mcnemar_exact_p(lost, gained),
            lost=lost,
            gained=gained,
        )
    resampled = _bootstrap_means(curr - base, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    low, high = _percentile_interval(resampled, alpha)
    return PairedTest(
        "paired-bootstrap",
        n_paired,
        mean_baseline,
        mean_current,
        alpha=alpha,
        p_value=_bootstrap_p(resampled),
        ci_low=low,
        ci_high=high,
    )
