"""Load the model card that training wrote: from a ``model_card.json`` file or from the MLflow registry.

From MLflow, the model's files are downloaded, the card is read from its scorer bundle, and
the evaluation plots of the training run (``plots/`` artifacts) are downloaded beside it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leadscore.errors import InputFileError, ModelNotFoundError
from training.bundle import BUNDLE_ARTIFACT, MODEL_CARD_FILE
from training.model_card import ModelCard
from training.tracking import active_tracking_uri, normalize_tracking_uri

logger = logging.getLogger(__name__)

PLOTS_ARTIFACT = "plots"


@dataclass(frozen=True)
class LoadedCard:
    """A model card, where it came from, and the training run's plot files (possibly none)."""

    card: ModelCard
    source: str
    plots: list[Path] = field(default_factory=list)


def parse_card(payload: Any, source: str) -> ModelCard:
    """Return the ModelCard in ``payload`` or raise InputFileError naming ``source``."""
    if not isinstance(payload, dict) or not payload:
        raise InputFileError(
            f"{source} does not contain a model card (expected a JSON object written by 'leadscore train')"
        )
    try:
        return ModelCard.from_dict(payload)
    except TypeError as error:
        raise InputFileError(
            f"{source} is not a leadscore model card ({error}); pass the model_card.json of a training run"
        ) from None


def load_card_file(path: Path) -> LoadedCard:
    """Read a ``model_card.json`` file; ``plots/`` PNG files beside it or one folder up are included."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"model card file {path} not found; pass the model_card.json of a training run")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(f"model card file {path} is not valid JSON: {error}") from None
    card = parse_card(payload, str(path))
    # MLflow run artifacts keep the card in report/ and the plots in plots/ next to it.
    plots: list[Path] = []
    for folder in (path.parent / PLOTS_ARTIFACT, path.parent.parent / PLOTS_ARTIFACT):
        if folder.is_dir():
            plots = sorted(folder.glob("*.png"))
            break
    return LoadedCard(card=card, source=str(path.resolve()), plots=plots)


def _bundle_dir(model_dir: Path, model_uri: str) -> Path:
    mlmodel_path = model_dir / "MLmodel"
    if not mlmodel_path.is_file():
        raise ModelNotFoundError(
            f"{model_uri} has no MLmodel file; pass the URI of a model logged by leadscore"
        )
    mlmodel = yaml.safe_load(mlmodel_path.read_text(encoding="utf-8"))
    try:
        relative = mlmodel["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
    except (KeyError, TypeError):
        raise ModelNotFoundError(
            f"{model_uri} has no {BUNDLE_ARTIFACT!r} artifact, so it was not logged by 'leadscore train'"
        ) from None
    return model_dir / relative


def load_card_from_mlflow(tracking_uri: str, model_uri: str, scratch: Path) -> LoadedCard:
    """Download model ``model_uri`` (for example models:/lead-scorer@champion) and return its card.

    Raises ModelNotFoundError when MLflow cannot resolve the URI or the model has no scorer
    bundle. Missing training plots are logged and leave the plot list empty.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    uri = normalize_tracking_uri(tracking_uri)
    with active_tracking_uri(uri):
        try:
            model_dir = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=str(scratch / "model"), tracking_uri=uri
                )
            )
        except MlflowException as error:
            raise ModelNotFoundError(
                f"cannot load {model_uri} from {uri}: {error.message}; check --model-uri "
                "(for example models:/lead-scorer@champion) and --tracking-uri"
            ) from None
        card_path = _bundle_dir(model_dir, model_uri) / MODEL_CARD_FILE
        if not card_path.is_file():
            raise ModelNotFoundError(f"{model_uri} has no {MODEL_CARD_FILE} in its scorer bundle; retrain it")
        card = parse_card(
            json.loads(card_path.read_text(encoding="utf-8")), f"{model_uri} ({MODEL_CARD_FILE})"
        )

        run_id = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")).get("run_id")
        plots: list[Path] = []
        if run_id:
            try:
                plots_dir = Path(
                    mlflow.artifacts.download_artifacts(
                        run_id=run_id,
                        artifact_path=PLOTS_ARTIFACT,
                        dst_path=str(scratch / "run"),
                        tracking_uri=uri,
                    )
                )
                plots = sorted(plots_dir.glob("*.png"))
            except MlflowException as error:
                logger.warning("training run %s of %s has no plots: %s", run_id, model_uri, error.message)
    logger.info(
        "loaded the model card of %s (bundle %s, %d plots)", model_uri, card.bundle_version, len(plots)
    )
    return LoadedCard(card=card, source=f"{model_uri} @ {uri}", plots=plots)
