"""Resolve ``--model`` into the scorer bundle that a rescoring run scores with.

Accepted forms:

* ``models:/lead-scorer@ALIAS`` (default ``@champion``): loaded as an MLflow pyfunc by the
  service's loader, ``serving.model_loading.load_champion``, which returns the bundle behind it;
* ``models:/lead-scorer/VERSION``: that registered version, downloaded from the registry;
* a folder with ``bundle.json``: a scorer bundle saved by training;
* a folder with ``MLmodel``: a logged leadscore MLflow model, whose ``bundle`` artifact is the bundle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from leadscore.errors import ConfigError, ModelNotFoundError
from serving.backtest_scores import load_bundle
from training.bundle import BUNDLE_ARTIFACT, MANIFEST_FILE, ScorerBundle
from training.registry import CHAMPION, MODEL_NAME

logger = logging.getLogger(__name__)

DEFAULT_MODEL_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
_MLMODEL_FILE = "MLmodel"


@dataclass(frozen=True)
class ResolvedModel:
    """The bundle to score with and the ``--model`` value it came from."""

    bundle: ScorerBundle
    uri: str


def resolve_model(model_uri: str | None, tracking_uri: str, download_dir: Path) -> ResolvedModel:
    """Load the bundle named by ``model_uri``; registered versions are downloaded into ``download_dir``."""
    uri = model_uri or DEFAULT_MODEL_URI
    if uri.startswith("models:/"):
        bundle = load_bundle(uri, tracking_uri, None, download_dir)
    else:
        bundle = ScorerBundle.load(_bundle_folder(Path(uri.removeprefix("file://"))))
    logger.info("rescoring with model %s (bundle %s)", uri, bundle.bundle_version)
    return ResolvedModel(bundle=bundle, uri=uri)


def _bundle_folder(path: Path) -> Path:
    if (path / MANIFEST_FILE).is_file():
        return path
    if (path / _MLMODEL_FILE).is_file():
        mlmodel = yaml.safe_load((path / _MLMODEL_FILE).read_text(encoding="utf-8"))
        try:
            relative = mlmodel["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
        except (KeyError, TypeError):
            raise ModelNotFoundError(
                f"MLflow model {path} has no {BUNDLE_ARTIFACT!r} artifact, so leadscore training did not "
                "log it; give a model registered by 'leadscore train'"
            ) from None
        return path / relative
    raise ConfigError(
        f"--model {path} is neither a models:/ URI nor a folder with {MANIFEST_FILE} (a scorer bundle) or "
        f"{_MLMODEL_FILE} (an MLflow model); give models:/{MODEL_NAME}@champion or a bundle folder"
    )
