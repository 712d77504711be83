"""`edgescore`: the one command line of the project. The client's commands (edgescore.client.cli)
with three that run the other parts in this process: `serve` (the server), `agent` (a device
agent) and `eval` (the offline evaluations, edgescore.evaluation.cli).

The only module of the `edgescore` package that may import the server, the agent and the
evaluations; it imports them when their command runs, so that a client-only install (no torch)
still runs every client command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from edgescore.client.cli import cli as client_cli
from edgescore.client.errors import EdgescoreError
from edgescore.evaluation.cli import evaluate


def _runs(name: str, extra: str, module: str, help: str) -> click.Command:
    """A command that hands its arguments to `module`'s own argument parser (`--help` included),
    importing the module when it runs."""

    @click.command(name, help=help,
                   context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def run(args: Sequence[str]) -> None:
        try:
            entry = importlib.import_module(module).main
        except ImportError as exc:
            raise click.ClickException(f"`edgescore {name}` needs the {extra} extra: "
                                       f"pip install 'edgescore[{extra}]' ({exc})") from None
        sys.exit(entry(list(args)))

    return run


serve = _runs("serve", "server", "edgescore.server.main",
              "Run the server (edgescore-server; needs edgescore[server]): "
              "`edgescore serve --help`.")
agent = _runs("agent", "agent", "edgescore.device_agent.main",
              "Run a device agent (edgescore-agent; needs edgescore[agent]): "
              "`edgescore agent --help`.")


# The client's group (its connection options, its commands) with the three commands added: a
# group of its own, so that the client's stays the client's alone.
cli = click.Group(
    "edgescore",
    commands={**client_cli.commands, "serve": serve, "agent": agent, "eval": evaluate},
    params=client_cli.params,
    callback=client_cli.callback,
    help=client_cli.help,
    context_settings=client_cli.context_settings,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (1: a server error, a batch row that failed or a
    search that scored nothing; 2: a usage error)."""
    try:
        # Outside standalone mode click returns the code of a command's ctx.exit(code) (batch's
        # 1 for failed rows) instead of raising; commands themselves return None.
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="edgescore",
                        standalone_mode=False)
    except EdgescoreError as exc:
        click.echo(f"error: {exc.code.name}: {exc.details}", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
