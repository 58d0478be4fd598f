"""``leadscore serve``: run the scoring and routing service (BentoML) until stopped."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings TOML file [default: ./leadscore.toml when present, else built-in settings].",
)
@click.option(
    "--host", default=None, help="IP address to listen on [default: the host setting, else 127.0.0.1]."
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port to listen on [default: the port setting, else 3000].",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking and registry URI holding the 'lead-scorer' champion "
    "[default: the tracking_uri setting, else sqlite:///WORK_DIR/mlflow.db].",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    help="SQLAlchemy URL of the routing database (sqlite:///FILE or postgresql+psycopg://...) "
    "[default: the db_url setting, else sqlite:///WORK_DIR/routing.db].",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Routing policy TOML file [default: the policy_file setting, else the shipped policy].",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="File whose first line is the bearer token clients must send "
    "(alternative to the LEADSCORE_API_TOKEN environment variable) [default: the token_file setting, "
    "else none].",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Serve without authentication when no token is configured; for a trusted machine only.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes; the machine's CPUs are split evenly between their LightGBM threads.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Largest request body accepted, in bytes; larger ones get HTTP 413 "
    "[default: the max_request_bytes setting, else 10485760 (10 MiB)].",
)
def serve(
    config_file: Path | None,
    host: str | None,
    port: int | None,
    tracking_uri: str | None,
    db_url: str | None,
    policy_file: Path | None,
    token_file: Path | None,
    insecure: bool,
    workers: int,
    max_request_bytes: int | None,
) -> None:
    """Serve POST /score, /route, /activities, GET/PUT /reps and GET /sla/overdue over HTTP.

    Refuses to start without a bearer token (LEADSCORE_API_TOKEN or --token-file) unless
    --insecure is given. Stop it with Ctrl+C or SIGTERM.
    """
    from leadscore.settings import load_settings
    from serving.launch import prepare_launch, serve_forever

    settings = load_settings(
        config_file,
        host=host,
        port=port,
        tracking_uri=tracking_uri,
        db_url=db_url,
        policy_file=policy_file,
        token_file=token_file,
        max_request_bytes=max_request_bytes,
    )
    plan = prepare_launch(settings, workers=workers, insecure=insecure)
    serve_forever(plan)
