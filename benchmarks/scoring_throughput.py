"""Throughput of the VQAv2 scorer on a VQAv2-val-sized set: 214,354 synthetic questions x 10 human answers.

Times `tinyllava_bench.metrics.score_task("vqav2", rows, predictions)` (cold: first in the process, then warm), the
engine's full path `tinyllava_bench.tasks.score_predictions`, the lmms-eval protocol, and a straightforward
per-question implementation of the same rules written here (LLaVA's EvalAI answer processor, then vqaEval.py's
cleaning, all-identical gate, punctuation, digit/article steps and leave-one-out accuracy, no caches, no closed
form), and checks that every question gets the same score and parsed answer from both. Goal: under 10 s.

    python benchmarks/scoring_throughput.py                  # 214,354 questions
    python benchmarks/scoring_throughput.py --questions 20000
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

VQAV2_VAL_QUESTIONS = 214_354
GOAL_S = 10.0

# ===== synthetic VQAv2-val ======================================================================================

COLORS = ["red", "blue", "green", "white", "black", "yellow", "brown", "gray", "orange", "pink", "purple"]
OBJECTS = [
    "dog", "cat", "man", "woman", "frisbee", "pizza", "tennis racket", "t-shirt", "bus", "train", "kite",
    "umbrella", "skateboard", "surfboard", "giraffe", "elephant", "clock", "laptop", "bench", "sandwich",
]  # fmt: skip
PHRASES = [
    "black and white", "man's", "3:00", "e.g.", "sitting", "playing tennis", "on table", "left", "right",
    "daytime", "nighttime", "wood", "metal", "grass", "snow", "water", "baseball", "soccer", "cloudy", "sunny",
]  # fmt: skip
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _other_answers() -> list[str]:
    """About 5,000 distinct answers: single words, colour + object, object + phrase, colour + object + phrase."""
    answers = set(COLORS + OBJECTS + PHRASES)
    answers.update(f"{color} {thing}" for color in COLORS for thing in OBJECTS)
    answers.update(f"{thing} {phrase}" for thing in OBJECTS for phrase in PHRASES)
    answers.update(
        f"{color} {thing} {phrase}" for color in COLORS[:5] for thing in OBJECTS for phrase in PHRASES
    )
    return sorted(answers)


def _variant(answer: str, rng: random.Random) -> str:
    """How people (and models) write the same answer differently: case, articles, punctuation, number words."""
    kind = rng.randrange(9)
    if kind == 0:
        return answer.capitalize()
    if kind == 1:
        return answer + "."
    if kind == 2:
        return "the " + answer
    if kind == 3:
        return "a " + answer
    if kind == 4 and answer.isdigit() and int(answer) <= 10:
        return NUMBER_WORDS[int(answer)]
    if kind == 5:
        return answer.replace(" ", "-") if " " in answer else answer + "!"
    if kind == 6:
        return answer.upper()
    if kind == 7:
        return f" {answer}\n"
    return answer + "s"


def synthetic_vqav2(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """`n` rows in lmms-lab/VQAv2's columns (answers as {answer, answer_confidence, answer_id}) and predictions."""
    rng = random.Random(seed)
    others = _other_answers()
    rows, predictions = [], []
    for index in range(n):
        draw = rng.random()
        if draw < 0.38:
            answer_type, truth = "yes/no", rng.choice(["yes", "no"])
            wrong = "no" if truth == "yes" else "yes"
        elif draw < 0.50:
            answer_type, truth = "number", str(rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12, 20]))
            wrong = str(int(truth) + 1)
        else:
            answer_type, truth = "other", rng.choice(others)
            wrong = rng.choice(others)
        # a third of VQAv2 questions have ten identical answers (the scorer then skips normalisation)
        if rng.random() < 0.33:
            texts = [truth] * 10
        else:
            texts = []
            for _ in range(10):
                pick = rng.random()
                texts.append(truth if pick < 0.6 else _variant(truth, rng) if pick < 0.85 else wrong)
        answers = [
            {
                "answer": text,
                "answer_confidence": rng.choice(["yes", "yes", "maybe", "no"]),
                "answer_id": i + 1,
            }
            for i, text in enumerate(texts)
        ]
        rows.append(
            {
                "question_id": 262148000 + index,
                "question": "What is in the picture?",
                "question_type": "what is",
                "answer_type": answer_type,
                "multiple_choice_answer": truth,
                "image_id": 262148 + index // 5,
                "answers": answers,
            }
        )
        pick = rng.random()
        if pick < 0.55:
            prediction = truth
        elif pick < 0.80:
            prediction = _variant(truth, rng)
        elif pick < 0.95:
            prediction = wrong
        else:
            prediction = f"The answer is {_variant(truth, rng)}, I think."
        predictions.append(prediction)
    return rows, predictions


