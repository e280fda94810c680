import subprocess
import sys
import textwrap

import pytest

import artifacts
from artifacts.registry import create, default_model, list_models, model_info


def test_list_models_filters():
    assert "manipulation/noise-residual" in list_models()
    assert list_models(task="manipulation") == [n for n in list_models() if n.startswith("manipulation/")]
    assert list_models(pattern="*noise*") == ["manipulation/noise-residual"]
    assert list_models(pattern="*nothing-like-this*") == []
    assert list_models(task="dmri", pattern="*noise*") == []
    with pytest.raises(ValueError, match="unknown task"):
        list_models(task="forgery")


def test_lookup_by_bare_and_full_name_and_did_you_mean():
    assert model_info("noise-residual") is model_info("manipulation/noise-residual")
    with pytest.raises(KeyError, match="did you mean 'noise-residual'"):
        model_info("noise-residul")
    assert default_model("manipulation") == "manipulation/effnet-iml"


def test_create_with_packaged_weights_and_overrides():
    det = artifacts.create("noise-residual", device="cpu", q=2.0)
    assert det.weights is not None and det.weights.spec.tag == "calib-v1"
    assert det.weight_id.startswith("calib-v1:") and det.threshold == 0.5
    assert det.fingerprint()["config"]["q"] == 2.0
    with pytest.raises(ValueError, match="unknown option.*'qq'"):
        create("noise-residual", qq=1)


def test_weights_none_builds_an_uncalibrated_model():
    det = create("noise-residual", weights="none", device="cpu")
    assert det.weights is None and det.weight_id == "none" and det.calibrated is False


def test_changed_config_warns_that_calibration_does_not_apply():
    with pytest.warns(UserWarning, match="not calibrated"):
        det = create("noise-residual", device="cpu", q=1.0)
    assert det.calibrated is False


def test_third_party_models_register_through_entry_points(tmp_path):
    pkg = tmp_path / "myplugin.py"
    pkg.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from artifacts.registry import register_model
        from artifacts.detectors.base import Detector
        from artifacts.types import Detection

        @dataclass
        class Cfg:
            level: float = 0.25

        @register_model("manipulation", "constant", config=Cfg, description="test plugin")
        class Constant(Detector):
            def detect_one(self, image):
                return Detection(score=self.config.level)
    '''))
    dist = tmp_path / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[artifacts.models]\nconstant = myplugin\n")
    code = textwrap.dedent('''
        import sys, numpy as np, artifacts
        sys.path.insert(0, sys.argv[1])
        print(artifacts.list_models(pattern="*constant*"))
        det = artifacts.create("constant", level=0.75)
        print(det.detect(np.zeros((8, 8, 3), np.uint8)).score)
    ''')
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['manipulation/constant']", "0.75"]


def test_bare_name_shared_by_two_tasks():
    with pytest.raises(KeyError, match="ambiguous"):
        model_info("fusion")
    assert model_info("fusion", task="synthetic").full_name == "synthetic/fusion"
    assert model_info("fusion", task="manipulation").full_name == "manipulation/fusion"
    assert model_info("noise-residual", task="synthetic").full_name == "manipulation/noise-residual"  # unique elsewhere


def test_api_resolves_bare_names_within_the_task():
    import numpy as np

    import artifacts

    det = artifacts.detect(np.zeros((80, 80, 3), np.uint8), task="manipulation", model="fusion")
    assert det.meta["model"] == "manipulation/fusion"
