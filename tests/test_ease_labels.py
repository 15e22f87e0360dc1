"""`ease-cosine` labels: cosine of low-rank EASE factors, from train rows only, cold anime excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from anirec import ease_labels
from anirec.errors import AnirecError
from anirec.pairs_report import format_ease_summary
from test_cf_pairs import catalog_frame, split_frame


def three_blocks(test_rows: bool = True) -> pd.DataFrame:
    """Anime 1-4, 5-8 and 9-12 are three taste blocks: users 10b..10b+5 promote their block's four
    anime (train) and pan one anime of the next block. TEST rows (users 100-107) promote 1 and 9
    together: a leak would make 1 and 9 look alike."""
    rows = []
    for b in range(3):
        block = range(4 * b + 1, 4 * b + 5)
        for u in range(10 * (b + 1), 10 * (b + 1) + 6):
            rows += [(u, a, 10, "train") for a in block]
            rows.append((u, (4 * b + 5 + u % 4 - 1) % 12 + 1, 3, "train"))
    if test_rows:
        rows += [(u, a, 10, "test") for u in range(100, 108) for a in (1, 9)]
    return split_frame(rows)


def cfg(**kw) -> ease_labels.EaseCosineConfig:
    base = dict(lam=1.0, rank=3, min_promoters=1, neighbors=2, text_neighbors=2, random_pairs=2, validation_size=0.0)
    return ease_labels.EaseCosineConfig(**{**base, **kw})


def test_factors_at_full_rank_give_the_cosine_of_the_rows_of_b():
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 6)) < 0.4).astype(np.float32))
    # B by hand: P = (X'X + lambda I)^-1, B = I - P diag(1/diag P) (Steck 2019)
    p = np.linalg.inv(x.T.toarray() @ x.toarray() + 2.0 * np.eye(6))
    b = np.eye(6) - p / np.diag(p)[None, :]
    rows = b / np.linalg.norm(b, axis=1, keepdims=True)
    f = ease_labels.ease_factors(x, lam=2.0, rank=6)
    np.testing.assert_allclose(f @ f.T, rows @ rows.T, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    # rank 1: every factor is +-the same unit vector, so every cosine is +-1
    f1 = ease_labels.ease_factors(x, lam=2.0, rank=1)
    np.testing.assert_allclose(np.abs(f1 @ f1.T), 1.0, atol=1e-5)


def test_labels_come_from_train_rows_only_and_follow_the_blocks():
    with_test = ease_labels.label_ease_pairs(three_blocks(True), catalog_frame(range(1, 13)), cfg())
    without = ease_labels.label_ease_pairs(three_blocks(False), catalog_frame(range(1, 13)), cfg())
    pd.testing.assert_frame_equal(with_test.pairs, without.pairs)  # test rows change nothing
    pairs = with_test.pairs
    assert list(pairs.columns) == ease_labels.EASE_PAIR_COLUMNS
    assert (pairs["anime_a"] < pairs["anime_b"]).all()
    assert not pairs.duplicated(["anime_a", "anime_b"]).any()
    block = (pairs["anime_a"] - 1) // 4 == (pairs["anime_b"] - 1) // 4
    assert block.any() and (~block).any()
    assert pairs.loc[block, "label"].min() > pairs.loc[~block, "label"].max()
    nb = pairs[pairs["pair_kind"] == "neighbor"]
    assert ((nb["anime_a"] - 1) // 4 == (nb["anime_b"] - 1) // 4).all()  # nearest factors = same block
    assert pairs["label"].between(-1, 1).all()
    row = pairs.set_index(["anime_a", "anime_b"]).loc[(1, 2)]
    assert row["both_promote"] == 6 and row["co_raters"] == 6  # train co-ratings, not test


def test_excluded_and_rarely_promoted_anime_get_no_pairs():
    split = three_blocks()
    extra = split_frame([(10, 13, 10, "train"), (11, 13, 9, "train")])  # anime 13: 2 train promoters
    split = pd.concat([split, extra], ignore_index=True)
    split["split"] = pd.Categorical(split["split"], categories=["train", "test"])
    result = ease_labels.label_ease_pairs(split, catalog_frame([i for i in range(1, 14) if i != 5]),
                                          cfg(min_promoters=3))
    named = set(result.pairs["anime_a"]) | set(result.pairs["anime_b"])
    assert 5 not in named  # not in the catalog given (an excluded anime): not even an EASE column
    assert 13 not in named  # 2 promoters < 3
    assert result.funnel["anime_with_3+_promoters"] == 11
    # 5's absence shapes nothing: the same labels as EASE fitted without its rows
    no5 = split[split["anime_id"] != 5].reset_index(drop=True)
    alone = ease_labels.label_ease_pairs(no5, catalog_frame([i for i in range(1, 14) if i != 5]), cfg(min_promoters=3))
    pd.testing.assert_frame_equal(result.pairs, alone.pairs)


def test_max_pairs_keeps_an_equal_share_per_kind_and_a_validation_split():
    result = ease_labels.label_ease_pairs(three_blocks(), catalog_frame(range(1, 13)),
                                          cfg(neighbors=3, text_neighbors=3, random_pairs=3, max_pairs=9, validation_size=0.34))
    kinds = result.pairs["pair_kind"].value_counts()
    assert len(result.pairs) == 9 and set(kinds.index) <= set(ease_labels.PAIR_KINDS)
    assert kinds.max() - kinds.min() <= 1 or len(kinds) < 3
    assert set(result.pairs["split"]) == {"train", "validation"}
    drawn = sum(result.funnel[f"{k}_pairs_drawn"] for k in ease_labels.PAIR_KINDS)
    assert drawn > 9
    again = ease_labels.label_ease_pairs(three_blocks(), catalog_frame(range(1, 13)),
                                         cfg(neighbors=3, text_neighbors=3, random_pairs=3, max_pairs=9, validation_size=0.34))
    pd.testing.assert_frame_equal(result.pairs, again.pairs)  # seeded
    assert "rank-3 EASE factors" in format_ease_summary(result)


def test_balanced_sample_gives_a_short_kind_all_it_has():
    pairs = pd.DataFrame({"i": range(12), "j": range(1, 13), "pair_kind": ["neighbor"] * 2 + ["text"] * 5 + ["random"] * 5})
    kept = ease_labels.balanced_sample(pairs, 8, seed=0)
    assert kept["pair_kind"].value_counts().to_dict() == {"neighbor": 2, "text": 3, "random": 3}


@pytest.mark.parametrize("bad, word", [
    ({"lam": 0}, "--lam"), ({"rank": 0}, "--rank"), ({"min_promoters": 0}, "--min-promoters"),
    ({"neighbors": -1}, "--neighbors"), ({"neighbors": 0, "text_neighbors": 0, "random_pairs": 0}, "all 0"),
    ({"max_pairs": 0}, "--max-pairs"), ({"validation_size": 1.0}, "--validation-size"),
])
def test_bad_settings_name_the_option(bad, word):
    with pytest.raises(AnirecError, match=word):
        cfg(**bad).resolved()


def test_too_few_promoted_anime_is_a_user_error():
    with pytest.raises(AnirecError, match="--min-promoters"):
        ease_labels.label_ease_pairs(three_blocks(), catalog_frame(range(1, 13)), cfg(min_promoters=100))


# --------------------------------------------------------------------------- the pairs stage


def three_block_ratings(path):
    """three_blocks() as a ratings CSV (passives never appear, so the split keeps every row)."""
    rows = three_blocks(False)[["user_id", "anime_id", "rating"]]
    rows.to_csv(path, index=False)
    return path


def test_cli_writes_ease_cosine_pairs_that_finetune_reads(tiny_model_path, tmp_path, capsys):
    from anirec.training import finetune, load_config
    from helpers import run_cli
    from test_cf_pairs import write_inputs

    catalog = write_inputs(tmp_path, range(1, 13))
    exclude = tmp_path / "cold.txt"
    exclude.write_text("# cold\n12\n")
    out = tmp_path / "ease.parquet"
    code, stdout, err = run_cli(capsys, "pairs", "--label", "ease-cosine", "--ratings", three_block_ratings(tmp_path / "r.csv"),
                                "--catalog", catalog, "--test-size", "0", "--lam", "1", "--rank", "3",
                                "--min-promoters", "1", "--neighbors", "2", "--text-neighbors", "2", "--random-pairs", "2",
                                "--exclude-anime", exclude, "--out", out)
    assert code == 0, err
    assert "rank-3 EASE factors" in stdout and "11 with >= 1" in stdout
    pairs = pd.read_parquet(out)
    assert list(pairs.columns) == ease_labels.EASE_PAIR_COLUMNS
    assert 12 not in set(pairs["anime_a"]) | set(pairs["anime_b"])
    assert set(pairs["split"]) == {"train", "validation"}
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(out), out=str(tmp_path / "m"),
                      max_steps=1, batch_size=4, save_steps=1000, show_progress=False)
    d = finetune(cfg, echo=lambda *a: None).scores["data"]
    assert d["validation_label"] == "label"  # graded: Spearman against the factor cosine itself
    assert d["train_pairs_used"] == int((pairs["split"] == "train").sum())


def test_cli_refuses_options_of_other_labels(tmp_path, capsys):
    from helpers import expect_user_error
    from test_cf_pairs import write_inputs

    common = ["--ratings", three_block_ratings(tmp_path / "r.csv"), "--catalog", write_inputs(tmp_path, range(1, 13)),
              "--out", tmp_path / "p.parquet"]
    err = expect_user_error(capsys, "pairs", *common, "--label", "ease-cosine", "--hard-negatives", "2")
    assert "--hard-negatives" in err and "ease-cosine" in err
    err = expect_user_error(capsys, "pairs", *common, "--label", "cf", "--rank", "8")
    assert "--rank" in err and "only used by --label ease-cosine" in err
    err = expect_user_error(capsys, "pairs", *common, "--label", "ease-cosine", "--rank", "0")
    assert "--rank 0" in err
    assert not (tmp_path / "p.parquet").exists()
