"""What every ``livesale`` command shares: the command group, the consoles, one-line errors,
the merchant commands' client options, and printing tables and JSON.

Text that came from outside (nicknames, product titles, addresses, server answers) goes through
:func:`plain`: never read as rich markup, control characters shown as escapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from livesale.client import Client, ClientError
from livesale.config import DEFAULT_DATA_DIR
from livesale.money import format_amount
from livesale.rows import FileProblems

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Failure(click.ClickException):
    """An error for a person: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        err.print(f"[bold red]error:[/] {escape(plain(self.message))}")


def fail(message: str) -> Failure:
    return Failure(message.replace("\n", " "))


@click.group(
    context_settings={"auto_envvar_prefix": "LIVESALE", "help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="livesale")
def cli() -> None:
    """livesale: self-hosted live-stream shopping."""


def client_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--server",
                envvar="LIVESALE_SERVER",
                default=None,
                help="Server URL (default: the local data directory's server).",
            ),
            click.option(
                "--api-key", envvar="LIVESALE_API_KEY", default=None, help="Merchant API key."
            ),
            click.option(
                "--data-dir",
                envvar="LIVESALE_DATA_DIR",
                default=str(DEFAULT_DATA_DIR),
                type=click.Path(file_okay=False, path_type=Path),
                help="Where to find a local server and its key.",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        ]
    ):
        command = option(command)
    return command


def connect(server: str | None, api_key: str | None, data_dir: Path) -> Client:
    try:
        return Client.resolve(server, api_key, data_dir)
    except ClientError as exc:
        raise fail(str(exc)) from exc


def call(client: Client, method: str, path: str, body: Any = None, *, retries: int = 0) -> Any:
    """The server's answer, or a :class:`Failure` with its problem's detail (exit code 1).
    ``retries``: see :meth:`Client.request`."""
    try:
        return client.request(method, path, body, retries=retries)
    except ClientError as exc:
        raise fail(str(exc)) from exc


def money(value: dict[str, Any]) -> str:
    return f"{value['currency']} {format_amount(int(value['amount']), value['currency'])}"


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def plain(value: object) -> str:
    """``value`` as text safe for a terminal: control characters (escape sequences, carriage
    returns, ...) written as their ``\\x..`` escapes. Print it with markup off, or ``escape()``
    it into markup."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def say(*lines: str) -> None:
    """Print ``lines`` of outside text on standard output, each as :func:`plain` text."""
    for line in lines:
        out.print(plain(line), markup=False)


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    whole: Collection[str] = (),
) -> None:
    """Print rows under ``columns``; every cell is outside text (:func:`plain`, no markup).
    The cells of the ``whole`` columns (ids to copy) are never broken over lines."""
    table = Table(title=Text(plain(title)), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in whole)
    for row in rows:
        table.add_row(*(Text(plain(c)) for c in row))
    out.print(table)


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}") from exc


def print_bad_rows(path: Path, problems: FileProblems) -> None:
    for row in problems.rows:
        err.print(plain(f"{path}:{row.line}: {row}"), markup=False)