# ===== a plain per-question implementation of the same rules ===================================================
# Written from the rules (LLaVA m4c EvalAIAnswerProcessor, GT-Vision-Lab vqaEval.py); deliberately naive: regexes
# run on every answer, nothing cached, the leave-one-out loop spelled out over answer records.

PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
VQA_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
EVALAI_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def _tables() -> tuple[dict[str, str], dict[str, str], set[str]]:
    # the contraction and number tables are data shared by all these scorers; taken as data, not as logic
    from tinyllava_bench.metrics.answer_normalization import CONTRACTIONS, NUMBER_WORDS

    return CONTRACTIONS, NUMBER_WORDS, {"a", "an", "the"}


def reference_punctuation(text: str, comma_strip: re.Pattern[str]) -> str:
    out = text
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or comma_strip.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # the official code passes re.UNICODE as `count`
    return PERIOD_STRIP.sub("", out, re.UNICODE)


def reference_digit_article(text: str, tables: tuple) -> str:
    contractions, numbers, articles = tables
    words = []
    for word in text.lower().split():
        word = numbers.get(word, word)
        if word not in articles:
            words.append(word)
    return " ".join(contractions.get(word, word) for word in words)


def reference_evalai(answer: str, tables: tuple) -> str:
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return reference_digit_article(reference_punctuation(text, EVALAI_COMMA_STRIP), tables)


def reference_score(
    rows: list[dict[str, Any]], predictions: list[str]
) -> tuple[float, list[float], list[str]]:
    """Overall accuracy (percent), per-question accuracy and the compared answer, one question at a time."""
    tables = _tables()
    scores, parsed = [], []
    for row, prediction in zip(rows, predictions):
        result = reference_evalai(prediction, tables).replace("\n", " ").replace("\t", " ").strip()
        records = [
            dict(a, answer=a["answer"].replace("\n", " ").replace("\t", " ").strip()) for a in row["answers"]
        ]
        if len({r["answer"] for r in records}) > 1:
            for record in records:
                record["answer"] = reference_digit_article(
                    reference_punctuation(record["answer"], VQA_COMMA_STRIP), tables
                )
            result = reference_digit_article(reference_punctuation(result, VQA_COMMA_STRIP), tables)
        accuracies = []
        for left_out in records:
            others = [r for r in records if r != left_out]
            matches = [r for r in others if r["answer"] == result]
            accuracies.append(min(1.0, len(matches) / 3))
        scores.append(sum(accuracies) / len(accuracies))
        parsed.append(result)
    return 100.0 * sum(scores) / len(scores), scores, parsed


