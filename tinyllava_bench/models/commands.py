"""The `zoo` verb: list the model cards."""

from __future__ import annotations

import argparse
import json
import sys

ZOO_COLUMNS = (
    "name",
    "checkpoint",
    "layout",
    "llm_family",
    "vision",
    "connector",
    "template",
    "image_aspect",
    "image_tokens",
    "recipe",
    "data",
    "params_b",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("zoo", help="list the model zoo (released checkpoints and paper variants)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.set_defaults(func=run_zoo)


def run_zoo(args: argparse.Namespace) -> int:
    import pandas as pd

    from tinyllava_bench.models.zoo import BENCHMARKS, list_cards

    cards = list_cards()
    if args.format == "json":
        print(json.dumps([card.model_dump() for card in cards], indent=2))
        return 0
    rows = []
    for card in cards:
        row = {column: getattr(card, column) for column in ZOO_COLUMNS}
        row["vision"] = row["vision"].split("/")[-1]
        row.update({bench: card.paper_scores.get(bench) for bench in BENCHMARKS})
        # the score columns hold the card's own source; a second source that disagrees is named beside them
        row["also_reported"] = "; ".join(
            f"{bench} {value:g} ({source})"
            for bench, values in card.disagreements().items()
            for value, source in values[1:]
        )
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*ZOO_COLUMNS, *BENCHMARKS, "also_reported"])
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    else:
        frame["checkpoint"] = frame["checkpoint"].fillna("(not released)")
        print(frame.drop(columns=["data", "connector"]).to_string(index=False, na_rep=""))
    return 0
