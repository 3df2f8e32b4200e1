"""Errors a user can cause: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """A problem with what the user gave us (path, name, file contents, settings); the message names the fix."""
