"""The ``portmargin`` command line (typer + rich).

A user error (a :class:`~portmargin.errors.PortmarginError`: bad file, field, parameter or
database) is one line on stderr and exit code 2; ``--debug`` shows its traceback. Anything
else is a bug and shows its traceback as Python does. File-system errors on the user's
paths become :class:`~portmargin.errors.InputError` where the file is opened.

The command modules import only typer, rich and this package's light modules at import
time; each command imports the engine in its body, so ``portmargin --help`` and
``portmargin --version`` start without NumPy, SciPy, SQLAlchemy, matplotlib or pyarrow.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer
from rich.markup import escape

from portmargin.cli import (
    _accounts,
    _backtest,
    _batch,
    _calibrate,
    _demo,
    _keys,
    _margin,
    _models,
    _monitor,
    _rules,
    _serve,
    _whatif,
)
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


def _print_version(value: bool) -> None:
    if value:
        from portmargin import __version__

        print(f"portmargin {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Portfolio margin and rules-based margin for crypto derivatives."""
    del debug, version


_demo.register(app)
_margin.register(app)
_rules.register(app)
_models.register(app)
_batch.register(app)
_whatif.register(app)
_monitor.register(app)
_accounts.register(app)
_serve.register(app)
_keys.register(app)
_backtest.register(app)
_calibrate.register(app)

# A NumPy scalar's repr (``np.float64(0.5)``) is noise in a message meant for a person.
_NUMPY_REPR = re.compile(r"np\.(?:float|int|bool_?)\d*\(([^()]*)\)")


def user_message(exc: PortmarginError) -> str:
    """The one line printed for a user error: the message, NumPy scalar reprs unwrapped."""
    return " ".join(_NUMPY_REPR.sub(r"\1", str(exc)).split())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; a user error is one line on stderr and exit code 2.

    Usage errors are reported by typer itself (exit code 2); a :class:`PortmarginError`
    prints one line (``--debug`` re-raises it with its traceback). Other exceptions are not
    caught: they are bugs, and their traceback is what a report needs.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="portmargin", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PortmarginError as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(user_message(exc))}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
