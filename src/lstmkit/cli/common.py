"""What the ``lstmkit`` commands share: the app, consoles, errors, run directories, input files."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["app", "console", "errors", "fail", "new_run", "read_text_file"]

app = typer.Typer(
    name="lstmkit",
    help="""LSTM networks for sequence data, trained right and judged against the classical methods.

    Examples:

      lstmkit forecast --data airline --horizon 12

      lstmkit classify --data italypowerdemand

      lstmkit textgen train stdlib --epochs 5

      lstmkit paper --profile smoke reber

      lstmkit forecast --help
    """,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def fail(message: str) -> None:
    # one line whatever the terminal width, and brackets in the message are text, not markup
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def new_run(base: Path, name: str) -> Iterator[tuple[Path, Path]]:
    """Write a run directory whole or not at all.

    Yields a temporary directory to write into and the run's final name (``base/name-<time>``);
    when the block completes the directory is renamed into place, when it fails it is removed.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"{name}-{stamp}"
    while True:
        # creating the temporary directory claims the name: two runs started in the same second (two
        # processes, say) cannot both take it. A run that held the name and finished has renamed its
        # temporary directory before this one could be created, so the final name is checked again
        tmp = base / f".{final.name}.tmp"
        if not final.exists():
            try:
                tmp.mkdir()
            except FileExistsError:
                pass
            else:
                if not final.exists():
                    break
                tmp.rmdir()
        final = base / f"{name}-{stamp}-{uuid.uuid4().hex[:4]}"
    try:
        yield tmp, final
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_text_file(path: Path) -> str:
    """A UTF-8 text file; empty or undecodable files are one-line errors (with the byte offset)."""
    if not path.is_file():
        fail(f"{path} is not a file")
    raw = path.read_bytes()
    if not raw.strip():
        fail(f"{path} is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 text: undecodable byte 0x{raw[error.start]:02x} at offset {error.start}; "
             "re-save it as UTF-8")
    raise AssertionError  # unreachable
