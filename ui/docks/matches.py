"""Matches dock: the open-set decision and the top-k candidate persons of the selected face (the photos
behind the selected person below); query and candidate side by side with heatmaps."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QDockWidget, QGridLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout,
                               QWidget)

from fasfinder.results import Match, overlay

from ..qtutil import ImageLabel, error_text, face_window, fit_to_screen, is_unavailable, plain, plain_tip, to_pixmap

ROLE_MATCH = Qt.ItemDataRole.UserRole + 1


CONFIDENCE_TIP = (
    "Identification confidence: the estimated probability that this candidate is the person in the query,\n"
    "given the scores of all candidates and the size of the gallery (a logistic model fitted on CelebA\n"
    "identities, checked on held-out ones). It is not a verdict: a reviewer confirms or rejects.")


def match_text(m) -> str:
    conf = "n/a" if m.confidence is None else f"{m.confidence:.0%}"
    case = m.case_id or "\u2014"
    photos = getattr(m, "photos", None)
    if photos is None:
        return f"#{m.rank}  {m.label}\ncase {case}\nsimilarity {m.similarity:.3f} \u00b7 confidence {conf}"
    n = f"{len(photos)} photo{'s' if len(photos) != 1 else ''} matched"
    if m.confidence is not None and not 0.005 <= m.confidence <= 0.995:
        conf = "> 99%" if m.confidence > 0.5 else "< 1%"  # a probability, never a certainty
    return f"#{m.rank}  {m.label}\ncase {case} \u00b7 {n}\nscore {m.similarity:.3f} \u00b7 identification {conf}"


def decision_text(fr) -> str:
    """The open-set decision of one face in words (and the quality warning next to it)."""

    d, q = fr.decision, fr.quality
    if d is None:
        text = ""
    elif d.threshold is None:
        text = "No open-set threshold for this engine: the candidates are ranked only."
    elif d.in_gallery:
        text = f"In the gallery: #1 scores above the threshold {d.threshold:.3f}"
    else:
        text = f"No reliable match in the gallery: no candidate reaches the threshold {d.threshold:.3f}"
    if d is not None and d.threshold is not None and d.fpir is not None:
        text += f" (set for {d.fpir:.0%} false alarms on people not enrolled)"
    if q is not None:
        text += f"\nFace quality {q.score:.2f}"
        if q.flags:
            text += f" \u2014 low quality ({', '.join(q.flags)}): a miss is more likely"
    return text


def photo_matches(person) -> list:
    """The photos behind one candidate person as Match objects (the heatmap docks take those)."""

    return [Match(rank=i + 1, label=person.label, record_id=p.record_id, face_id=p.face_id, person_id=person.person_id,
                  case_id=person.case_id, image=p.image, similarity=p.similarity, confidence=None)
            for i, p in enumerate(person.photos)]


def _quiet_if_cancelled(session):
    """An error callback: a cancelled call (a newer query replaced this one) says nothing."""

    return lambda exc: None if getattr(exc, "code", None) == "cancelled" else session.report_error(exc)


class MatchesDock(QDockWidget):
    def __init__(self, session, parent=None):
        super().__init__("Matches", parent)
        self.setObjectName("dock_matches")
        self.session = session
        self._gen = 0
        self._explain_cache: dict = {}  # (query sha256, face index, face id) -> MatchExplanation
        self._crops: dict = {}  # face id -> the gallery face crop (fetched once per face)
        self._shown = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("No query yet.")
        self.header.setWordWrap(True)
        self.header.setObjectName("dockHeader")
        lay.addWidget(self.header)
        self.list = QListWidget()
        self.list.setIconSize(QSize(60, 60))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setSpacing(1)
        self.list.setObjectName("matchList")
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(self.open_comparison)
        self.comparison = None
        lay.addWidget(self.list, 5)
        self.photos_caption = QLabel("")
        self.photos_caption.setWordWrap(True)  # a long name must not widen the dock
        self.photos_caption.setObjectName("caption")
        lay.addWidget(self.photos_caption)
        self.photos = QListWidget()
        self.photos.setViewMode(QListWidget.ViewMode.IconMode)
        self.photos.setIconSize(QSize(40, 40))
        self.photos.setMaximumHeight(72)
        self.photos.setObjectName("personPhotos")
        self.photos.itemClicked.connect(self._on_photo)
        lay.addWidget(self.photos)
        grid = QGridLayout()
        grid.setSpacing(4)
        self.q_caption = QLabel("Query")
        self.c_caption = QLabel("Candidate")
        for c in (self.q_caption, self.c_caption):
            c.setAlignment(Qt.AlignmentFlag.AlignCenter)
            c.setObjectName("caption")
        self.q_view = ImageLabel("", 110)
        self.c_view = ImageLabel("", 110)
        grid.addWidget(self.q_caption, 0, 0)
        grid.addWidget(self.c_caption, 0, 1)
        grid.addWidget(self.q_view, 1, 0)
        grid.addWidget(self.c_view, 1, 1)
        self.explain_status = QLabel("")
        self.explain_status.setWordWrap(True)
        self.explain_status.setObjectName("hint")
        grid.addWidget(self.explain_status, 2, 0, 1, 2)
        lay.addLayout(grid, 2)
        plain(self.header, self.photos_caption, self.q_caption, self.c_caption, self.explain_status)  # labels and errors: never HTML
        self.setWidget(w)
        session.face_selected.connect(self._on_face)
        session.result_changed.connect(self._on_result)

    # -- population -----------------------------------------------------------------------------
    def _on_result(self, result) -> None:
        self._explain_cache.clear()
        if result is None or result.error:
            self.list.clear()
            self.header.setText("No query yet." if result is None else "No result.")
            self.q_view.clear_image()
            self.c_view.clear_image()
            self.explain_status.setText("")

    def _on_face(self, index: int) -> None:
        self._gen += 1
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        self.photos.clear()
        self.photos_caption.setText("")
        self.q_view.clear_image()
        self.c_view.clear_image()
        self.explain_status.setText("")
        fr = self.session.face
        if fr is None:
            return
        n = len(self.session.result.faces)
        shown = fr.persons if fr.persons is not None else fr.matches
        if not shown:
            engine = self.session.result.engine
            self.header.setText(f"Face {index + 1} of {n}: no candidates. The gallery has no photos enrolled with "
                                f"the engine {engine} (empty gallery, or enrolled with another engine).")
            return
        what = "persons" if fr.persons is not None else "photos"
        self.header.setText(f"Face {index + 1} of {n}: {decision_text(fr)}. Top {len(shown)} candidate {what}:")
        for m in shown:
            item = QListWidgetItem(match_text(m))
            item.setData(ROLE_MATCH, m)
            item.setToolTip(plain_tip(f"{m.label}\n{m.image}\nface id {m.face_id}\n\n{CONFIDENCE_TIP}"))
            self.list.addItem(item)
        for r in fr.rejected:  # rejected for this photo before: listed last, greyed, never selectable
            item = QListWidgetItem(f"Rejected before: {r['label']}  sim {r['similarity']:.3f}")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setToolTip(plain_tip(f"{r['label']} was rejected for this face of this photo in an earlier "
                                      "search; it is not proposed again"))
            self.list.addItem(item)
        gen = self._gen
        ids = [m.face_id for m in shown]
        self.session.call("face_crops", ids, lane="explain", on_error=_quiet_if_cancelled(self.session),
                          on_result=lambda crops, gen=gen, ids=ids: self._set_thumbs(gen, ids, crops))
        self.list.setCurrentRow(0)

    def _set_thumbs(self, gen, face_ids, crops) -> None:
        for fid, crop in zip(face_ids, crops):
            if crop is not None:
                self._crops[fid] = crop
        m = self.session.match
        if m is not None and m.face_id in self._crops and self._shown is not m:
            self.c_view.set_image(self._crops[m.face_id])
        elif m is not None and self._shown is m and m.face_id in self._crops:
            self._show_explained(m, self._explain_cache_for(m))
        if gen != self._gen:
            return
        for i, crop in enumerate(crops):
            item = self.list.item(i)
            if item is not None and crop is not None:
                item.setIcon(QIcon(to_pixmap(crop, 128)))

    # -- selection ------------------------------------------------------------------------------
    def _show_photos(self, person) -> None:
        self.photos.clear()
        photos = photo_matches(person) if getattr(person, "photos", None) else []
        self.photos_caption.setText(f"Photos of {person.label} that matched ({len(photos)}), click one to compare:"
                                    if photos else "")
        for m in photos:
            item = QListWidgetItem(f"{m.similarity:.3f}")
            item.setData(ROLE_MATCH, m)
            item.setToolTip(plain_tip(f"{m.image}\nsimilarity {m.similarity:.3f}"))
            if m.face_id in self._crops:
                item.setIcon(QIcon(to_pixmap(self._crops[m.face_id], 96)))
            self.photos.addItem(item)
        missing = [m.face_id for m in photos if m.face_id not in self._crops]
        if missing:
            gen = self._gen
            self.session.call("face_crops", missing, lane="explain", on_error=_quiet_if_cancelled(self.session),
                              on_result=lambda crops, gen=gen, ids=missing: self._photo_thumbs(gen, ids, crops))

    def _photo_thumbs(self, gen, face_ids, crops) -> None:
        for fid, crop in zip(face_ids, crops):
            if crop is not None:
                self._crops[fid] = crop
        if gen != self._gen:
            return
        for i in range(self.photos.count()):
            item = self.photos.item(i)
            fid = item.data(ROLE_MATCH).face_id
            if fid in self._crops:
                item.setIcon(QIcon(to_pixmap(self._crops[fid], 96)))

    def open_comparison(self, item=None) -> None:
        """The large side-by-side window of the query face and this candidate (ui/comparison.py)."""

        from ..comparison import ComparisonWindow

        m = item.data(ROLE_MATCH) if item is not None else self.session.match
        if m is None or self.session.result is None or self.session.face is None:
            return
        self.comparison = ComparisonWindow(self.session, self.session.result, self.session.face, m, self)
        fit_to_screen(self.comparison, 1280, 800)  # large, but never larger than the screen (150 % scaling)
        self.comparison.move(self.screen().availableGeometry().topLeft())
        self.comparison.show()

    def _on_photo(self, item) -> None:
        if item is not None:
            self._compare(item.data(ROLE_MATCH))

    def _on_current(self, item, _prev=None) -> None:
        if item is None or self.session.result is None:  # the list is being cleared after a failed query
            return
        m = item.data(ROLE_MATCH)
        self._show_photos(m)
        self._compare(m)

    def _compare(self, m) -> None:
        self.session.select_match(m)
        fr = self.session.face
        res = self.session.result
        y0, x0, y1, x1 = face_window(res.pixels.shape, fr.box)
        self.q_view.set_image(res.pixels[y0:y1, x0:x1])
        self.q_caption.setText("Query")
        self.c_caption.setText(m.label)
        self._shown = None
        key = (res.sha256, fr.index, m.face_id)
        if key in self._explain_cache:
            self._show_explained(m, self._explain_cache[key])
            return
        self.explain_status.setText("Computing per-match heatmaps\u2026")
        gen = self._gen
        if m.face_id in self._crops:
            self.c_view.set_image(self._crops[m.face_id])
        self.session.call("explain_match", res.sha256, fr.index, m.face_id, path=res.query, lane="explain",
                          on_result=lambda v, m=m, key=key, gen=gen: self._explained(gen, key, m, v),
                          on_error=lambda e, m=m, gen=gen: self._explain_failed(gen, m, e))

    def _explain_cache_for(self, m):
        res, fr = self.session.result, self.session.face
        return self._explain_cache.get((res.sha256, fr.index, m.face_id)) if res is not None and fr is not None else None

    def _explained(self, gen, key, m, value) -> None:
        self._explain_cache[key] = value
        if gen == self._gen and self.session.match is m:
            self._show_explained(m, value)

    def _show_explained(self, m, value) -> None:
        if value is None:
            return
        q_exp, g_exp = value.query, value.gallery
        self._shown = m
        res, fr = self.session.result, self.session.face
        y0, x0, y1, x1 = face_window(res.pixels.shape, fr.box)
        self.q_view.set_image(overlay(res.pixels[y0:y1, x0:x1], q_exp.heatmap[y0:y1, x0:x1], 0.45))
        crop = self._crops.get(m.face_id)
        if crop is not None:  # else the crop arrives with the thumbnails and is drawn then
            self.c_view.set_image(overlay(crop, g_exp.heatmap, 0.45))
        self.explain_status.setText(
            f"Per-match Grad-CAM++ ({q_exp.layer}): where each face looks like the other. "
            f"cos = {q_exp.score:.3f}")
        self.session.match_explained.emit(m, value)

    def _explain_failed(self, gen, m, exc) -> None:
        if gen != self._gen or self.session.match is not m or getattr(exc, "code", None) == "cancelled":
            return
        if is_unavailable(exc):
            self.explain_status.setText(f"Per-match heatmaps not available for this engine: {error_text(exc)}")
        else:
            self.explain_status.setText(f"Per-match heatmaps failed: {error_text(exc)}")
