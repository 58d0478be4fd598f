"""``leadscore data ...``: import CRM exports, adapt public datasets, generate synthetic history."""

from __future__ import annotations

import click


@click.group()
def data() -> None:
    """Bring CRM history into a data folder of canonical Parquet tables."""


def _register_subcommands() -> None:
    # Each subcommand lives in its own module; add one line per module here.
    from leadscore.cli import data_import_cmd

    data.add_command(data_import_cmd.import_command)
    data.add_command(data_import_cmd.validate_command)
    data.add_command(__import__("leadscore.cli.data_generate_cmd", fromlist=["_"]).generate_command)
    data.add_command(__import__("leadscore.cli.data_public_cmd", fromlist=["_"]).public_command)


_register_subcommands()
