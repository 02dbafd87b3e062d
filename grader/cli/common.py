"""What every ``grade`` sub-command shares: the options defined once, and the one error boundary.

:func:`boundary` is the only place a user-facing error is printed: a
:class:`~grader.errors.GraderError` prints its message (Rich markup escaped, since messages quote
file names and students' text) and exits with its ``exit_code``; Ctrl-C or SIGTERM prints one
line and exits with ``128 + signal`` (130, 143). Library code raises; it never prints or exits.
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from grader.cleantext import terminal_text
from grader.errors import GraderError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_NOT_ALL_GRADED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def output_option(help_text: str = "The graded output folder.") -> Callable[[F], F]:
    return click.option("-o", "--output", "out_dir", default="graded", show_default=True,
                        type=click.Path(file_okay=False), help=help_text)


def rubric_option() -> Callable[[F], F]:
    return click.option("--rubric", "rubric_path", default=None, type=click.Path(dir_okay=False),
                        help="Rubric file (default: rubrics/sheet11.toml).")


def sandbox_option() -> Callable[[F], F]:
    return click.option("--sandbox", "sandbox_mode", default="auto", show_default=True,
                        type=click.Choice(["auto", "bwrap", "none"]),
                        help="How student kernels are confined; `none` must be asked for knowingly.")


def plain(value: object) -> str:
    """What the CLI prints that came from a submission or a file (a file name, a member's name, a
    message quoting them), for a plain printer (``click.echo``): one line, terminal escapes
    removed and every other control character (CR, newline, BEL, ESC, bidi) written out as
    ``[U+XXXX]`` (grader/cleantext.py's :func:`~grader.cleantext.terminal_text`). Every printer
    passes such text through this or :func:`shown`."""
    return terminal_text(value)


def shown(value: object) -> str:
    """:func:`plain` for a Rich console: also Rich's markup escaped, so ``[/]`` or ``[red]`` in a
    name is printed as written (it crashed `grade pack`) and never styles anything."""
    return escape(terminal_text(value))


def print_error(exc: GraderError, console: Console | None = None) -> None:
    """The one printer of user-facing errors."""
    (console or Console(stderr=True)).print(f"[bold red]error:[/] {shown(exc)}", soft_wrap=True,
                                            highlight=False)


def fail(exc: GraderError, console: Console | None = None) -> NoReturn:
    print_error(exc, console)
    sys.exit(exc.exit_code)


def interrupted_exit(signum: int, console: Console | None = None, what: str = "") -> NoReturn:
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    (console or Console(stderr=True)).print(
        f"[yellow]Interrupted ({name}).[/] {shown(what)}", soft_wrap=True, highlight=False)
    sys.exit(128 + signum)


@contextmanager
def boundary(console: Console | None = None, interrupted: str = "") -> Iterator[None]:
    """Turn the grader's errors and interrupts into a printed line and an exit code."""
    try:
        yield
    except GraderError as exc:
        fail(exc, console)
    except Interrupted as exc:
        interrupted_exit(exc.signum, console, interrupted)
    except KeyboardInterrupt:
        interrupted_exit(signal.SIGINT, console, interrupted)