# ===== the benchmark ===========================================================================================


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    gc.collect()
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=VQAV2_VAL_QUESTIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true", help="time the scorer only")
    parser.add_argument(
        "--skip-dataset", action="store_true", help="skip the datasets.Dataset.to_list timing"
    )
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "scoring_throughput.json"))
    args = parser.parse_args(argv)

    machine = common.machine_info()
    from tinyllava_bench.metrics import score_task
    from tinyllava_bench.tasks import score_predictions

    (rows, predictions), generate_s = timed(synthetic_vqav2, args.questions, args.seed)
    n = len(rows)
    print(f"{n} synthetic VQAv2 questions x 10 answers generated in {generate_s:.1f}s")

    runs: list[dict[str, Any]] = []

    def record(name: str, seconds: float, note: str = "") -> None:
        runs.append(
            {"run": name, "seconds": round(seconds, 3), "questions_per_s": round(n / seconds), "note": note}
        )
        print(f"  {name}: {seconds:.2f}s", flush=True)

    official_cold, seconds = timed(score_task, "vqav2", rows, predictions)
    record("score_task official (cold caches)", seconds, "first scoring in the process")
    official, seconds = timed(score_task, "vqav2", rows, predictions)
    record("score_task official (warm caches)", seconds, "normaliser caches filled by the run above")
    _, seconds = timed(score_predictions, "vqav2", rows, predictions)
    record("tasks.score_predictions official", seconds, "the engine's path: score_task + per-sample dicts")
    _, seconds = timed(score_task, "vqav2", rows, predictions, "lmms-eval")
    record("score_task lmms-eval protocol", seconds)

    agreement: dict[str, Any] = {"checked": False}
    if not args.skip_reference:
        (accuracy, scores, parsed), seconds = timed(reference_score, rows, predictions)
        record("plain per-question reference", seconds, "written in this script, no caches")
        score_mismatch = [i for i in range(n) if abs(scores[i] - official.scores[i]) > 1e-12]
        parsed_mismatch = [i for i in range(n) if parsed[i] != official.parsed[i]]
        agreement = {
            "checked": True,
            "accuracy_official": official.metrics["accuracy"],
            "accuracy_reference": accuracy,
            "score_mismatches": len(score_mismatch),
            "parsed_mismatches": len(parsed_mismatch),
            "first_mismatches": [
                {
                    "index": i,
                    "prediction": predictions[i],
                    "official": official.parsed[i],
                    "reference": parsed[i],
                }
                for i in (score_mismatch + parsed_mismatch)[:5]
            ],
            "cold_equals_warm": official_cold.scores == official.scores,
        }
        agree = (
            not score_mismatch and not parsed_mismatch and abs(accuracy - official.metrics["accuracy"]) < 1e-9
        )
        agreement["agree"] = agree
        print(
            f"  official {official.metrics['accuracy']:.4f} vs reference {accuracy:.4f}; "
            f"{len(score_mismatch)} score and {len(parsed_mismatch)} parsed mismatches -> "
            f"{'AGREE' if agree else 'DISAGREE'}"
        )

    if not args.skip_dataset:
        # the engine turns the task's datasets.Dataset into Python rows (runner._text_rows) before scoring
        import datasets

        dataset = datasets.Dataset.from_list(rows)
        _, seconds = timed(dataset.to_list)
        record(
            "datasets.Dataset.to_list (engine's _text_rows)", seconds, "Arrow -> Python rows, once per task"
        )
        del dataset

    cold = runs[0]["seconds"]
    result = {
        "benchmark": "scoring_throughput",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "questions": n,
        "answers_per_question": 10,
        "goal_s": GOAL_S,
        "official_cold_s": cold,
        "meets_goal": cold < GOAL_S,
        "runs": runs,
        "agreement": agreement,
        "metrics_official": official.metrics,
        "peak_rss_mib": common.peak_rss_mib(),
    }
    result["machine"]["load_average_at_end"] = common.load_average()
    print()
    print(
        common.format_table(
            runs, [("run", "run"), ("seconds", "seconds"), ("questions_per_s", "questions/s")]
        )
    )
    print(
        f"goal: official scorer under {GOAL_S:.0f}s on {n} questions -> {cold:.2f}s ({'met' if cold < GOAL_S else 'NOT met'})"
    )
    out = common.write_result(Path(args.out), result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
