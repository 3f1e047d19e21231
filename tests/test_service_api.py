"""The service API: the operation list, typed results by sha256, and the host that forwards them."""

from __future__ import annotations

import ast
from dataclasses import replace

import numpy as np
import pytest

from fasfinder.errors import BadArgument, FasFinderError, NotFoundInGallery
from fasfinder.host import LocalHost, ProcessHost, dispatch
from fasfinder.operations import CancelToken, operation, operation_table
from fasfinder.results import Heatmap, MatchExplanation, QueryResult, ServiceInfo, SeverityCurves
from fasfinder.service import OPERATIONS, REGION_NAMES, SEVERITY_SWEEPS, FasFinder
from fasfinder.settings import Settings

from .conftest import REPO


def _strings(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    if isinstance(node, ast.Tuple):
        return set().union(*(_strings(e) for e in node.elts)) if node.elts else set()
    return set()


def _operation_names(tree: ast.AST) -> set[str]:
    """Operation names a UI module uses: first arguments of ``x.call("op", ...)`` / ``start_import("op", ...)``,
    and strings assigned to a variable called ``method`` (names chosen at run time)."""

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("call", "start_import"):
            if node.args:
                found |= _strings(node.args[0])
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                for i, t in enumerate(names):
                    if isinstance(t, ast.Name) and t.id == "method":
                        value = node.value.elts[i] if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                            else node.value
                        found |= _strings(value)
    return found


def test_operation_list_is_every_marked_method_and_nothing_else():
    assert set(OPERATIONS) == {n for n in dir(FasFinder) if hasattr(getattr(FasFinder, n), "__fasfinder_operation__")}
    for name, op in OPERATIONS.items():
        assert callable(getattr(FasFinder, name)) and not name.startswith("_")
        assert op.doc, f"operation {name} has no docstring"
    progress_ops = {n for n, op in OPERATIONS.items() if op.progress}
    assert progress_ops == {"enroll", "seed_demo", "ensure_demo", "severity", "sync", "plan_import", "import_plan",
                            "search_video", "enroll_video", "find_in_footage"}
    # the gallery object itself is not reachable through the operation list
    assert "gallery" not in OPERATIONS and "load" not in OPERATIONS and "detect" not in OPERATIONS


def test_ui_calls_only_listed_operations():
    used = set()
    for path in (REPO / "ui").rglob("*.py"):
        used |= _operation_names(ast.parse(path.read_text()))
    assert used, "the UI calls no operation at all?"
    assert used <= set(OPERATIONS), f"the UI calls operations the service does not list: {used - set(OPERATIONS)}"
    assert {"analyze", "explain_match", "explain_face", "liveness_explain", "severity", "persons", "plan_import",
            "import_plan", "delete_person", "delete_image", "seed_demo", "trash", "restore", "purge_trash",
            "merge_persons", "add_person", "find_persons", "decide", "query_record", "case_report",
            "search_again", "search_video", "enroll_video", "find_in_footage"} <= used


def test_cli_never_reaches_into_the_gallery():
    tree = ast.parse((REPO / "fasfinder" / "cli.py").read_text())
    touched = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("gallery", "_gallery")
                      and not (isinstance(n.value, ast.Name) and n.value.id == "settings")})  # settings.gallery: a path
    assert touched == [], f"cli.py uses FasFinder.{touched}: add a service operation instead"


def test_progress_operation_must_take_progress_and_cancel():
    with pytest.raises(TypeError, match="progress"):
        @operation(progress=True)
        def bad(self, x):  # noqa: ARG001
            return x

    class Toy:
        @operation
        def ping(self):
            """Answer."""
            return "pong"

        def private(self):
            return None

    assert list(operation_table(Toy)) == ["ping"]


@pytest.fixture(scope="module")
def service(tmp_path_factory, astronaut_png):
    root = tmp_path_factory.mktemp("api")
    ff = FasFinder(root / "g.db", settings=Settings(gallery=str(root / "g.db"), liveness=True))
    results = ff.enroll([astronaut_png], label="Eileen")
    assert results[0].error is None, results[0].error
    yield ff
    ff.close()


