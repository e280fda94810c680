import json

import numpy as np
import pytest

from artifacts.types import Detection, Status


def test_mask_and_label_are_derived_from_threshold():
    heat = np.array([[0.1, 0.6], [0.5, 0.9]], np.float32)
    det = Detection(score=0.7, heatmap=heat, threshold=0.6)
    assert det.mask.tolist() == [[False, True], [False, True]]
    assert det.label is True
    det.threshold = 0.8  # changing the threshold changes the derived mask, nothing stored twice
    assert det.mask.sum() == 1 and det.label is False


@pytest.mark.parametrize("kwargs", [
    dict(score=1.5), dict(score=float("nan")), dict(score=0.5, heatmap=np.ones((2, 2, 2))),
    dict(score=0.5, heatmap=np.full((2, 2), 2.0)), dict(score=0.5, heatmap=np.full((2, 2), np.nan)),
    dict(score=None), dict(score=0.5, threshold=-0.1), dict(score=0.5, categories={"x": 3.0}),
    dict(score=0.5, status="not_applicable"),
])
def test_invalid_detections_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Detection(**kwargs)


def test_not_applicable_has_no_score():
    det = Detection.not_applicable("not a JPEG", meta={"model": "m"})
    assert det.status is Status.NOT_APPLICABLE and det.score is None and det.mask is None and det.label is None
    assert det.to_dict()["reason"] == "not a JPEG"


def test_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(0)
    heat = rng.random((37, 53)).astype(np.float32)
    det = Detection(
        score=0.25, heatmap=heat, threshold=0.4, categories={"splice": 0.9, "blur": 0.1},
        elements={"volume": np.array([0.1, 0.9]), "slice": rng.random((2, 3))},
        meta={"model": "manipulation/x", "preprocessing": {"pad": [0, 3]}, "np": np.float32(1.5)},
    )
    files = det.save(tmp_path)
    assert set(files) == {"detection.json", "heatmap.png", "mask.png"}
    back = Detection.load(tmp_path)
    # 16-bit PNG quantisation: at most half a step of 1/65535
    assert np.abs(back.heatmap - heat).max() <= 0.5 / 65535 + 1e-7
    assert (back.mask == det.mask).all()
    assert back.score == det.score and back.threshold == det.threshold
    assert back.categories == det.categories
    assert np.allclose(back.elements["slice"], det.elements["slice"])
    assert back.meta["np"] == 1.5 and back.meta["preprocessing"] == {"pad": [0, 3]}
    on_disk = json.loads((tmp_path / "detection.json").read_text())
    assert on_disk["label"] is False and on_disk["heatmap_shape"] == [37, 53]


def test_newer_format_is_refused():
    with pytest.raises(ValueError, match="newer"):
        Detection.from_dict({"format_version": 99, "score": 0.1})
