"""Library error types.

Every error a user can cause derives from :class:`PersonalizeError`; the CLI
turns these into one line on stderr and exit code 2, the HTTP layer into 4xx.
"""

from __future__ import annotations


class PersonalizeError(Exception):
    """Base class of every error caused by user input or configuration."""


class DataError(PersonalizeError, ValueError):
    """Input data does not meet the data contract.

    ``table`` and ``column`` name where the problem is, ``rows`` holds a few
    offending row numbers (0-based positions in the input as read) or values.
    """

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None,
                 rows: list | None = None) -> None:
        self.table = table
        self.column = column
        self.rows = list(rows) if rows is not None else []
        where = []
        if table:
            where.append(f"table '{table}'")
        if column:
            where.append(f"column '{column}'")
        prefix = (", ".join(where) + ": ") if where else ""
        suffix = ""
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            more = f" (and {len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
            suffix = f" [rows: {shown}{more}]"
        super().__init__(f"{prefix}{message}{suffix}")
        self.message = message


class NotFittedError(PersonalizeError, RuntimeError):
    """A model was used before ``fit`` (or ``load``)."""


class UnknownIdError(PersonalizeError, KeyError):
    """An id is not known to a fitted model."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class BundleError(PersonalizeError):
    """A model bundle is missing, corrupted or of an unknown format version."""


class MissingComponentError(PersonalizeError):
    """The loaded bundle lacks the component or column a request needs (e.g. no churn model was published)."""


class ParameterError(PersonalizeError, ValueError):
    """A model argument or hyperparameter is invalid."""


class ConvergenceError(PersonalizeError):
    """A model's maximum-likelihood fit did not converge (or the data cannot identify its parameters)."""
