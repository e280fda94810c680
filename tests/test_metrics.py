import numpy as np
import pytest

from artifacts.calibration import Logistic, Platt, fit_platt
from artifacts.metrics import average_precision, pixel_scores, roc_auc

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


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + y * 0.4, 1)
    assert average_precision(s, y) == pytest.approx(sklearn.average_precision_score(y, s))


def test_threshold_counts_match_direct_masks():
    from artifacts.metrics import THRESHOLDS, scores_from_counts, threshold_counts

    rng = np.random.default_rng(3)
    heat = rng.random((40, 50)).astype(np.float32)
    heat[0, :5] = [0.0, 0.5, 1.0, 0.25, 0.75]  # exact threshold values
    gt = rng.random((40, 50)) < 0.2
    curve = scores_from_counts(*threshold_counts(heat, gt))
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        k = int(np.flatnonzero(THRESHOLDS == t)[0])
        assert curve["f1"][k] == pytest.approx(pixel_scores(heat >= t, gt)["f1"])
        assert curve["f1"][k] == pytest.approx(sklearn.f1_score(gt.ravel(), (heat >= t).ravel(), zero_division=1))


def test_bootstrap_interval_covers_and_narrows():
    from artifacts.metrics import bootstrap_ci

    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    lo_s, hi_s = bootstrap_ci(small.size, lambda i: small[i].mean(), n_boot=500)
    lo_l, hi_l = bootstrap_ci(large.size, lambda i: large[i].mean(), n_boot=500)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5

    def undefined(i):
        raise ValueError("e.g. an AUC on a resample with one class")

    assert np.isnan(bootstrap_ci(20, undefined, n_boot=50)[0])


def test_stacked_logistic_matches_sklearn_balanced_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from artifacts.calibration import fit_logistic

    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (5000, 3))
    y = rng.random(5000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.0 * x[:, 2] - 2.0)))
    ours = fit_logistic(x, y, balanced=True, l2=0.0)
    import sklearn

    # no regularisation: `C=inf` from scikit-learn 1.8 on (penalty=None is deprecated there)
    unpenalised = {"C": np.inf} if tuple(map(int, sklearn.__version__.split(".")[:2])) >= (1, 8) else {"penalty": None}
    ref = LogisticRegression(**unpenalised, class_weight="balanced", tol=1e-10, max_iter=1000).fit(x, y)
    assert np.allclose(ours.w, ref.coef_[0], atol=1e-4) and ours.b == pytest.approx(ref.intercept_[0], abs=1e-4)
    p = ours(x.T)  # features stacked on the first axis, as a fusion's maps are
    assert np.allclose(p, ref.predict_proba(x)[:, 1], atol=1e-5)
    assert Logistic.from_dict(ours.to_dict()) == ours and Logistic.from_dict({"a": 2.0, "b": 1.0}).w == (2.0,)
