"""Root of the ``leadscore`` command; each stage's commands live in their own module here."""

from __future__ import annotations

import sys

import click

from leadscore import __version__
from leadscore.errors import LeadscoreError
from leadscore.logs import configure_logging


class _Root(click.Group):
    """Turns a LeadscoreError into a one-line message and exit status 2, without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LeadscoreError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=_Root)
@click.version_option(__version__, prog_name="leadscore")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Minimum level of log lines written to stderr.",
)
def cli(log_level: str) -> None:
    """Score sales leads and route them to the right rep."""
    configure_logging(log_level)


def _register_commands() -> None:
    """Attach each stage's commands in pipeline order: data, features, training, serving."""
    from leadscore.cli import (
        backtest_cmd,
        data_cmd,
        demo_cmd,
        features_cmd,
        report_cmd,
        rescore_cmd,
        roster_cmd,
        route_cmd,
        serve_cmd,
        sla_cmd,
        train_cmd,
    )

    cli.add_command(data_cmd.data)
    cli.add_command(features_cmd.features)
    train_cmd.register(cli)
    cli.add_command(backtest_cmd.backtest)
    cli.add_command(serve_cmd.serve)
    cli.add_command(roster_cmd.reps)
    cli.add_command(sla_cmd.sla)
    cli.add_command(route_cmd.route)
    cli.add_command(rescore_cmd.rescore)
    cli.add_command(report_cmd.report)
    cli.add_command(demo_cmd.demo)


_register_commands()
