"""The one exception type for problems in what the user gave us.

A ``UserError`` is printed by the CLI as a single line (what, where, how to fix) and the process exits with
code 2. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a wrong name, a missing file, a malformed YAML, an invalid value."""


class TrialFailed(RuntimeError):
    """A trial could not finish (non-finite loss, …); its run directory has ``error.txt``. Not retried."""
