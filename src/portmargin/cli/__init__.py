"""The ``portmargin`` command line (typer + rich).

Every command prints one clear line and exits non-zero on bad input; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys

import typer

from portmargin.cli import _accounts, _batch, _demo, _margin, _models, _monitor, _rules, _whatif
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


_demo.register(app)
_margin.register(app)
_rules.register(app)
_models.register(app)
_batch.register(app)
_whatif.register(app)
_monitor.register(app)
_accounts.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning expected errors into one line and exit code 2.

    Usage errors are reported by typer itself (exit code 2); a :class:`PortmarginError`
    (bad file, field or parameter) prints one line; ``--debug`` re-raises with a traceback.
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
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except (OSError, ValueError) as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc.__class__.__name__}: {exc}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
