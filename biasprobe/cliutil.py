"""The one way every biasprobe command reports failure: ``error: …`` and an exit code.

:func:`user_errors` wraps a command (``biasprobe run`` and friends, and the ``sentiment``
commands): a :class:`~biasprobe.errors.BiasprobeError` becomes one ``error: <message>`` line on
stderr and its ``exit_code`` (2 bad input, 1 otherwise); Ctrl-C exits 130 and SIGTERM 143,
after the stack has unwound (staging folders removed) with further signals ignored; any other
exception is an "internal error" (exit 1; ``BIASPROBE_DEBUG=1`` re-raises it). :func:`safe_text`
neutralises terminal control characters in anything printed; :func:`progress_printer` is the
one progress bar of the long-running commands. Imports only the standard library
and typer, so that any CLI module can use it without import cycles.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DeviceOption",
    "QuietOption",
    "RevisionOption",
    "Terminated",
    "TrustRemoteCodeOption",
    "display_names",
    "markup",
    "out_option",
    "progress_bar",
    "progress_printer",
    "safe_text",
    "user_errors",
]

# The options several commands share, declared once (give the default with ``= value``).
DeviceOption = Annotated[
    str, typer.Option(metavar="DEVICE", help="auto (CUDA if present), cpu, cuda, cuda:N or mps.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", metavar="", help="No progress bar or tables.")
]
RevisionOption = Annotated[
    str | None,
    typer.Option(metavar="REV", help="Hub revision (branch, tag, commit) for hub models."),
]
TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        metavar="",
        help="Allow custom model code from model repositories (off by default).",
    ),
]


def out_option(default: str) -> Any:
    """The ``--out``/``-o`` option of a command writing a run folder (``default``: where it goes
    without one)."""
    return typer.Option(
        "--out", "-o", metavar="DIR", help=f"Run folder to write. Default: {default}."
    )


_ESCAPED = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_KEPT_LINES = frozenset("\t\n")


def _shown_char(c: str, keep: frozenset[str]) -> str:
    """``c`` itself, or its escape when it is a control, format or separator character."""
    if c in keep or unicodedata.category(c) not in _ESCAPED:
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def safe_text(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control and format character shown as an escape (``\\x1b``,
    ``\\u202e``).

    Probe files and model vocabularies are untrusted: an escape sequence (``\\x1b]2;…\\x07``)
    printed raw would retitle or reprogram the user's terminal, and a bidirectional override
    (U+202E) or another format character (Unicode category Cf) would make the text read
    differently from what it is. Escaped: categories Cc, Cf, Cs (lone surrogates), Zl and Zp
    (line and paragraph separators); with ``keep_newlines``, tabs and newlines stay.
    ``rich.markup.escape`` does not cover that; every string biasprobe prints goes through here.
    """
    s = str(text)
    if s.isprintable():  # the common case, checked in C: nothing to escape
        return s
    keep = _KEPT_LINES if keep_newlines else frozenset()
    return "".join(c if c.isprintable() else _shown_char(c, keep) for c in s)


def markup(text: object) -> str:
    """``text`` made safe for a rich table cell: control characters and rich markup escaped."""
    from rich.markup import escape

    return escape(safe_text(text))


def progress_printer(
    quiet: bool, label: Callable[..., str]
) -> tuple[Any, Callable[..., None] | None]:
    """A transient progress bar on stderr and its callback, or ``(None, None)`` when ``quiet``
    or stderr is not a terminal.

    The callback is ``update(*key, done, total)``: one bar per distinct ``key`` (e.g. model and
    stage), labelled ``label(*key)``, with count, rate, elapsed time and ETA. A key whose last
    part is ``"load"`` is a step without counts (loading a model): its bar pulses and its clock
    runs until it reports ``done == total``. The bar is a rich ``Progress``: start and stop it
    (or use it as a context manager) around the work.
    """
    if quiet:
        return None, None
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        return None, None
    return progress_bar(console, label)


