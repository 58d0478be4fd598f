"""The scorer's row path gives the table path's score records, and its errors, for small payloads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from leadscore.errors import DataValidationError
from leadscore.i18n import parse_locale
from tests.features import payload_leads
from tests.training import scorer_setup
from training import row_scorer
from training.bundle import ScorerBundle
from training.ltv import LtvModel
from training.scorer import parse_as_of, score_payload, split_records


def _row_path(
    bundle: ScorerBundle, records: Sequence[Mapping[str, Any]], as_of: str, **options: Any
) -> list[dict[str, Any]] | None:
    """Score on the row path alone, as score_payload does before it falls back to the tables."""
    leads, activities, stage_changes, orders = split_records(records)
    for lead in leads:
        for attribute in bundle.attributes:
            lead.setdefault(attribute.name, None)
    return row_scorer.score_small_payload(
        bundle,
        leads,
        activities,
        stage_changes,
        orders,
        cutoff=parse_as_of(as_of, bundle.feature_config.timezone),
        locale=parse_locale(options.get("locale", "en")),
        top_reasons=options.get("top_reasons", 3),
    )


def _declared_only(record: dict[str, Any], bundle: ScorerBundle) -> dict[str, Any]:
    """Return ``record`` without the custom attributes that ``bundle`` does not declare."""
    declared = {attribute.name for attribute in bundle.attributes}
    undeclared = {attribute.name for attribute in payload_leads.all_attributes()} - declared
    return {key: value for key, value in record.items() if key not in undeclared}


def _ltv_variant(bundle: ScorerBundle, kind: str) -> ScorerBundle:
    """Return ``bundle`` with an LTV model of ``kind`` built from its boosters (for the formula only)."""
    base = bundle.ltv_model
    assert base is not None
    booster = next(iter(base.boosters.values()))
    boosters = {
        "tweedie": {"tweedie": booster},
        "hurdle_gamma": {"occurrence": bundle.conversion.booster, "gamma": booster},
        "hurdle_log1p": {"occurrence": bundle.conversion.booster, "log1p": bundle.conversion.booster},
    }[kind]
    model = LtvModel(kind=kind, boosters=boosters, layout=base.layout, params={}, smearing=1.07)  # type: ignore[arg-type]
    return dataclasses.replace(bundle, ltv_model=model)


def _bundles() -> dict[str, ScorerBundle]:
    bundle = scorer_setup.bundle()
    without_prior = dataclasses.replace(
        bundle, conversion=dataclasses.replace(bundle.conversion, prior_weight=0.0), rule_prior=None
    )
    return {
        "trained": bundle,
        "custom-attributes": dataclasses.replace(bundle, attributes=payload_leads.all_attributes()),
        "no-rule-prior": without_prior,
        "no-ltv-model": dataclasses.replace(bundle, ltv_model=None, ltv_fallback=1234.5),
        "ltv-tweedie": _ltv_variant(bundle, "tweedie"),
        "ltv-hurdle-gamma": _ltv_variant(bundle, "hurdle_gamma"),
        "ltv-hurdle-log1p": _ltv_variant(bundle, "hurdle_log1p"),
    }


@pytest.mark.parametrize("variant", list(_bundles()))
def test_row_path_equals_table_path_per_lead(variant: str) -> None:
    bundle = _bundles()[variant]
    cases = payload_leads.lead_cases(
        7, timezone=bundle.feature_config.timezone, count=60, open_at_cutoff=True
    )
    unseen = 0
    for number, case in enumerate(cases):
        record = _declared_only(case.record, bundle)
        as_of = payload_leads.render_micros(case.cutoff, number)
        options = {"locale": ("en", "zh-CN")[number % 2], "top_reasons": (3, 0, 5)[number % 3]}

        fast = _row_path(bundle, [record], as_of, **options)
        reference = score_payload(bundle, [record], as_of=as_of, row_path=False, **options)

        assert fast is not None, record["lead_id"]
        assert fast == reference, record["lead_id"]
        assert score_payload(bundle, [record], as_of=as_of, **options) == reference
        unseen += bool(reference[0]["flags"]["unseen_categories"])
    assert len(cases) >= 40
    assert unseen >= 5


def test_row_path_equals_table_path_in_batches() -> None:
    bundle = dataclasses.replace(scorer_setup.bundle(), attributes=payload_leads.all_attributes())
    payloads = payload_leads.shared_cutoff_payloads(
        11, timezone=bundle.feature_config.timezone, payloads=25, max_leads=8
    )
    for records, as_of in payloads:
        fast = _row_path(bundle, records, as_of, locale="zh-CN")
        reference = score_payload(bundle, records, as_of=as_of, locale="zh-CN", row_path=False)

        assert fast is not None
        assert fast == reference
    assert sum(len(records) for records, _ in payloads) >= 60


BAD_PAYLOADS: dict[str, dict[str, Any]] = {
    "created_at not ISO 8601": {"created_at": "03/01/2025"},
    "undeclared field": {"phone": "13800000000"},
    "negative budget": {"declared_budget": -1.0},
    "null created_at": {"created_at": None},
    "unknown activity type": {
        "activities": [{"occurred_at": "2025-03-02T10:00:00+08:00", "type": "fax", "direction": "outbound"}]
    },
    "unknown stage": {"stage_changes": [{"stage": "wondering", "changed_at": "2025-03-02T10:00:00+08:00"}]},
    "created after as_of": {"created_at": "2025-03-06T09:00:00+08:00"},
    "lost before as_of": {"stage_changes": [{"stage": "输单", "changed_at": "2025-03-02T10:00:00+08:00"}]},
    "order of an unknown customer": {
        "orders": [{"ordered_at": "2024-05-01T10:00:00+08:00", "amount": 10.0, "customer_id": "C-OTHER"}]
    },
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_row_path_keeps_table_path_errors(case: str) -> None:
    bundle = scorer_setup.bundle()
    record = scorer_setup.open_lead("BAD-1", **BAD_PAYLOADS[case])

    with pytest.raises(DataValidationError) as table_error:
        score_payload(bundle, [record], as_of=scorer_setup.AS_OF, row_path=False)
    with pytest.raises(DataValidationError) as default_error:
        score_payload(bundle, [record], as_of=scorer_setup.AS_OF)

    assert str(default_error.value) == str(table_error.value)
    assert _row_path(bundle, [record], scorer_setup.AS_OF) is None


def test_row_path_skips_unusual_payloads() -> None:
    bundle = scorer_setup.bundle()
    many = [scorer_setup.open_lead(f"N-{number}") for number in range(row_scorer.ROW_PATH_MAX_LEADS + 1)]
    integer_id = {**scorer_setup.open_lead("ignored"), "lead_id": 4711}

    assert _row_path(bundle, many, scorer_setup.AS_OF) is None
    assert _row_path(bundle, [integer_id], scorer_setup.AS_OF) is None
    assert score_payload(bundle, [integer_id], as_of=scorer_setup.AS_OF)[0]["lead_id"] == "4711"
