"""Load the ``champion`` of ``lead-scorer`` through the pyfunc that training registered.

The service loads ``models:/lead-scorer@champion`` with ``mlflow.pyfunc.load_model``, the
same path that ``mlflow models serve`` and Spark's ``spark_udf`` take, and then takes the
``ScorerBundle`` that the pyfunc's ``load_context`` read. Scoring calls the bundle directly
through ``training.scorer.score_payload``, which skips the pyfunc's DataFrame round trip but
runs the same code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from leadscore.errors import ModelNotFoundError
from training.bundle import ScorerBundle
from training.registry import CHAMPION, MODEL_NAME, require_version_by_alias
from training.tracking import active_tracking_uri, normalize_tracking_uri, tracking_client

logger = logging.getLogger(__name__)

# The alias can move while a model loads; loading is retried this many times before giving up.
MAX_LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class ChampionModel:
    """The loaded pyfunc, the scorer bundle behind it and where it came from."""

    pyfunc: Any
    bundle: ScorerBundle
    registry_version: str
    run_id: str | None
    model_uri: str
    load_seconds: float

    @property
    def model_version(self) -> str:
        """Return the bundle version that score records carry."""
        return self.bundle.bundle_version


def champion_uri(alias: str = CHAMPION) -> str:
    """Return the registry URI of ``lead-scorer`` at ``alias``."""
    return f"models:/{MODEL_NAME}@{alias}"


def champion_version(tracking_uri: str, alias: str = CHAMPION) -> str:
    """Return the registry version number ``alias`` points at, or raise ModelNotFoundError."""
    client = tracking_client(normalize_tracking_uri(tracking_uri))
    return str(require_version_by_alias(client, alias).version)


def load_champion(tracking_uri: str, alias: str = CHAMPION) -> ChampionModel:
    """Load ``lead-scorer@alias`` as an MLflow pyfunc and return it with its scorer bundle.

    Raises ModelNotFoundError when the alias does not exist or the loaded model has no
    scorer bundle (it was not logged by leadscore training).
    """
    uri = normalize_tracking_uri(tracking_uri)
    client = tracking_client(uri)
    for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
        before = require_version_by_alias(client, alias)
        started = time.perf_counter()
        pyfunc = _load_pyfunc(uri, champion_uri(alias))
        after = require_version_by_alias(client, alias)
        if before.version == after.version:
            bundle = _bundle_of(pyfunc, before.version)
            seconds = time.perf_counter() - started
            logger.info(
                "loaded %s version %s (bundle %s, run %s) in %.1f s",
                champion_uri(alias),
                before.version,
                bundle.bundle_version,
                before.run_id,
                seconds,
            )
            return ChampionModel(
                pyfunc=pyfunc,
                bundle=bundle,
                registry_version=str(before.version),
                run_id=before.run_id,
                model_uri=champion_uri(alias),
                load_seconds=seconds,
            )
        logger.warning(
            "alias %s moved from version %s to %s while loading (attempt %d of %d); loading again",
            alias,
            before.version,
            after.version,
            attempt,
            MAX_LOAD_ATTEMPTS,
        )
    raise ModelNotFoundError(
        f"the {alias!r} alias of {MODEL_NAME!r} moved during each of {MAX_LOAD_ATTEMPTS} load attempts; "
        "start the service again once promotions have finished"
    )


def _load_pyfunc(tracking_uri: str, model_uri: str) -> Any:
    import mlflow

    with active_tracking_uri(tracking_uri):
        return mlflow.pyfunc.load_model(model_uri)


def _bundle_of(pyfunc: Any, version: str) -> ScorerBundle:
    """Return the ScorerBundle held by the pyfunc's python model, or raise ModelNotFoundError."""
    python_model = pyfunc.unwrap_python_model()
    # The model-from-code file defines its own class object when MLflow runs it, so the
    # wrapper is recognised by its ``bundle`` attribute rather than by isinstance.
    bundle = getattr(python_model, "bundle", None)
    if not isinstance(bundle, ScorerBundle):
        raise ModelNotFoundError(
            f"{MODEL_NAME} version {version} is a {type(python_model).__name__} without a scorer bundle; "
            "register models with 'leadscore train'"
        )
    return bundle
