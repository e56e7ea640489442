"""User-facing errors.

Every failure a user can cause (bad probe file, unloadable model, unwritable folder, ...) raises a
subclass of :class:`BiasprobeError`. The library never prints or exits; the CLI turns these into
one ``error: ...`` message and a non-zero exit code, without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class BiasprobeError(Exception):
    """Base class of all errors meant for the user.

    Attributes:
        exit_code: process exit code the CLI uses for this error.
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(BiasprobeError):
    """Bad input given on the command line or to the Python API."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file, with its location."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


MAX_PROBLEMS = 50
"""Problems listed in one error message; the rest are counted."""


class ProblemsError(BiasprobeError):
    """An input file is invalid. Carries the problems found (the first :data:`MAX_PROBLEMS`),
    and its message lists them and counts the rest.

    Args:
        problems: every problem found, in the order to show them.
        title: start of the message (default: the class's ``title``).
    """

    exit_code = 2
    title = "invalid input"

    def __init__(self, problems: list[Problem], title: str | None = None) -> None:
        problems = list(problems)
        n = len(problems)
        self.problems = problems[:MAX_PROBLEMS]
        head = "1 problem" if n == 1 else f"{n} problems"
        body = "\n".join(f"  {p}" for p in self.problems)
        if n > MAX_PROBLEMS:
            more = n - MAX_PROBLEMS
            body += f"\n  … and {more} more problem{'' if more == 1 else 's'}"
        super().__init__(f"{title or self.title} ({head}):\n{body}")


class ProbeSetError(ProblemsError):
    """A probe file is missing or invalid. Carries every problem found, not only the first."""

    title = "invalid probe set"


class ModelLoadError(BiasprobeError):
    """A model could not be loaded (unknown id, offline, missing or corrupt files)."""

    exit_code = 1


class VocabularyError(BiasprobeError):
    """A target word cannot be represented in a model's vocabulary."""

    exit_code = 2


class DeviceError(BiasprobeError):
    """The requested device is not available."""

    exit_code = 2


class OutputError(BiasprobeError):
    """An output folder or file cannot be written."""

    exit_code = 1


class RunFolderError(BiasprobeError):
    """A run folder is missing files or cannot be read."""

    exit_code = 2


class NotStoredError(UsageError):
    """A run folder does not hold what was asked: it stored each sentence's top-N tokens, and a
    view needs more (the whole vocabulary, or tokens beyond the stored ones). The message says
    how to get it (``--store full``)."""
