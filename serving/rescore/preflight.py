"""Checks that run before any lead is scored, so a bad output folder or database fails in seconds.

Each of these problems would otherwise show only after every chunk is scored, as a traceback.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from leadscore.errors import ConfigError
from serving.rescore.export import OutputPaths

logger = logging.getLogger(__name__)


def check_outputs_outside_data(paths: OutputPaths, data_dir: Path) -> None:
    """Raise ConfigError when an output file or the output lock resolves inside ``data_dir``.

    Symbolic links are resolved first, so a link that points into the data folder is caught
    too. Writing there could replace an input table (``--out data/leads.parquet``) and would
    change the input fingerprint that keys the run folder.
    """
    data_root = Path(data_dir).resolve()
    for path in (*paths.all(), paths.lock):
        resolved = path.resolve()
        if resolved == data_root or resolved.is_relative_to(data_root):
            raise ConfigError(
                f"--out {paths.scores} would write {resolved}, inside the data folder {data_root}; "
                "the outputs could overwrite input tables, so choose an --out outside --data"
            )


def check_output_folder(paths: OutputPaths) -> None:
    """Create the folder of ``--out`` if needed and raise ConfigError unless a file can be written there."""
    folder = paths.scores.parent
    for path in paths.all():
        if path.is_dir():
            raise ConfigError(f"--out {paths.scores}: {path} is a folder; give --out a file path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create the --out folder {folder} ({error.strerror or error}); "
            "create it yourself or choose another --out"
        ) from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".leadscore-write-check-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot write to the --out folder {folder} ({error.strerror or error}); "
            "give this user write permission there or choose another --out"
        ) from None


def check_database(db_url: str, label: str) -> None:
    """Open and close one connection to the routing database; raise ConfigError if that fails.

    ``label`` is the URL with its password hidden, the only form that goes into the message.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from serving.store import open_store

    try:
        store = open_store(db_url, create=False)
    except OSError as error:
        raise _unreachable(label, error) from None
    try:
        with store.engine.connect():
            pass
    except SQLAlchemyError as error:
        raise _unreachable(label, getattr(error, "orig", None) or error) from None
    finally:
        store.dispose()
    logger.info("routing database %s is reachable", label)


def _unreachable(label: str, error: BaseException) -> ConfigError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ConfigError(
        f"cannot connect to the routing database --db {label}: {reason}; check the URL, that the "
        "database server is running and that this user may log in, or pass another --db"
    )
