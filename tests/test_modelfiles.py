"""The shared model-card export (write_card, file_entry) and the load-once model cache (cached_model)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from fasfinder import modelfiles
from fasfinder.errors import ModelError


def test_write_card_writes_the_named_card_with_checked_files(tmp_path):
    weights = tmp_path / "toy.pt"
    weights.write_bytes(b"weights")
    card = {"name": "toy", "kind": "test", "files": [modelfiles.file_entry("weights", weights)]}
    path = modelfiles.write_card(card, tmp_path)
    assert path == tmp_path / "toy.card.json"
    assert path.read_text() == json.dumps(card, indent=1) + "\n"
    assert card["files"] == [{"name": "weights", "path": "toy.pt", "sha256": hashlib.sha256(b"weights").hexdigest()}]
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed into place
    # the layout of older writers is available, byte for byte (re-exports change nothing)
    raw = modelfiles.write_card(card, tmp_path / "new" / "dir", indent=2, newline=False).read_text()
    assert raw == json.dumps(card, indent=2)


def test_written_card_is_loaded_and_its_file_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(tmp_path))
    (tmp_path / "w.bin").write_bytes(b"abc")
    modelfiles.write_card({"name": "w", "files": [modelfiles.file_entry("weights", tmp_path / "w.bin")]})
    card = modelfiles.load_card("w")
    assert modelfiles.card_file(card, "weights") == tmp_path / "w.bin"


def test_cached_model_loads_once_per_key_across_threads():
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.05)  # the other threads arrive while the first one loads
        return object()

    key = ("test-model", "once")
    got = []
    threads = [threading.Thread(target=lambda: got.append(modelfiles.cached_model(key, loader))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    assert modelfiles.cached_model(key, loader) is got[0]
    assert modelfiles.cached_model(("test-model", "other"), object) is not got[0]  # another key, another model
    modelfiles.forget_cached_models("test-model")
    assert modelfiles.cached_model(key, loader) is not got[0] and len(calls) == 2
    modelfiles.forget_cached_models("test-model")


def test_cached_model_does_not_cache_a_failure_and_allows_nested_loads():
    attempts = []

    def broken():
        attempts.append(1)
        raise ModelError("weights missing")

    for _ in range(2):
        with pytest.raises(ModelError):
            modelfiles.cached_model(("test-model", "broken"), broken)
    assert len(attempts) == 2  # tried again: the cause may have been fixed
    outer = modelfiles.cached_model(("test-model", "outer"),
                                    lambda: ("outer", modelfiles.cached_model(("test-model", "inner"), lambda: "inner")))
    assert outer == ("outer", "inner")
    modelfiles.forget_cached_models("test-model")


def test_default_models_come_from_the_cache():
    """The product's default models are cached_model entries (one instance per process)."""

    from fasfinder.engines.heatmap_input import default_cam
    from fasfinder.explain import default_explainer
    from fasfinder.liveness import default_liveness_model

    for get in (default_cam, default_explainer, default_liveness_model):
        assert get() is get()
    kinds = {k[0] for k in modelfiles._models}
    assert {"heatmap-channel", "explainer", "liveness"} <= kinds


def test_every_shipped_card_rewrites_byte_for_byte(tmp_path):
    """write_card reproduces each exported card of models/ exactly (heatmap nets and fas_wide: indent 1
    + newline; fas_cards: indent 1, no newline; calibrate: indent 2 + newline), so re-exports are clean."""

    layouts = [(1, True), (1, False), (2, True)]
    for path in sorted(modelfiles.models_dir().glob("*.card.json")):
        if path.name == "dlib-models.card.json":  # written by hand (the third-party file list)
            continue
        raw = path.read_text(encoding="utf-8")
        card = json.loads(raw)
        assert card["name"] + ".card.json" == path.name
        assert any(modelfiles.write_card(card, tmp_path, indent=i, newline=n).read_text(encoding="utf-8") == raw
                   for i, n in layouts), path.name


def test_fas_trainers_write_their_cards_through_write_card(tmp_path):
    from types import SimpleNamespace

    from fasfinder.training.fas_cards import write_card_and_eval

    card = {"name": "toy-fas", "threshold": 0.5}
    write_card_and_eval(SimpleNamespace(name="toy-fas", eval=False), card, tmp_path, tmp_path / "toy-fas.pt")
    assert (tmp_path / "toy-fas.card.json").read_text() == json.dumps(card, indent=1)  # the shipped layout