def progress_bar(console: Any, label: Callable[..., str]) -> tuple[Any, Callable[..., None]]:
    """The bar of :func:`progress_printer` on ``console`` (any rich Console, e.g. a test's)."""
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Items per second (blank while unknown)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None or task.total is None:
                return Text("")
            return Text(f"{speed:,.1f}/s" if speed < 100 else f"{speed:,.0f}/s", style="dim")

    class Count(ProgressColumn):
        """done/total, blank for a step without counts (loading)."""

        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")

    remaining = TimeRemainingColumn()

    class Eta(ProgressColumn):
        """Time left, once a rate is known."""

        def render(self, task: Any) -> Text:
            if task.total is None or task.finished or not task.speed:
                return Text("")
            return Text("ETA ", style="dim") + remaining.render(task)

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", table_column=None),
        BarColumn(bar_width=16),
        Count(),
        Rate(),
        TimeElapsedColumn(),
        Eta(),
        console=console,
        transient=True,
    )
    tasks: dict[tuple[Any, ...], Any] = {}

    def update(*args: Any) -> None:
        *key, done, total = args
        pulse = bool(key) and key[-1] == "load" and done < total
        if tuple(key) not in tasks:
            text = safe_text(label(*key))
            text = text if len(text) <= 24 else text[:23] + "…"
            tasks[tuple(key)] = bar.add_task(markup(text), total=None if pulse else total)
        bar.update(tasks[tuple(key)], completed=done, total=None if pulse else total)

    return bar, update


def display_names(names: Iterable[str], width: int = 48) -> dict[str, str]:
    """Short, distinct labels for model names on the terminal: the shortest trailing part of
    each path (``/tmp/random-a`` → ``random-a``) that no other name shares, ``recorded:`` kept
    as a prefix, and at most ``width`` characters (cut in the middle with ``…``). Names that
    would still collide keep their full text."""
    names = list(dict.fromkeys(names))

    def parts(name: str) -> tuple[str, list[str]]:
        prefix = "recorded:" if name.startswith("recorded:") else ""
        body = name[len(prefix) :].replace("\\", "/").rstrip("/")
        return prefix, [p for p in body.split("/") if p not in ("", ".")] or [body or name]

    split = {n: parts(n) for n in names}

    def tail(name: str, k: int) -> str:
        prefix, p = split[name]
        return prefix + "/".join(p[-k:])

    out: dict[str, str] = {}
    for name in names:
        _, p = split[name]
        short = name
        for k in range(1, len(p) + 1):
            cand = tail(name, k)
            if all(tail(other, k) != cand for other in names if other != name):
                short = cand
                break
        if len(short) > width:
            head = (width - 1) // 2
            short = short[:head] + "…" + short[len(short) - (width - 1 - head) :]
        out[name] = short
    shown = list(out.values())
    for name in names:
        if shown.count(out[name]) > 1:
            out[name] = name
    return out


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {safe_text(message, keep_newlines=True)}", err=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (clean up, exit 143)."""


def _interrupt(signum: int, frame: Any) -> None:
    # Ignore further signals while the stack unwinds and staging folders are removed, so that a
    # second Ctrl-C (or SIGTERM) cannot interrupt the cleanup or print a traceback.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    try:
        old = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        # After a signal the process is ending: keep ignoring further ones until it exits.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def user_errors(fn: F) -> F:
    """Turn every failure of a command into one ``error: …`` line and an exit code.

    The one mechanism for every biasprobe command (the sentiment commands use it too):
    :class:`BiasprobeError` → its ``exit_code`` (2 bad input, 1 otherwise); Ctrl-C → 130 and
    SIGTERM → 143, after the staging folders are removed (further signals are ignored during
    that cleanup); any other exception → "internal error", exit 1 (``BIASPROBE_DEBUG=1`` shows
    the traceback). Printed text is stripped of terminal control characters.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from biasprobe.errors import BiasprobeError

        with _signals():
            try:
                return fn(*args, **kwargs)
            except BiasprobeError as e:
                _fail(e.message, e.exit_code)
            except KeyboardInterrupt as e:
                what, code = (
                    ("terminated (SIGTERM)", 143)
                    if isinstance(e, Terminated)
                    else (
                        "interrupted",
                        130,
                    )
                )
                _fail(f"{what}; nothing was left half-written", code)
            except typer.Exit:
                raise
            except Exception as e:  # a bug: say so in one line; BIASPROBE_DEBUG=1 shows it all
                if os.environ.get("BIASPROBE_DEBUG"):
                    raise
                _fail(
                    f"internal error ({type(e).__name__}: {e}); please report it. Set "
                    "BIASPROBE_DEBUG=1 to see the traceback",
                    1,
                )

    return wrapper  # type: ignore[return-value]
