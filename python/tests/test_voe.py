"""The violation-of-expectation pairs `eval-wm` scores, from Python."""
import numpy as np
import pytest

import cupworld


def test_pairs_agree_before_the_break_and_differ_after():
    pairs = cupworld.voe_pairs(per_category=1, categories=["vanish", "teleport"])
    assert [p["category"] for p in pairs] == ["vanish", "teleport"]
    for p in pairs:
        b, t = p["break_at"], p["possible"].shape[0]
        assert b == 16 and p["impossible"].shape == (t, 64, 64, 3) and p["actions"].shape == (t, 2)
        assert np.array_equal(p["possible"][:b], p["impossible"][:b])
        assert not np.array_equal(p["possible"][b:], p["impossible"][b:])
    again = cupworld.voe_pairs(per_category=1, categories=["vanish"])
    assert np.array_equal(again[0]["impossible"], pairs[0]["impossible"])


def test_score_and_its_refusals():
    s = cupworld.voe_score([0.1, 0.2, 0.5], [0.9, 0.8, 0.4])
    assert s["pairs"] == 3 and s["pairwise_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="got 2 and 1"):
        cupworld.voe_score([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match=r"impossible\[0\] is NaN"):
        cupworld.voe_score([0.1], [float("nan")])
    with pytest.raises(ValueError, match="categories: .*levitation"):
        cupworld.voe_pairs(per_category=1, categories=["levitation"])
    with pytest.raises(ValueError, match="context = 0"):
        cupworld.voe_pairs(per_category=1, context=0)
