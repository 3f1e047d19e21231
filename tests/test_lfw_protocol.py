"""LFW protocol plumbing on the real pairs file (skipped without ../shared/data)."""

from __future__ import annotations

from .conftest import shared_data


def test_pairs_file_gives_ten_balanced_folds():
    from fasfinder.evaluation.lfw_data import read_pairs

    pairs = read_pairs(shared_data("lfw"))
    assert len(pairs) == 6000
    for f in range(10):
        fold = [p for p in pairs if p[3] == f]
        assert len(fold) == 600 and sum(p[2] for p in fold) == 300
    assert all(a.is_file() and b.is_file() for a, b, _, _ in pairs[:50])


def test_identification_split():
    from fasfinder.evaluation.ident import split_gallery_probes

    gallery, g_labels, probes, p_labels, identities = split_gallery_probes(shared_data("lfw"))
    assert len(set(g_labels)) == len(gallery) == 4281
    assert set(p_labels) <= set(g_labels) and identities == len(set(p_labels))
    assert len(gallery) + len(probes) == 7701
