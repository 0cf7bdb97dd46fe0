"""The ``portmargin`` command line (typer + rich).

Every command prints one clear line and exits non-zero on bad input; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys

import click
import typer

from portmargin.cli import _accounts, _batch, _margin, _models, _monitor, _whatif
from portmargin.cli._common import err_console
from portmargin.errors import PortmarginError

__all__ = ["app", "main"]

app = typer.Typer(
    name="portmargin",
    help="Portfolio margin and rules-based margin for crypto derivatives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    """Portfolio margin and rules-based margin for crypto derivatives."""
    del debug


_margin.register(app)
_models.register(app)
_batch.register(app)
_whatif.register(app)
_monitor.register(app)
_accounts.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning expected errors into one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="portmargin", standalone_mode=False)
    except PortmarginError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except (OSError, ValueError) as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc.__class__.__name__}: {exc}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
