"""The method registry: DESIGN §5 names, applicable types and default thresholds."""

from __future__ import annotations

import pytest

from monitor.errors import ConfigError
from monitor.stats import decision, drift, quality
from monitor.stats.registry import METHODS, get_method, methods_for

DESIGN_DRIFT = {"psi", "js", "wasserstein", "ks_stat", "ks_pvalue", "chi2_pvalue"}
DESIGN_QUALITY = {
    "missing_rate",
    "type_error_rate",
    "out_of_range_rate",
    "unseen_rate",
    "volume_ratio",
}


def test_registry_holds_exactly_the_design_metric_names() -> None:
    """Every drift and quality metric of DESIGN §5 is registered, under its stored name."""
    assert set(METHODS) == DESIGN_DRIFT | DESIGN_QUALITY
    assert {m.name for m in METHODS.values() if m.family == "drift"} == DESIGN_DRIFT
    assert set(decision.DRIFT_METRICS) == DESIGN_DRIFT


@pytest.mark.parametrize(
    ("feature_type", "expected"),
    [
        ("numeric", {"psi", "js", "wasserstein", "ks_stat", "ks_pvalue", "missing_rate",
                     "type_error_rate", "out_of_range_rate"}),
        ("categorical", {"psi", "js", "chi2_pvalue", "missing_rate", "type_error_rate",
                         "unseen_rate"}),
        ("boolean", {"psi", "js", "chi2_pvalue", "missing_rate", "type_error_rate",
                     "unseen_rate"}),
        (None, {"volume_ratio"}),
    ],
)  # fmt: skip
def test_methods_apply_to_the_right_feature_types(
    feature_type: str | None, expected: set[str]
) -> None:
    """Each feature type gets the metrics that exist for it; None means model-level."""
    assert {m.name for m in methods_for(feature_type)} == expected  # type: ignore[arg-type]


def test_family_filter_selects_one_family() -> None:
    """methods_for(type, family) keeps only that family."""
    assert {m.name for m in methods_for("numeric", "quality")} == {
        "missing_rate",
        "type_error_rate",
        "out_of_range_rate",
    }


def test_defaults_are_the_thresholds_the_decisions_apply() -> None:
    """Registry thresholds and decision constants are one source of truth."""
    assert get_method("psi").above == decision.EFFECT_PSI
    assert get_method("ks_pvalue").below == decision.DRIFT_ALPHA
    assert get_method("missing_rate").above == decision.MISSING_FLOOR
    assert get_method("missing_rate").relative_to_reference
    volume = get_method("volume_ratio")
    assert (volume.below, volume.above) == (decision.VOLUME_LOW, decision.VOLUME_HIGH)


def test_methods_point_at_the_pure_functions() -> None:
    """A method name resolves to the function that computes it."""
    assert get_method("psi").function is drift.psi
    assert get_method("chi2_pvalue").function is drift.chi2_pvalue
    assert get_method("unseen_rate").function is quality.unseen_rate


def test_an_unknown_method_is_a_config_error_naming_the_known_ones() -> None:
    """A typo in a rule's metric fails with the list of valid names."""
    with pytest.raises(ConfigError, match="known: chi2_pvalue, js"):
        get_method("pssi")
