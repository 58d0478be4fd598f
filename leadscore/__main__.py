"""Allow ``python -m leadscore`` as well as the ``leadscore`` console script."""

from leadscore.cli.main import cli

if __name__ == "__main__":
    cli()
