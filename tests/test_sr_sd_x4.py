"""`sr/sd-x4`: the latent-diffusion x4 upscaler as an SR backend, on a tiny random pipeline saved
to a folder in the official layout (no real weights exist on these machines)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import artifacts  # noqa: E402
from artifacts.restoration.diffusion import ldsr  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")
FAST = {"steps": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sd-x4")
    ldsr.tiny_x4_upscaler().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 23x19 crop of scikit-image's astronaut (odd sizes on purpose)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:146:2, 180:218:2])


def test_upscales_x4_through_the_restore_api(model_dir, image):
    res = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None, **FAST)
    assert res.image.shape == (92, 76, 3) and res.image.dtype == np.uint8
    assert res.meta["model"] == "sr/sd-x4" and res.meta["prompt_embeds"] == "zeros"
    assert res.meta["weights"].startswith("dir:") and res.meta["tiling"]["tiles"] == 1
    assert res.image.std() > 0


def test_seed_makes_it_deterministic(model_dir, image):
    a = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), seed=3, tile=None, **FAST).image
    b = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), seed=3, tile=None, **FAST).image
    c = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), seed=4, tile=None, **FAST).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_tiled_run(model_dir, image):
    """Tiles of 8 px (less than half of the 23x19 image) with 4 px of context: 9 tiles, x4 output.
    Each tile samples its own noise, so the result is not the whole-image one (no tolerance is
    claimed); a tile larger than the image is the whole-image pass exactly."""
    model = artifacts.create("sr/sd-x4", model_dir=str(model_dir), tile=8, overlap=4, **FAST)
    res = model.restore(image)
    assert res.image.shape == (92, 76, 3) and res.meta["tiling"]["tiles"] == 9
    whole = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None, **FAST).image
    big = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=64, **FAST).image
    assert np.array_equal(whole, big) and not np.array_equal(res.image, whole)
    assert "tile" in model.fingerprint()["config"]  # tiling changes a diffusion result: part of the key


def test_missing_or_wrong_folder_says_what_is_missing(model_dir, tmp_path):
    with pytest.raises(ValueError, match="needs model_dir=DIR.*stable-diffusion-x4-upscaler"):
        artifacts.create("sr/sd-x4")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        artifacts.create("sr/sd-x4", model_dir=str(tmp_path / "absent"))
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(FileNotFoundError, match="sr/sd-x4: .*missing vae/config.json"):
        artifacts.create("sr/sd-x4", model_dir=str(broken))
    with pytest.raises(ValueError, match="noise_level"):
        artifacts.create("sr/sd-x4", model_dir=str(model_dir), noise_level=400)


def test_prompt_embeddings_and_guidance(model_dir, image, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ValueError, match="guidance > 1 needs a prompt embedding"):
        artifacts.create("sr/sd-x4", model_dir=str(model_dir), guidance=5.0)
    good = tmp_path / "p.safetensors"
    save_file({"prompt_embeds": torch.randn(1, 7, 16, generator=torch.Generator().manual_seed(0))}, str(good))
    zeros = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None, **FAST).image
    res = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None, prompt_embeds=str(good),
                            guidance=4.0, **FAST)
    assert res.meta["prompt_embeds"] == str(good) and res.meta["negative_prompt_embeds"] == "zeros"
    assert not np.array_equal(res.image, zeros)
    bad = tmp_path / "bad.pt"
    torch.save(torch.zeros(1, 7, 5), bad)
    with pytest.raises(ValueError, match="1 x tokens x 16"):
        artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), prompt_embeds=str(bad), **FAST)


def test_frequency_compensation_option(model_dir, image, tmp_path):
    fc = ldsr.FrequencyCompensation(channels=4, bins=4)
    with torch.no_grad():
        fc.gain.fill_(0.5)
    fc.save(tmp_path)
    plain = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None, **FAST)
    comp = artifacts.restore(image, model="sr/sd-x4", model_dir=str(model_dir), tile=None,
                             frequency_compensation=str(tmp_path), **FAST)
    assert not plain.meta["frequency_compensation"] and comp.meta["frequency_compensation"]
    assert not np.array_equal(plain.image, comp.image)


def test_not_a_default_of_eval_or_the_app_and_registering_imports_nothing_heavy():
    from artifacts.app.ui import _models
    from artifacts.eval.sr import SRAdapter

    assert "sr/sd-x4" in artifacts.list_models("sr") and "sr/sd-x4" not in SRAdapter.default_models()
    assert "sr/sd-x4" not in _models("sr") and "sr/span" in _models("sr")
    code = ("import sys, artifacts\nartifacts.list_models('sr')\n"
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cli_restore_sr_with_the_model(model_dir, image, tmp_path):
    from artifacts.io import load_image, save_image

    src = tmp_path / "in"
    src.mkdir()
    save_image(src / "a.png", image)
    out = run_cli("restore", "sr", str(src), "-o", str(tmp_path / "up"), "--model", "sd-x4", "--device", "cpu",
                  "--set", f"model_dir={model_dir}", "--set", "steps=1", "-q",
                  env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    (restored,) = (tmp_path / "up" / "items").glob("*/restored.png")
    assert load_image(restored).pixels.shape == (92, 76, 3)
    meta = json.loads((restored.parent / "restoration.json").read_text())
    assert meta["meta"]["model"] == "sr/sd-x4" and meta["meta"]["steps"] == 1
    miss = run_cli("restore", "sr", str(src), "-o", str(tmp_path / "up2"), "--model", "sd-x4", "--device", "cpu")
    assert miss.returncode != 0 and "model_dir" in (miss.stderr + miss.stdout)
