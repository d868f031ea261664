"""The ``livesale`` command: the server and the merchant's tools.

``main(argv) -> int`` is the entry point, so tests call ``main([...])`` directly. Every error
ends in one line on stderr and a non-zero exit code, never a traceback. The commands live in
one module per area (``server``, ``catalogue``, ``shows``, ``orders``), registered on the group
of :mod:`livesale.cli.base` when this package is imported.
"""

from __future__ import annotations

import sys

import click

from livesale.cli import catalogue, orders, server, shows
from livesale.cli.base import cli, err

#: The command modules, imported for the commands they register.
COMMANDS = (server, catalogue, shows, orders)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        cli.main(args=argv, prog_name="livesale", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
