"""``biasprobe holistic sentences``: write the expanded HolisticBias sentences to a file.

Mounted on the main command line with ``app.add_typer(holistic_app, name="holistic")``. pandas is
imported inside the command, so that ``--help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biasprobe.cliutil import safe_text, user_errors

app = typer.Typer(
    name="holistic",
    help="HolisticBias (Smith et al. 2022): the v1.1 sentences, expanded as the dataset's own "
    "generator expands them (docs/holistic.md).\n\n"
    "Example: biasprobe holistic sentences --out holistic-v1.1.csv",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("sentences")
@user_errors
def sentences_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="File to write: FILE.csv, or FILE.parquet (needs the parquet extra: "
            "pip install 'biasprobe[parquet]'). An existing file is never replaced.",
            show_default=False,
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", metavar="VERSION", help="Dataset version.")
    ] = "v1.1",
) -> None:
    """Write every HolisticBias sentence with its metadata (566,625 rows for v1.1; columns text,
    axis, bucket, descriptor, descriptor_gender, descriptor_preference, noun, plural_noun,
    noun_gender, noun_phrase, plural_noun_phrase, noun_phrase_type, template, first_turn_only,
    must_be_noun).

    Example: biasprobe holistic sentences --out holistic-v1.1.csv
    """
    from biasprobe.holistic.dataset import sentences
    from biasprobe.holistic.export import write_sentences

    path = write_sentences(out, version=version)
    typer.echo(f"wrote {len(sentences(version)):,} sentences to {safe_text(path)}")
