from pathlib import Path

import pytest

from ebtk.config import SamplerConfig, TrainConfig, from_dict, load_yaml, merge, parse_overrides
from ebtk.errors import EbtkError


def test_overrides_parse_types_and_nesting():
    o = parse_overrides(["train.lr=1e-3", "objective.c=learned", "sampler.steps=20", "a.b.c=true"])
    assert o == {
        "train": {"lr": 1e-3},
        "objective": {"c": "learned"},
        "sampler": {"steps": 20},
        "a": {"b": {"c": True}},
    }


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_bad_override_is_error(bad):
    with pytest.raises(EbtkError, match="bad override"):
        parse_overrides([bad])


def test_merge_rejects_unknown_keys_and_keeps_base():
    base = {"train": {"lr": 1.0}, "x": 1}
    assert merge(base, {"train": {"lr": 2.0}}) == {"train": {"lr": 2.0}, "x": 1}
    assert base["train"]["lr"] == 1.0
    with pytest.raises(EbtkError, match="unknown config key train.lrr"):
        merge(base, {"train": {"lrr": 2.0}})
    with pytest.raises(EbtkError, match="section"):
        merge(base, {"train": 3})


def test_from_dict_coerces_and_validates():
    tc = from_dict(TrainConfig, {"steps": "10", "lr": "0.5", "amp": "false"}, "train")
    assert tc.steps == 10 and tc.lr == 0.5 and tc.amp is False
    with pytest.raises(EbtkError, match="train.steps"):
        from_dict(TrainConfig, {"steps": "ten"}, "train")
    with pytest.raises(EbtkError, match="must be > 0"):
        from_dict(TrainConfig, {"lr": -1}, "train")
    with pytest.raises(EbtkError, match="step_size"):
        from_dict(SamplerConfig, {"step_size": -0.1}, "sampler")
    with pytest.raises(EbtkError, match="unknown config key sampler.stepz"):
        from_dict(SamplerConfig, {"stepz": 1}, "sampler")


def test_malformed_yaml_is_one_line_error(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {lr: 1\n  steps: [\n")
    with pytest.raises(EbtkError, match="malformed YAML") as e:
        load_yaml(p)
    assert "\n" not in str(e.value)
    with pytest.raises(EbtkError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
