"""LFW protocol plumbing on the real pairs file (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np

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


def test_multi_engine_batched_pass_equals_image_by_image(tmp_path, monkeypatch, astronaut):
    """embed_images with several engines (chunks of images, one shared heatmap pass) gives the
    embeddings each engine computes alone, image by image."""

    from PIL import Image

    from fasfinder.engines import engine_names, get_engine
    from fasfinder.evaluation.lfw_data import DetectionCache, embed_images
    from fasfinder.imaging import load_image

    names = ["shufflenet-heatmap", "shufflenet-base", "cam-vector"]
    assert set(names) <= set(engine_names()), "the shipped heatmap-channel engines must be registered"
    monkeypatch.setenv("FASFINDER_CACHE_DIR", str(tmp_path / "cache"))
    paths = []
    for k, img in enumerate([astronaut, astronaut[:, ::-1], (astronaut * 0.8).astype(np.uint8)]):
        paths.append(tmp_path / f"img{k}.png")
        Image.fromarray(np.ascontiguousarray(img)).save(paths[-1])
    engines = [get_engine(n) for n in names]
    caches = embed_images(paths, engines, tag="test", chunk=2)
    det = DetectionCache("test")
    for eng, cache in zip(engines, caches):
        for p in paths:
            plain, mirror = eng.embed_views(load_image(p).pixels, [det.data[str(p)][0]], mirror=True)
            assert np.allclose(cache.data[str(p)][0], plain[0], atol=1e-5), (eng.name, p)
            assert np.allclose(cache.data[str(p)][1], mirror[0], atol=1e-5), (eng.name, p)