def test_dispatch_refuses_unknown_operations(service):
    with pytest.raises(BadArgument, match="unknown operation"):
        dispatch(service, "gallery", (), {}, None, CancelToken())
    with pytest.raises(BadArgument, match="unknown operation"):
        dispatch(service, "close", (), {}, None, CancelToken())
    info = dispatch(service, "info", (), {}, None, CancelToken())
    assert isinstance(info, ServiceInfo) and info.counts["images"] == 1


def test_explanations_refer_to_the_query_by_sha256(service, astronaut_png):
    res = service.search(astronaut_png, record=False)
    assert isinstance(res, QueryResult) and res.error is None and res.faces and res.faces[0].matches
    face = service.explain_face(res.sha256, 0)
    assert isinstance(face, Heatmap) and face.heatmap.shape == res.pixels.shape[:2]
    assert list(face.regions) == list(REGION_NAMES) and "Grad-CAM++" in face.method
    m = res.faces[0].matches[0]
    pair = service.explain_match(res.sha256, 0, m.face_id)
    assert isinstance(pair, MatchExplanation) and pair.face_id == m.face_id
    crop = service.face_crops([m.face_id, 10**9])
    assert crop[1] is None and pair.gallery.heatmap.shape == crop[0].shape[:2]
    assert pair.query.score == pytest.approx(m.similarity, abs=2e-3)
    with pytest.raises(BadArgument, match="no face 3"):
        service.explain_face(res.sha256, 3)
    with pytest.raises(FasFinderError) as err:
        service.explain_face("0" * 64, 0)
    assert err.value.code == "query_expired"


def test_query_is_reloaded_from_its_path_and_must_not_have_changed(service, astronaut_png, tmp_path):
    res = service.search(astronaut_png, record=False)
    service.recent = type(service.recent)()  # as after a restart of the helper process
    assert service.explain_face(res.sha256, 0, path=str(astronaut_png)).heatmap.shape == res.pixels.shape[:2]
    other = tmp_path / "other.png"
    other.write_bytes(astronaut_png.read_bytes() + b"\0")  # same picture, other bytes
    service.recent = type(service.recent)()
    with pytest.raises(FasFinderError) as err:
        service.explain_face(res.sha256, 0, path=str(other))
    assert err.value.code == "query_changed"


def test_severity_streams_progress_and_cancels(service, astronaut_png):
    res = service.search(astronaut_png, record=False)
    seen = []
    curves = service.severity(res.sha256, 0, target="liveness", progress=lambda d, t, _m: seen.append((d, t)))
    assert isinstance(curves, SeverityCurves) and set(curves.curves) == set(SEVERITY_SWEEPS)
    assert seen[-1][0] == seen[-1][1] and len(seen) == seen[-1][1]
    for kind, pts in curves.curves.items():
        assert [p[0] for p in pts] == sorted(SEVERITY_SWEEPS[kind])
    token = CancelToken()
    token.cancel()
    with pytest.raises(FasFinderError) as err:
        service.severity(res.sha256, 0, target="liveness", region="image", cancel=token)
    assert err.value.code == "cancelled"
    with pytest.raises(NotFoundInGallery):
        service.severity(res.sha256, 0, None, target="similarity")
    with pytest.raises(BadArgument):
        service.severity(res.sha256, 0, target="colour")


def test_hosts_forward_operations_and_rebuild_typed_errors(service, astronaut_png):
    settings = replace(service.settings, liveness=False)
    for host in (LocalHost(settings), ProcessHost(settings, threads=1)):
        try:
            res = host.call("search", str(astronaut_png), record=False)
            assert res.error is None and res.faces[0].matches[0].label == "Eileen"
            assert res.pixels is not None  # the picture travels once, to the front end
            hm = host.call("explain_face", res.sha256, 0)
            assert isinstance(hm, Heatmap) and np.isfinite(hm.heatmap).all()
            with pytest.raises(NotFoundInGallery):
                host.call("person", 987654)
            with pytest.raises(BadArgument):
                host.call("gallery.persons")
            assert [p.label for p in host.call("persons")] == ["Eileen"]
        finally:
            host.close()
