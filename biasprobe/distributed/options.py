"""Which engine a run uses: ``engine="local"`` (this process) or ``engine="ray"`` (a pool of
Ray actors, :class:`~biasprobe.distributed.ray_engine.RayEngine`), as the library's run
functions and the ``--engine`` option take it.

:func:`distribute_for` turns ``engine=``/``ray=`` into the ``distribute`` hook of
:func:`biasprobe.engine.run`, in one place for every task. Importing this module imports
``biasprobe.distributed`` (and torch) but never Ray: the run functions import it only when a
run asks for an engine other than the local one, and Ray itself is imported only when a model
is sent to it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from typing import Any

from biasprobe.distributed.ray_engine import RayEngine, RayOptions
from biasprobe.errors import UsageError

__all__ = ["ENGINES", "RAY_INSTALL", "distribute_for", "ray_installed", "ray_options"]

#: The engines a run can use.
ENGINES = ("local", "ray")
#: How to install what ``engine="ray"`` needs.
RAY_INSTALL = "pip install 'biasprobe[ray]'"


def ray_installed() -> bool:
    """Whether Ray can be imported here (looked up without importing it)."""
    return importlib.util.find_spec("ray") is not None


def ray_options(ray: RayOptions | Mapping[str, Any] | None) -> RayOptions:
    """``ray`` as checked :class:`RayOptions` (a mapping gives its fields by name).

    Raises:
        UsageError: not a mapping, an unknown field (the message lists the fields), or a bad
            value (:meth:`RayOptions.check`).
    """
    if isinstance(ray, RayOptions):
        options = ray
    elif ray is None or isinstance(ray, Mapping):
        fields = [f.name for f in dataclasses.fields(RayOptions)]
        unknown = sorted(str(k) for k in (ray or {}) if k not in fields)
        if unknown:
            raise UsageError(
                f"ray= has unknown option(s) {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(fields)}"
            )
        options = RayOptions(**dict(ray or {}))
    else:
        raise UsageError(
            f"ray= must be a RayOptions or a dict of its fields, not {type(ray).__name__}"
        )
    options.check()
    return options


def distribute_for(
    engine: str = "local",
    ray: RayOptions | Mapping[str, Any] | None = None,
    distribute: Any = None,
) -> Any:
    """The ``distribute`` hook of :func:`biasprobe.engine.run` for ``engine``.

    Args:
        engine: ``"local"`` (models run in this process) or ``"ray"`` (models run on Ray
            actors; see ``docs/ray.md`` for which requests go there).
        ray: with ``engine="ray"`` only: a :class:`RayOptions` or a dict of its fields
            (``actors``, ``num_cpus``, ``num_gpus``, ``address``, ``object_store_memory``,
            ``device``, ``rows_per_call``); None for the defaults.
        distribute: a hook given directly (the engine's own keyword); kept with the local
            engine, refused with ``engine="ray"``.

    Returns:
        None or ``distribute`` for the local engine; a :class:`RayEngine` for Ray (Ray is
        neither imported nor started here).

    Raises:
        UsageError: an unknown engine, ``ray=`` with the local engine, ``distribute=`` with
            ``engine="ray"``, Ray not installed, or a bad Ray option.
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise UsageError(f"engine must be {' or '.join(map(repr, ENGINES))}, not {engine!r}")
    if engine == "local":
        if ray is not None:
            raise UsageError("ray= options apply to engine='ray'; this run's engine is 'local'")
        return distribute
    if distribute is not None:
        raise UsageError("give engine='ray' or distribute=, not both")
    options = ray_options(ray)
    if not ray_installed():
        raise UsageError(f"the Ray engine needs Ray, which is not installed: {RAY_INSTALL}")
    return RayEngine(options)
