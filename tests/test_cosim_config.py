"""Study files: validation, grid expansion, seeds, the generated config reference (no TF)."""

import re
import tomllib
from pathlib import Path

import pytest

from dmoe.cosim.config import SCHEMES, StudyConfig, config_reference
from dmoe.cosim.study import derive_seed, dump_toml, load_study

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_validate_and_are_one_point():
    study = load_study({})
    assert len(study.points) == 1 and study.axes == {}
    assert study.points[0].config == StudyConfig()


def test_grid_is_the_cartesian_product_in_declaration_order():
    raw = {"channel": {"tx_power_dbm": [0.0, 10.0, 23.0]}, "importance": [0.5, 1.0],
           "schemes": [["des"], ["top_k", "jesa"]]}
    study = load_study(raw)
    # Declaration order of the model (schemes, importance, then [channel]), not file order.
    assert list(study.axes) == ["schemes", "importance", "channel.tx_power_dbm"]
    assert len(study.points) == 2 * 2 * 3
    combos = {(p.config.schemes, p.config.importance, p.config.channel.tx_power_dbm)
              for p in study.points}
    assert len(combos) == 12
    # The last axis varies fastest.
    assert [p.config.channel.tx_power_dbm for p in study.points[:3]] == [0.0, 10.0, 23.0]


def test_sequence_fields_take_a_single_list_as_one_value():
    study = load_study({"schemes": ["des", "jesa"], "layer_importance": [0.5, 1.0],
                        "channel": {"distances_m": [10.0, 20.0]}})
    assert len(study.points) == 1
    assert study.points[0].config.layer_importance == (0.5, 1.0)


def test_point_seeds_are_deterministic_and_distinct():
    a = load_study({"importance": [0.5, 0.7, 1.0], "seed": 3})
    b = load_study({"importance": [0.5, 0.7, 1.0], "seed": 3})
    c = load_study({"importance": [0.5, 0.7, 1.0], "seed": 4})
    assert [p.seed for p in a.points] == [p.seed for p in b.points]
    assert len({p.seed for p in a.points}) == 3
    assert not {p.seed for p in a.points} & {p.seed for p in c.points}
    assert [p.point_id for p in a.points] == [p.point_id for p in b.points]
    # The seed is a function of the point alone, not of its position in the grid.
    alone = load_study({"importance": 0.7, "seed": 3}).points[0]
    assert alone.seed == a.points[1].seed and alone.point_id == a.points[1].point_id


def test_derive_seed_is_stable_and_in_range():
    assert derive_seed(1, "x") == derive_seed(1, "x")
    assert derive_seed(1, "x") != derive_seed(1, "y")
    assert all(0 <= derive_seed(i, "k") < 2**31 - 1 for i in range(100))


@pytest.mark.parametrize("raw, key, hint", [
    ({"bogus": 1}, "bogus", "allowed"),
    ({"channel": {"modle": "umi"}}, "channel.modle", "allowed"),
    ({"schemes": ["des", "nonsense"]}, "schemes", "jesa"),
    ({"channel": {"tx_power_dbm": -3.0}}, "channel.tx_power_dbm", "greater than or equal to 0"),
    ({"importance": 2.0}, "importance", "less than or equal to 1"),
    ({"importance": []}, "importance", "empty sweep list"),
    ({"num_tokens": "many"}, "num_tokens", "integer"),
    # A TOML `true` or "8" where a number belongs is a mistake, not a 1 or an 8.
    ({"num_tokens": True}, "num_tokens", "integer"),
    ({"execution": {"chunk_size": "8"}}, "execution.chunk_size", "integer"),
    ({"importance": True}, "importance", "number"),
    ({"channel": {"pathloss": 1}}, "channel.pathloss", "boolean"),
    ({"channel": {"distances_m": [10.0, "far"]}}, "channel.distances_m", "number"),
    ({"channel": {"model": "free-space"}}, "channel.model", "rayleigh"),
    ({"phy": {"fidelity": "magic"}}, "phy.fidelity", "abstraction"),
    ({"schemes": ["des_layerwise"]}, "layer_importance", "one rho per layer"),
    ({"channel": [{"model": "umi"}]}, "channel", "sweep its fields"),
])
def test_bad_studies_name_the_key_and_what_is_allowed(raw, key, hint):
    with pytest.raises(ValueError) as info:
        load_study(raw)
    message = str(info.value)
    assert key in message and hint in message
    assert "\n" not in message


def test_bad_value_inside_a_sweep_names_the_point():
    with pytest.raises(ValueError, match=r"importance.*\[at sweep point importance=1\.5\]"):
        load_study({"importance": [0.5, 1.5]})


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_study(bad)
    with pytest.raises(FileNotFoundError):
        load_study(tmp_path / "missing.toml")


def test_resolved_study_round_trips_through_toml():
    study = load_study({"importance": [0.5, 1.0], "channel": {"model": ["rayleigh", "tdl"]},
                        "layer_importance": [0.4, 0.9]})
    text = dump_toml(study.resolved())
    again = load_study(tomllib.loads(text))
    assert [p.key for p in again.points] == [p.key for p in study.points]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")) +
                         [ROOT / "cosim" / "data" / "default.toml"], ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    study = load_study(path)
    assert len(study.points) >= 1
    assert set(study.points[0].config.schemes) <= set(SCHEMES)


def test_default_study_is_package_data_and_matches_configs_default():
    shipped = load_study(None)
    assert shipped.source == "<default>"
    in_repo = ROOT / "configs" / "default.toml"
    assert tomllib.loads(in_repo.read_text()) == shipped.raw


def test_docs_config_reference_is_generated_from_the_model():
    doc = (ROOT / "docs" / "cosim.md").read_text()
    match = re.search(r"<!-- config-reference:start -->\n(.*?)<!-- config-reference:end -->",
                      doc, re.S)
    assert match, "docs/cosim.md lacks the generated config reference markers"
    assert match.group(1).strip() == config_reference().strip(), (
        "docs/cosim.md is out of date: paste the output of `python -m dmoe.cosim.config` "
        "between the markers")
    for name in StudyConfig.model_fields:
        assert name in match.group(1)


def test_docs_metrics_table_is_generated_from_the_engine():
    from dmoe.cosim.metrics import METRIC_COLUMNS, metrics_reference
    doc = (ROOT / "docs" / "cosim.md").read_text()
    match = re.search(r"<!-- metrics-reference:start -->\n(.*?)<!-- metrics-reference:end -->",
                      doc, re.S)
    assert match and match.group(1) == metrics_reference()
    for column in ("accuracy", "energy_per_token_j", "experts_per_token", "latency_per_token_s",
                   "drop_rate"):
        assert column in METRIC_COLUMNS
