"""Errors a user can cause, and the exit statuses every verb shares (docs/exit_status.md).

The CLI prints a UserError's message as one line, without a traceback, and exits with its `exit_code`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0  # every sample produced and scored; a verdict of pass
EXIT_FAILED = 1  # the run could not proceed (or a verdict of fail)
EXIT_USAGE = 2  # the command line is wrong: a flag, a name, a value
EXIT_INCOMPLETE = 3  # the run finished and wrote everything, but some samples errored or were not judged

EXIT_STATUS_HELP = """exit status (docs/exit_status.md):
  0  every sample produced and scored
  3  finished and everything written, but some samples errored, had no prediction or got no judge score
     (counts printed, and in results.json "summary"); --max-error-rate accepts a share of them with 0
  1  the run could not proceed (model, data, judge or output unusable; the message says which)
  2  usage error (a flag, name or value on the command line)"""


class UserError(Exception):
    """A problem with what the user gave us (path, name, file contents, settings); the message names the fix."""

    exit_code = EXIT_USAGE


class RunError(UserError):
    """The run started but could not proceed (a model, data file or endpoint that cannot be used)."""

    exit_code = EXIT_FAILED


@contextmanager
def run_phase() -> Iterator[None]:
    """Inside, a UserError means the run could not proceed: it leaves as a RunError (exit 1), same message.

    Verbs check their command line first (exit 2 for what is wrong there), then do the work in this block.
    """
    try:
        yield
    except RunError:
        raise
    except UserError as exc:
        raise RunError(str(exc)) from None
