"""``biasprobe cache info|clear``: inspect or remove the result cache (:mod:`biasprobe.cache`).

Mounted on the main command line with ``app.add_typer(cache_app, name="cache")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biasprobe.cliutil import safe_text, user_errors

app = typer.Typer(
    name="cache",
    help="Inspect or clear the result cache of live models (see biasprobe run --cache).\n\n"
    "Example: biasprobe cache info --json",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CacheOption = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Cache folder (default: $BIASPROBE_CACHE_DIR, else $XDG_CACHE_HOME/biasprobe or "
        "~/.cache/biasprobe).",
        show_default=False,
    ),
]


def _describe(model: dict[str, Any]) -> str:
    """What a model identity stands for, in a few words."""
    weights = model.get("commit") or ", ".join(
        f"{name} {digest[:12]}"
        for name, digest in sorted((model.get("weights_sha256") or {}).items())
    )
    return (
        f"{model.get('model_class')} {model.get('dtype')} on {model.get('device_kind')}; "
        f"weights {weights}; torch {model.get('torch')}, transformers {model.get('transformers')}"
    )


@app.command()
@user_errors
def info(
    cache: CacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Where the cache is, its size on disk, and its entries per model identity.

    Example: biasprobe cache info --cache /scratch/biasprobe-cache
    """
    import json

    from biasprobe.cache import (
        ResultCache,
        check_cache_folder,
        database_files,
        format_bytes,
        resolve_cache_dir,
    )

    folder = check_cache_folder(resolve_cache_dir(cache))
    files = database_files(folder)
    size = sum(f.stat().st_size for f in files)
    models = []
    if files:
        with ResultCache(folder, readonly=True) as rc:  # also where the folder is read-only
            models = rc.summary()
    if as_json:
        out = {
            "dir": str(folder),
            "files": [f.name for f in files],
            "bytes": size,
            "models": models,
        }
        typer.echo(json.dumps(out, indent=2))
        return
    if not files:
        typer.echo(f"cache: {safe_text(folder)} (no cache database yet)")
        return
    typer.echo(f"cache: {safe_text(folder)} ({format_bytes(size)} in {len(files)} file(s))")
    typer.echo(f"{len(models)} model identit{'y' if len(models) == 1 else 'ies'}:")
    for m in models:
        n = m["entries"]
        # the masked-LM kinds always, then every other kind that has entries
        kinds = ["pair", "mask", "chain", "prior"]
        kinds += [k for k in sorted(n) if k not in kinds and n.get(k)]
        counts = ", ".join(f"{k} {n.get(k, 0)}" for k in kinds)
        typer.echo(
            f"  {safe_text(m['model'].get('name'))}  identity {m['identity'][:12]}  "
            f"entries: {counts}  ({format_bytes(m['value_bytes'])}; last used "
            f"{safe_text(m['last_used'])})"
        )
        typer.echo(f"      {safe_text(_describe(m['model']))}")


@app.command()
@user_errors
def clear(cache: CacheOption = None) -> None:
    """Remove the cache database files biasprobe created (no other file of the folder).

    Example: biasprobe cache clear
    """
    from biasprobe.cache import clear as clear_cache
    from biasprobe.cache import resolve_cache_dir

    folder = resolve_cache_dir(cache)
    removed = clear_cache(folder)
    if not removed:
        typer.echo(f"cache: {safe_text(folder)} holds no cache database; nothing removed")
        return
    names = ", ".join(f.name for f in removed)
    typer.echo(f"cache: removed {safe_text(names)} from {safe_text(folder)}")
