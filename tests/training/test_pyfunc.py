"""The lead-scorer MLflow pyfunc: logged as code, loaded without pickle, raw records in."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from leadscore.errors import DataValidationError
from tests.training import scorer_setup
from training.pyfunc_model import records_from_input
from training.registry import CHALLENGER, MODEL_NAME, register_challenger
from training.scorer import EXAMPLE_LEAD, SCORE_COLUMNS, example_lead_for
from training.tracking import (
    active_tracking_uri,
    default_artifact_location,
    ensure_experiment,
    log_scorer_model,
    scorer_signature,
    tracking_client,
)

REGISTERED_URI = f"models:/{MODEL_NAME}@{CHALLENGER}"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store containing one registered lead-scorer version (alias challenger)."""
    root = tmp_path_factory.mktemp("pyfunc")
    uri = scorer_setup.empty_tracking_uri(root / "store")
    bundle_dir = scorer_setup.bundle().save(root / "bundle")
    client = tracking_client(uri)
    experiment_id = ensure_experiment(client, "pyfunc-test", default_artifact_location(uri, root))
    with active_tracking_uri(uri), mlflow.start_run(experiment_id=experiment_id) as run:
        info = log_scorer_model(bundle_dir, EXAMPLE_LEAD)
    register_challenger(client, info.model_uri, run.info.run_id)
    return uri


def _refuse_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("loading lead-scorer must not unpickle anything")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)


def test_registered_model_loads_without_pickle(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_pickle(monkeypatch)
    with active_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(REGISTERED_URI)

    scores = model.predict([scorer_setup.open_lead()], params={"as_of": scorer_setup.AS_OF})

    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert scores.loc[0, "lead_id"] == "NEW-1"


def test_saved_model_has_no_pickle_files(tracking_uri: str, tmp_path: Path) -> None:
    with active_tracking_uri(tracking_uri):
        model_dir = Path(mlflow.artifacts.download_artifacts(REGISTERED_URI, dst_path=str(tmp_path)))

    files = [path for path in model_dir.rglob("*") if path.is_file()]
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))["flavors"]["python_function"]

    assert not [path for path in files if path.suffix in {".pkl", ".pickle", ".joblib", ".cloudpickle"}]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor
    assert flavor["model_code_path"].endswith("pyfunc_model.py")
    assert (model_dir / flavor["artifacts"]["bundle"]["path"] / "bundle.json").is_file()
    assert "lightgbm" not in yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))["flavors"]


def test_pyfunc_scores_single_raw_lead(tracking_uri: str) -> None:
    lead = scorer_setup.open_lead()
    assert len(lead["activities"]) == 2
    with active_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(REGISTERED_URI)

    scores = model.predict(lead, params={"as_of": scorer_setup.AS_OF})

    p_convert = float(scores.loc[0, "p_convert"])
    assert len(scores) == 1
    assert 0.0 < p_convert < 1.0
    assert p_convert not in (0.0, 1.0)
    assert scores["p_convert"].dtype == np.float64
    assert scores.loc[0, "expected_value"] == pytest.approx(p_convert * scores.loc[0, "ltv"])
    assert scores.loc[0, "model_version"] == scorer_setup.bundle().bundle_version
    assert scores.loc[0, "reasons_positive"]


def test_pyfunc_per_row_options(tracking_uri: str) -> None:
    leads = [
        scorer_setup.open_lead("NEW-1"),
        scorer_setup.open_lead("NEW-2", channel="抖音"),
        scorer_setup.open_lead("NEW-3"),
    ]
    frame = pd.DataFrame(leads)
    frame["locale"] = ["en", "zh-CN", None]
    frame["as_of"] = [scorer_setup.AS_OF, scorer_setup.AS_OF, "2025-03-20T09:00:00+08:00"]
    with active_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(REGISTERED_URI)

    scores = model.predict(frame, params={"locale": "en"})
    direct = model.predict(leads[:1], params={"as_of": scorer_setup.AS_OF, "top_reasons": 0})

    assert scores["lead_id"].tolist() == ["NEW-1", "NEW-2", "NEW-3"]
    assert scores.loc[1, "flags"]["unseen_categories"] == {"channel": "抖音"}
    assert re.search(r"[\u4e00-\u9fff]", scores.loc[1, "reasons_positive"][0]["text"])
    assert scores.loc[2, "as_of"] == "2025-03-20T01:00:00+00:00"
    assert scores.loc[0, "p_convert"] == direct.loc[0, "p_convert"]
    assert direct.loc[0, "reasons_positive"] == []


def test_records_from_input_cleans_missing_values() -> None:
    frame = pd.DataFrame(
        [
            {"lead_id": "A", "channel": np.nan, "activities": np.array([{"type": "call", "rep_id": None}])},
            {"lead_id": "B", "channel": "WeCom", "activities": None},
        ]
    )

    records = records_from_input(frame)

    assert records[0] == {"lead_id": "A", "activities": [{"type": "call"}]}
    assert records[1] == {"lead_id": "B", "channel": "WeCom"}
    assert records_from_input({"lead_id": "C"}) == [{"lead_id": "C"}]
    with pytest.raises(DataValidationError, match="input item 2 is a str; send one object per lead"):
        records_from_input([{"lead_id": "A"}, "B"])
    with pytest.raises(DataValidationError, match="takes a DataFrame or a list of lead objects; got int"):
        records_from_input(42)


def test_signature_describes_score_records() -> None:
    from mlflow.models.signature import infer_signature

    from training.scorer import score_payload

    records = score_payload(scorer_setup.bundle(), [scorer_setup.open_lead()], as_of=scorer_setup.AS_OF)
    inferred = infer_signature(None, pd.DataFrame(records, columns=list(SCORE_COLUMNS))).outputs
    declared = scorer_signature().outputs

    assert declared.input_names() == inferred.input_names()
    for name in (
        "lead_id",
        "as_of",
        "p_convert",
        "ltv",
        "expected_value",
        "grade",
        "segment",
        "model_version",
    ):
        assert declared.input_dict()[name].type == inferred.input_dict()[name].type
    assert str(declared.input_dict()["reasons_positive"].type) == str(
        inferred.input_dict()["reasons_positive"].type
    )
    assert [spec.name for spec in scorer_signature().params.params] == ["as_of", "locale", "top_reasons"]


def test_example_lead_uses_fitted_categories() -> None:
    spec = scorer_setup.bundle().feature_spec

    example = example_lead_for(spec)

    for name, fitted in spec.categories.items():
        if name in example and fitted:
            assert example[name] in fitted, name
    assert example["lead_id"] == EXAMPLE_LEAD["lead_id"]
