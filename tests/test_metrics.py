import numpy as np
import pytest

from artifacts.calibration import Platt, fit_platt
from artifacts.metrics import pixel_scores, roc_auc

sklearn = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(5))
def test_pixel_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((20, 30)) < 0.3
    pred = rng.random((20, 30)) < 0.4
    s = pixel_scores(pred, gt)
    assert s["f1"] == pytest.approx(sklearn.f1_score(gt.ravel(), pred.ravel()))
    assert s["iou"] == pytest.approx(sklearn.jaccard_score(gt.ravel(), pred.ravel()))
    assert s["precision"] == pytest.approx(sklearn.precision_score(gt.ravel(), pred.ravel()))
    assert s["recall"] == pytest.approx(sklearn.recall_score(gt.ravel(), pred.ravel()))


def test_pixel_scores_degenerate_cases_match_sklearn_zero_division_1():
    empty = np.zeros((4, 4), bool)
    assert pixel_scores(empty, empty)["f1"] == sklearn.f1_score(empty.ravel(), empty.ravel(), zero_division=1)
    full = np.ones((4, 4), bool)
    assert pixel_scores(empty, full)["f1"] == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        pixel_scores(empty, np.zeros((4, 5), bool))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + y * 0.3, 1)  # rounding makes ties
    assert roc_auc(s, y) == pytest.approx(sklearn.roc_auc_score(y, s))
    with pytest.raises(ValueError):
        roc_auc(s, np.zeros(200))


def test_platt_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, 20000)
    y = rng.random(x.size) < Platt(1.5, -0.5)(x)
    fit = fit_platt(x, y, balanced=False)
    assert fit.a == pytest.approx(1.5, rel=0.08) and fit.b == pytest.approx(-0.5, abs=0.08)
    assert fit.inverse(0.5) == pytest.approx(-fit.b / fit.a)


def test_balanced_platt_puts_half_between_the_classes():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 9000), rng.normal(4, 1, 1000)])  # 10 % positives
    y = np.r_[np.zeros(9000), np.ones(1000)]
    assert 1.5 < fit_platt(x, y, balanced=True).inverse(0.5) < 2.5  # near the midpoint, not pushed by the prior
    assert fit_platt(x, y, balanced=False).inverse(0.5) > 2.5
