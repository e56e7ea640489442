"""The one way every biasprobe command reports failure: ``error: …`` and an exit code.

:func:`user_errors` wraps a command (``biasprobe run`` and friends, and the ``sentiment``
commands): a :class:`~biasprobe.errors.BiasprobeError` becomes one ``error: <message>`` line on
stderr and its ``exit_code`` (2 bad input, 1 otherwise); Ctrl-C exits 130 and SIGTERM 143,
after the stack has unwound (staging folders removed) with further signals ignored; any other
exception is an "internal error" (exit 1; ``BIASPROBE_DEBUG=1`` re-raises it). :func:`safe_text`
neutralises terminal control characters in anything printed; :func:`progress_printer` is the
one progress bar of the long-running commands; :func:`engine_keywords` turns the run
commands' ``--engine``/``--ray-*`` options into the library's ``engine=``/``ray=``. Imports
only the standard library and typer, so that any CLI module can use it without import cycles.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from biasprobe.views.text import display_names, markup, safe_text

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DeviceOption",
    "EngineOption",
    "RayActorsOption",
    "RayAddressOption",
    "RayCpusOption",
    "RayGpusOption",
    "RayObjectStoreOption",
    "PlainProgress",
    "QuietOption",
    "RevisionOption",
    "Terminated",
    "TrustRemoteCodeOption",
    "display_names",
    "engine_keywords",
    "markup",
    "out_option",
    "plain_progress",
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
CacheOption = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        metavar="DIR",
        help="Result cache folder for live models (default: $BIASPROBE_CACHE_DIR, else "
        "$XDG_CACHE_HOME/biasprobe or ~/.cache/biasprobe). A killed run resumes from it.",
        show_default=False,
    ),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")
]
#: What a command says on Ctrl-C when its work is kept in the result cache.
RESUME_HINT = (
    "interrupted: what was computed is kept in the result cache; the same command resumes "
    "where it stopped"
)


@contextlib.contextmanager
def resume_hint(resumable: bool) -> Iterator[None]:
    """On Ctrl-C inside the block, say (when ``resumable``: live models and the result cache)
    that the same command resumes; the interrupt goes on to :func:`user_errors`."""
    try:
        yield
    except KeyboardInterrupt:
        if resumable:
            typer.echo(RESUME_HINT, err=True)
        raise


TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        metavar="",
        help="Allow custom model code from model repositories (off by default).",
    ),
]


# --engine and the --ray-* options of every run command (biasprobe run, crows, holistic run),
# declared once; :func:`engine_keywords` turns them into the library's engine=/ray= keywords.
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="local|ray",
        help="Where models compute: local (this process) or ray (a pool of Ray actors; needs "
        "pip install 'biasprobe\\[ray]'; docs/cli.md says which models run there). The "
        "--ray-* options apply to --engine ray.",
    ),
]
RayActorsOption = Annotated[
    int | None,
    typer.Option(
        "--ray-actors",
        metavar="N",
        help="--engine ray: model replicas (Ray actors, each loads the model once). Default 1.",
        show_default=False,
    ),
]
RayCpusOption = Annotated[
    float | None,
    typer.Option(
        "--ray-cpus",
        metavar="F",
        help="--engine ray: CPUs reserved per actor (fractions allowed). Default 1.",
        show_default=False,
    ),
]
RayGpusOption = Annotated[
    float | None,
    typer.Option(
        "--ray-gpus",
        metavar="F",
        help="--engine ray: GPUs per actor (1 on a GPU cluster). Default 0.",
        show_default=False,
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDR",
        help="--engine ray: the Ray cluster to join (auto, HOST:PORT or ray://HOST:PORT). "
        "Default: $RAY_ADDRESS if set, else a local Ray instance started for the run.",
        show_default=False,
    ),
]
RayObjectStoreOption = Annotated[
    int | None,
    typer.Option(
        "--ray-object-store-mb",
        metavar="MB",
        help="--engine ray: object store of the local Ray instance, in MiB (at least 75). "
        "Default: Ray's (30% of RAM). Not with a cluster (--ray-address or $RAY_ADDRESS).",
        show_default=False,
    ),
]
#: The parameter names of the engine options in a command's signature.
ENGINE_OPTIONS = (
    "engine",
    "ray_actors",
    "ray_cpus",
    "ray_gpus",
    "ray_address",
    "ray_object_store_mb",
)
#: Ray's smallest object store, in MiB (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES).
RAY_MIN_OBJECT_STORE_MB = 75


def engine_keywords(options: dict[str, Any]) -> dict[str, Any]:
    """The ``engine=``/``ray=`` keywords of the library's run functions from a command's
    engine options (the :data:`ENGINE_OPTIONS` keys, removed from ``options``).

    Checks what the command line alone can tell, naming the option: the engine's name, a
    ``--ray-*`` option without ``--engine ray``, a value out of range, an object store size
    with a cluster address. Whether Ray is installed is checked by the library
    (:func:`biasprobe.distributed.options.distribute_for`) before anything runs.

    Raises:
        UsageError: a bad or misplaced option (exit 2).
    """
    import math

    from biasprobe.errors import UsageError

    engine = options.pop("engine", "local")
    given = {k: options.pop(k, None) for k in ENGINE_OPTIONS[1:]}
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine must be local or ray, not {engine!r}")
    flags = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if engine == "local":
        if flags:
            raise UsageError(
                f"{', '.join(flags)} {'applies' if len(flags) == 1 else 'apply'} to the Ray "
                "engine: add --engine ray (this run's engine is local)"
            )
        return {"engine": "local", "ray": None}
    actors, cpus, gpus = given["ray_actors"], given["ray_cpus"], given["ray_gpus"]
    address, store = given["ray_address"], given["ray_object_store_mb"]
    if actors is not None and actors < 1:
        raise UsageError(f"--ray-actors must be at least 1, got {actors}")
    for flag, value in (("--ray-cpus", cpus), ("--ray-gpus", gpus)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{flag} must be a number ≥ 0, got {value}")
    if address is not None and not address.strip():
        raise UsageError("--ray-address is empty: give a cluster address, or leave it out")
    if store is not None:
        if store < RAY_MIN_OBJECT_STORE_MB:
            raise UsageError(
                f"--ray-object-store-mb must be at least {RAY_MIN_OBJECT_STORE_MB} (Ray's "
                f"minimum), got {store}"
            )
        if address is not None or os.environ.get("RAY_ADDRESS"):
            where = "--ray-address" if address is not None else "$RAY_ADDRESS"
            raise UsageError(
                f"--ray-object-store-mb sizes a local Ray instance; with {where} the run "
                "joins a cluster, whose object store is the cluster's own"
            )
    ray: dict[str, Any] = {}
    for key, value in (("actors", actors), ("num_cpus", cpus), ("num_gpus", gpus)):
        if value is not None:
            ray[key] = value
    if address is not None:
        ray["address"] = address
    if store is not None:
        ray["object_store_memory"] = store * 2**20
    return {"engine": "ray", "ray": ray}


def out_option(default: str) -> Any:
    """The ``--out``/``-o`` option of a command writing a run folder (``default``: where it goes
    without one)."""
    return typer.Option(
        "--out", "-o", metavar="DIR", help=f"Run folder to write. Default: {default}."
    )


#: Seconds between plain progress lines (when stderr is not a terminal) at most; the
#: environment variable of that name overrides it (tests shorten it).
PROGRESS_INTERVAL_ENV = "BIASPROBE_PROGRESS_INTERVAL"
PROGRESS_INTERVAL_S = 30.0
#: A plain progress line also every time this fraction of a step's total is done.
PROGRESS_FRACTION = 0.1


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _interval(interval: float | None) -> float:
    if interval is not None:
        return interval
    try:
        return float(os.environ.get(PROGRESS_INTERVAL_ENV, PROGRESS_INTERVAL_S))
    except ValueError:
        return PROGRESS_INTERVAL_S


class PlainProgress:
    """Progress as plain lines, for a stderr that is not a terminal (a batch job's log file).

    A line per task when it starts to count, then every ``interval`` seconds or every
    ``fraction`` of its total (whichever comes first) and when it finishes: done/total, the
    percentage, the rate, the elapsed time and the ETA (``progress: masked bert: 120/1,000
    (12%), 35.2/s, elapsed 0:00:03, ETA 0:00:25``). A task that is reset (an evaluation
    repeated during training) prints by time only. Offers the part of rich's ``Progress`` that
    biasprobe uses (``start``, ``stop``, ``add_task``, ``update``, ``reset``, ``print``, a
    context manager), so the same code drives either display.
    """

    def __init__(
        self,
        stream: Any = None,
        interval: float | None = None,
        fraction: float = PROGRESS_FRACTION,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._stream = stream
        self.interval = _interval(interval)
        self.fraction = fraction
        self._now = clock or time.monotonic
        self._tasks: dict[int, dict[str, Any]] = {}

    # the context-manager and start/stop API of rich's Progress
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def print(self, text: object) -> None:
        """One line on the stream (control characters shown as ``\\xNN``)."""
        import sys

        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(safe_text(text) + "\n")
        stream.flush()

    def add_task(
        self, description: str, total: float | None = None, completed: float = 0, **fields: Any
    ) -> int:
        now = self._now()
        task = {"description": description, "total": total, "completed": completed}
        task.update(start=now, start_done=completed, last=now, last_frac=None, repeating=False)
        task.update(finished=False, fields=fields, visible=fields.pop("visible", True))
        self._tasks[len(self._tasks)] = task
        return len(self._tasks) - 1

    def reset(self, task_id: int, *, total: float | None = None, completed: float = 0, **kw: Any):
        task = self._tasks[task_id]
        now = self._now()
        task.update(completed=completed, start=now, start_done=completed, last=now)
        task.update(last_frac=None, finished=False, repeating=True)
        if total is not None:
            task["total"] = total
        task["fields"].update({k: v for k, v in kw.items() if k not in ("visible", "start")})

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self._tasks[task_id]
        fields.pop("visible", None)
        fields.pop("description", None)
        fields.pop("refresh", None)
        task["fields"].update(fields)
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        self._maybe_print(task)

    def _maybe_print(self, task: dict[str, Any]) -> None:
        now, done, total = self._now(), task["completed"], task["total"]
        if task["finished"]:
            return
        finished = total is not None and done >= total
        frac = done / total if total else None
        due = now - task["last"] >= self.interval
        if frac is not None and not task["repeating"]:
            last = task["last_frac"]
            due = due or last is None or frac - last >= self.fraction - 1e-9
        if not (finished or due):
            return
        if frac is not None and not finished and task["last_frac"] is None and done == 0:
            # the task's first report (0 done): say it started, no rate yet
            task["last_frac"] = 0.0
            task["last"] = now
            self.print(f"progress: {task['description']}: 0/{int(total):,} started")
            return
        task.update(last=now, last_frac=frac, finished=finished)
        self.print(self.line(task, now))

    def line(self, task: dict[str, Any], now: float) -> str:
        """The progress line of a task."""
        done, total = task["completed"], task["total"]
        elapsed = now - task["start"]
        rate = (done - task["start_done"]) / elapsed if elapsed > 0 else None
        parts = [
            f"{int(done):,}/{int(total):,} ({100 * done / total:.0f}%)"
            if total
            else f"{int(done):,} done"
        ]
        if rate:
            parts.append(f"{rate:,.1f}/s" if round(rate, 1) < 100 else f"{rate:,.0f}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if total and done < total and rate:
            parts.append(f"ETA {_clock((total - done) / rate)}")
        extra = [f"{k} {v}" for k, v in task["fields"].items() if v not in (None, "", "-")]
        return f"progress: {task['description']}: " + ", ".join(parts + extra)


def plain_progress(
    label: Callable[..., str], stream: Any = None, interval: float | None = None
) -> tuple[PlainProgress, Callable[..., None]]:
    """The plain-line counterpart of :func:`progress_bar`: the same ``update(*key, done,
    total)`` callback, printing through a :class:`PlainProgress`. A ``load`` step (no counts)
    prints one line when it is done, with its time."""
    printer = PlainProgress(stream, interval)
    tasks: dict[tuple[Any, ...], int] = {}
    loading: dict[tuple[Any, ...], float] = {}

    def update(*args: Any) -> None:
        *key, done, total = args
        key_t = tuple(key)
        if key and key[-1] == "load":
            if done < total:
                loading.setdefault(key_t, printer._now())
            elif key_t in loading:
                took = printer._now() - loading.pop(key_t)
                printer.print(f"progress: {safe_text(label(*key))}: done in {_clock(took)}")
            return
        if key_t not in tasks:
            tasks[key_t] = printer.add_task(safe_text(label(*key)), total=total, completed=0)
        printer.update(tasks[key_t], completed=done, total=total)

    return printer, update


def progress_printer(
    quiet: bool, label: Callable[..., str], *, interval: float | None = None
) -> tuple[Any, Callable[..., None] | None]:
    """A transient progress bar on stderr and its callback, or plain progress lines when stderr
    is not a terminal (:func:`plain_progress`: a batch job's log shows that the work moves),
    or ``(None, None)`` when ``quiet``.

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
        return plain_progress(label, interval=interval)
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


def resuming_line(name: str, done: int, total: int, unit: str = "pairs") -> str:
    """What a run served partly from the result cache says before it computes the rest
    (``unit``: what is counted — pairs, or sentences for HolisticBias)."""
    rest = f"{total - done:,} to compute" if done < total else "nothing to compute"
    return f"resuming {name}: {done:,} of {total:,} {unit} from the result cache, {rest}"


def with_resume_line(
    bar: Any,
    update: Callable[..., None] | None,
    short: Callable[[str], str],
    unit: str = "pairs",
) -> Callable[[str, str, int, int], None] | None:
    """The engine's progress callback ``(model, stage, done, total)`` over a progress printer's
    ``update``: stage ``cached`` (pairs found in the result cache, before scoring) prints
    :func:`resuming_line` once, when some are found; every other stage moves its bar.
    ``short(model)`` is the model's name on the line."""
    if bar is None or update is None:
        return update

    def report(model: str, stage: str, done: int, total: int) -> None:
        if stage != "cached":
            update(model, stage, done, total)
        elif done:  # a finished or interrupted earlier run
            say = getattr(bar, "console", bar).print
            line = safe_text(resuming_line(short(model), done, total, unit))
            if hasattr(bar, "console"):
                say(line, markup=False, highlight=False)
            else:
                say(line)

    return report


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
