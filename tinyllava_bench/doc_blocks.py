"""Generated blocks in docs (the demo's README block, the protocols table, the training guide): the text between a
begin and an end marker, found, read and replaced in one place."""

from __future__ import annotations

from tinyllava_bench.errors import UserError


def block_span(text: str, begin: str, end: str, where: str) -> tuple[int, int]:
    """Where the block's content starts (just after `begin`) and stops (at `end`) in `text`; a UserError naming
    `where` and the marker lines when they are missing or out of order."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start + len(begin):
        raise UserError(
            f"{where} has no generated block: add its markers, the lines {begin!r} and {end!r}, where it goes"
        )
    return start + len(begin), stop


def replace_block(text: str, begin: str, end: str, block: str, where: str) -> str:
    """`text` with the content between the markers replaced by a newline and `block`."""
    start, stop = block_span(text, begin, end, where)
    return text[:start] + "\n" + block + text[stop:]
