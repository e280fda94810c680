import argparse
import hashlib
import pickle

import pytest
import torch

from artifacts.weights import WeightSpec, WeightsNotFoundError, load_checkpoint, resolve


def _spec(tmp_path, content: bytes, **kw) -> WeightSpec:
    return WeightSpec(tag="t1", file="w.bin", sha256=hashlib.sha256(content).hexdigest(), **kw)


def test_resolution_order_explicit_then_home_then_packaged(tmp_path, monkeypatch):
    content = b"weights-v1"
    monkeypatch.setenv("ARTIFACTS_HOME", str(tmp_path / "home"))
    spec = _spec(tmp_path, content, package="artifacts.detectors.manipulation.weights")
    with pytest.raises(WeightsNotFoundError) as err:
        resolve(spec)
    assert str(tmp_path / "home" / "weights" / "w.bin") in str(err.value)  # says where it looked
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "w.bin").write_bytes(content)
    found = resolve(spec)
    assert found.path == tmp_path / "home" / "weights" / "w.bin" and found.spec is spec
    other = tmp_path / "mine.bin"
    other.write_bytes(b"something else")
    explicit = resolve(spec, explicit=other)
    assert explicit.path == other and explicit.spec is None  # not the spec's content: no borrowed card
    assert explicit.id.startswith("file:")


def test_sha_mismatch_is_skipped_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTIFACTS_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.bin").write_bytes(b"tampered")
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(WeightsNotFoundError, match="sha256 mismatch"):
        resolve(_spec(tmp_path, b"original"))


def test_packaged_calibration_resolves():
    from artifacts.registry import model_info

    info = model_info("noise-residual")
    found = resolve(info.weight_spec())
    assert found.sha256 == info.weight_spec().sha256
    assert info.weight_status() in ("packaged", "found")


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "module_prefix", "with_args"])
def test_checkpoint_layouts_unwrap(tmp_path, wrap):
    sd = {"encoder.weight": torch.ones(2, 2), "head.bias": torch.zeros(3)}
    obj = {
        "plain": sd,
        "model": {"model": sd, "epoch": 3},
        "state_dict": {"state_dict": sd, "optimizer": {"lr": 0.1}},
        "module_prefix": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "with_args": {"model": sd, "args": argparse.Namespace(lr=0.1, arch="x")},
    }[wrap]
    torch.save(obj, tmp_path / "ckpt.pth")
    out = load_checkpoint(tmp_path / "ckpt.pth")
    assert sorted(out) == sorted(sd) and torch.equal(out["encoder.weight"], sd["encoder.weight"])


def test_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"module.a": torch.arange(4.0)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_checkpoint(tmp_path / "w.safetensors")["a"], torch.arange(4.0))


class Evil:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_arbitrary_pickles_are_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": {"w": torch.ones(1)}, "payload": Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_checkpoint(tmp_path / "evil.pth")
    assert "code ran" not in capsys.readouterr().out


def test_explicit_key_and_missing_state_dict(tmp_path):
    torch.save({"ema": {"w": torch.ones(1)}, "model": {"w": torch.zeros(1)}}, tmp_path / "c.pth")
    assert load_checkpoint(tmp_path / "c.pth", key="ema")["w"].item() == 1.0
    torch.save({"epoch": 1, "notes": {"a": 1}}, tmp_path / "d.pth")
    with pytest.raises(ValueError, match="no state dict"):
        load_checkpoint(tmp_path / "d.pth")


def test_home_copy_wins_over_the_packaged_one_and_a_wrong_one_is_skipped(tmp_path, monkeypatch):
    from artifacts.registry import model_info

    spec = model_info("noise-residual").weight_spec()
    packaged = resolve(spec).path
    monkeypatch.setenv("ARTIFACTS_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    home = tmp_path / "weights" / spec.file
    home.write_bytes(packaged.read_bytes())
    assert resolve(spec).path == home
    home.write_text("{}")  # e.g. a recalibrated file saved under the same name
    with pytest.warns(UserWarning, match="skipped"):
        assert resolve(spec).path == packaged
    assert model_info("noise-residual").weight_status() == "packaged"
