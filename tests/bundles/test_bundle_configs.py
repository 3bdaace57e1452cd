"""The bundle configs as the model zoo checks them: pretty-printed JSON, the zoo's required ids, one evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CONFIGS = sorted(BUNDLES.glob("*/configs/*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_config_is_pretty_format_json_clean(path):
    """What `pretty-format-json --no-sort-keys --indent=4` writes: 4-space indent, ASCII, a final newline."""
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=4) + "\n"


def test_evaluate_overrides_validate_handlers_instead_of_a_second_evaluator():
    evaluate = json.loads((BUNDLES / "brats_iunet" / "configs" / "evaluate.json").read_text())
    assert "validate#handlers" in evaluate
    assert not [key for key in json.dumps(evaluate).split('"') if key.endswith("Evaluator")]
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / "brats_iunet" / "configs" / f) for f in ("train.json", "evaluate.json")])
    targets = [h.get("_target_", h) if isinstance(h, dict) else h for h in parser.get("validate#handlers")]
    assert "monai_iunet.brats.handlers.EvaluationWriter" in targets and "@validate#best_model_saver" in targets


def test_validation_uses_inference_inferer_and_label_map_metric(tmp_path):
    """One inferer definition: the validation's is inference.json's (also for a bundle_root without configs), also
    when training overrides ``patch_size`` (its random crops only): an inference run with another ``--patch_size``
    writes other predictions than the evaluation scored (notebook 04 did: TC 0.842 on the files, 0.853 evaluated)."""
    configs = BUNDLES / "brats_iunet" / "configs"
    inference = ConfigParser()
    inference.read_config(str(configs / "inference.json"))
    expected = inference.get_parsed_content("inferer")
    for root in (BUNDLES / "brats_iunet", tmp_path):
        parser = ConfigParser()
        parser.read_config([str(configs / "train.json"), str(configs / "evaluate.json")])
        parser["bundle_root"] = str(root)
        parser["patch_size"] = [32, 32, 32]  # notebook 04's training override
        assert parser.get_parsed_content("train#random_transforms#0#roi_size") == [32, 32, 32]
        inferer = parser.get_parsed_content("validate#inferer")
        assert type(inferer) is type(expected)
        assert (inferer.roi_size, inferer.overlap) == (expected.roi_size, expected.overlap)
    assert parser.get("validate#key_metric#val_mean_dice#_target_") == "monai_iunet.brats.handlers.LabelMapMetric"
    assert [t["_target_"] for t in parser.get("validate#postprocessing#transforms")][1] == "Invertd"


@pytest.mark.parametrize("bundle", ["brats_iunet", "ct_postprocessing_iunet"])
def test_zoo_required_files_and_ids(bundle):
    root = BUNDLES / bundle
    for name in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md"):
        assert (root / name).is_file(), name
    inference = json.loads((root / "configs" / "inference.json").read_text())
    assert {"bundle_root", "device", "network_def", "inferer"} <= set(inference)
    train = json.loads((root / "configs" / "train.json").read_text())
    assert {"bundle_root", "device", "dataset_dir"} <= set(train)


def test_brats_readme_has_the_zoo_template_sections():
    readme = (BUNDLES / "brats_iunet" / "docs" / "README.md").read_text()
    for section in ("Description", "Data", "Performance", "Usage", "System Configuration", "Limitations", "Citation"):
        assert f"\n## {section}\n" in readme, section
    assert (BUNDLES / "brats_iunet" / "docs" / "data_license.txt").is_file()
    assert "python bundles/brats_iunet/scripts/bundle_numbers.py" in readme  # the numbers name their command


# the first releases whose wheels need Python 3.11 (numpy 2.3.0, scikit-image 0.26.0); the bundles say Python 3.10+
FIRST_WITHOUT_PY310 = {"numpy": (2, 3), "scikit-image": (0, 26)}


@pytest.mark.parametrize("bundle", sorted(p.parent.parent for p in BUNDLES.glob("*/configs/metadata.json")), ids=str)
def test_pinned_packages_install_on_python_310(bundle):
    """The zoo installs the metadata's pins on Python 3.10: each must be a release with Python 3.10 wheels."""
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    pins = {"numpy": meta["numpy_version"], **meta.get("required_packages_version", {})}
    for name, first in FIRST_WITHOUT_PY310.items():
        if name in pins:
            version = tuple(int(x) for x in pins[name].split(".")[:2])
            assert version < first, f"{bundle.name}: {name} {pins[name]} has no Python 3.10 wheels"
