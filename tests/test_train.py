import dataclasses
import json

import numpy as np
import pytest

import artifacts
from artifacts.datasets.splits import load_split
from artifacts.registry import model_info
from artifacts.weights import resolve
from tests.conftest import run_cli


def test_calibration_smoke_run_writes_a_usable_file(tmp_path):
    out = run_cli("train", "manipulation", "--model", "noise-residual", "-o", str(tmp_path), "--n", "12", "-q")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    record = json.loads((tmp_path / "noise_residual_calib-v1.json").read_text())
    assert record["pixel"]["a"] > 0  # higher raw inconsistency -> more likely manipulated
    assert result["held_out"]["n_images"] == 3
    assert set(record["fit"]["photos"]).isdisjoint(load_split("manipulation")["example"])
    det = artifacts.create("noise-residual", weights=str(tmp_path / "noise_residual_calib-v1.json"), device="cpu")
    assert det.weight_id.startswith("file:") and det.calibrated
    assert 0 <= det.detect(np.zeros((128, 128, 3), np.uint8) + 100).score <= 1


def test_task_mismatch_and_missing_recipe_are_clear_errors(tmp_path):
    out = run_cli("train", "dmri", "--model", "noise-residual", "-o", "unused")
    assert out.returncode == 2 and "belongs to task 'manipulation'" in out.stderr
    code = (
        "import sys, dataclasses\n"
        "from artifacts.registry import register_model\n"
        "from artifacts.detectors.base import Detector\n"
        "from artifacts.cli import main\n"
        "@dataclasses.dataclass\nclass C:\n    pass\n"
        "register_model('manipulation', 'no-recipe', config=C)(type('NoRecipe', (Detector,), {}))\n"
        "sys.exit(main(['train', 'manipulation', '--model', 'no-recipe', '-o', sys.argv[1]]))\n"
    )
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "has no training recipe yet" in res.stderr


CALIBRATED = ["noise-residual", "jpeg-dq", "jpeg-grid", "ela", "copymove", "fusion"]


def test_every_calibrated_model_is_covered():
    shipped = {model_info(m).name for m in artifacts.list_models(task="manipulation")
               if model_info(m).weights and model_info(m).weight_spec().package  # iml-vit: the user's file
               and model_info(m).cls.recipe == "calibration"}  # effnet-iml: learned (tests/test_learned_iml.py)
    assert shipped == set(CALIBRATED)


@pytest.mark.slow
@pytest.mark.parametrize("name", CALIBRATED)
def test_shipped_calibration_is_reproducible(name, tmp_path):
    """Each packaged calibration comes from its recorded command (default settings, the seeds it records)."""
    from artifacts.train import calibration

    info = model_info(name, task="manipulation")
    shipped = json.loads(resolve(info.weight_spec()).path.read_text())
    first, last = shipped["fit"]["seeds"][0], shipped["fit"]["held_out_seeds"][1]
    calibration.calibrate(info, str(tmp_path), n=last - first + 1, seed=first, progress=False)
    fresh = json.loads((tmp_path / info.weight_spec().file).read_text())
    for part in ("pixel", "image"):
        assert fresh[part].keys() == shipped[part].keys()
        for k in fresh[part]:
            assert fresh[part][k] == pytest.approx(shipped[part][k], rel=1e-3, abs=1e-4)
    # a generator option added after the shipped fit appears in a fresh record at its default,
    # which draws no random number (the same samples): equal to the shipped record without it
    from artifacts.datasets.manipulation import GeneratorConfig

    new = set(fresh["fit"]["generator"]) - set(shipped["fit"]["generator"])
    defaults = {f.name: f.default for f in dataclasses.fields(GeneratorConfig)}
    assert all(fresh["fit"]["generator"][k] == defaults[k] for k in new)
    fresh["fit"]["generator"] = {k: v for k, v in fresh["fit"]["generator"].items() if k not in new}
    assert fresh["config"] == shipped["config"] and fresh["fit"] == shipped["fit"]



def test_train_option_a_recipe_does_not_take_is_named(tmp_path, capsys):
    from artifacts.cli import main

    assert main(["train", "manipulation", "--model", "ela", "--epochs", "3", "-o", str(tmp_path)]) == 2
    assert "option --epochs does not apply to its recipe 'calibration'" in capsys.readouterr().err
    assert main(["train", "manipulation", "--model", "ela", "--seed", "1", "--set", "seed=2", "-o", str(tmp_path)]) == 2
    assert "seed given twice" in capsys.readouterr().err
