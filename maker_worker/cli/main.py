"""Entry point of ``maker``: bad input and MakerErrors become one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import sys

import typer
from typer.exceptions import TyperException

from maker_worker.cli import calibrate, jobs, run  # noqa: F401  (registers the commands)
from maker_worker.cli.app import EXIT_BAD_INPUT, app
from maker_worker.errors import MakerError


def main(argv: list[str] | None = None) -> None:
    """Run ``maker``; exit 2 with one line for bad input, 130 on Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="maker", standalone_mode=False)
    except TyperException as exc:  # click usage errors: bad option values, unknown options
        _fail(exc.format_message() + _hint(exc))
    except MakerError as exc:
        _fail(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        print("maker: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _hint(exc: TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    return f" (see `{ctx.command_path} --help`)" if ctx is not None else ""


def _fail(message: str) -> None:
    print(f"maker: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
