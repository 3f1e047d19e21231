"""Shared state of one window (current query, face, match) and the way to run service calls."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from .workers import Worker, WorkerPool


class Session(QObject):
    result_changed = Signal(object)  # QueryResult (or None)
    face_selected = Signal(int)  # index into result.faces (-1: none)
    match_selected = Signal(object)  # Match (or None)
    match_explained = Signal(object, object)  # Match, fasfinder.results.MatchExplanation
    gallery_changed = Signal()
    history_changed = Signal()
    message = Signal(str, int)  # status-bar text, timeout ms

    def __init__(self, host, pool: WorkerPool | None = None, parent=None):
        super().__init__(parent)
        self.host = host
        # searches get their own lane: never queued behind explanation or import workers
        self.pool = pool or WorkerPool(parent=self, lanes={"query": 2})
        self._explaining: set[Worker] = set()  # explanation workers of the current query (cancel_explanations)
        self.result = None
        self.face_index = -1
        self.match = None
        self.match_explanation = None  # (Match, MatchExplanation)
        self.match_explained.connect(lambda m, v: setattr(self, "match_explanation", (m, v)))

    # -- service calls off the GUI thread ----------------------------------------------------
    def call(self, method: str, *args, on_result=None, on_error=None, on_progress=None, on_finished=None,
             lane: str = "", **kwargs) -> Worker:
        """Run the service operation ``method`` off the GUI thread. ``lane="query"``: on the search lane
        (searches never wait behind other work); ``lane="explain"``: an explanation of the current query,
        cancelled by :meth:`cancel_explanations` when the next query starts."""

        host = self.host

        def job(progress=None, cancel=None):
            return host.call(method, *args, progress=progress, cancel=cancel, **kwargs)

        w = self.pool.start(job, name=method, on_result=on_result, on_error=on_error or self.report_error,
                            on_progress=on_progress, on_finished=on_finished, lane="query" if lane == "query" else "")
        if lane == "explain":
            self._explaining.add(w)
            w.signals.finished.connect(lambda w=w: self._explaining.discard(w))
        return w

    def cancel_explanations(self) -> None:
        """Cancel the explanations still pending for the current query (a new query replaces it): those
        not started never run, in this process or in the service's."""

        for w in list(self._explaining):
            w.cancel()
        self._explaining.clear()

    def report_error(self, exc) -> None:
        from .qtutil import error_text

        self.message.emit(f"Error: {error_text(exc)}", 10000)

    # -- state ----------------------------------------------------------------------------------
    @property
    def face(self):
        if self.result is None or not (0 <= self.face_index < len(self.result.faces)):
            return None
        return self.result.faces[self.face_index]

    def set_result(self, result) -> None:
        self.result = result
        self.face_index = -1
        self.match = None
        self.result_changed.emit(result)
        if result is not None and result.faces:
            self.select_face(0)
        else:
            self.face_selected.emit(-1)
            self.match_selected.emit(None)

    def select_face(self, index: int) -> None:
        if self.result is None or not (0 <= index < len(self.result.faces)):
            return
        self.face_index = index
        self.match = None
        self.face_selected.emit(index)

    def select_match(self, match) -> None:
        self.match = match
        self.match_selected.emit(match)

    # -- explanations shared by the heatmap and region docks -------------------------------------
    def explanation(self, kind: str, on_result, on_error) -> None:
        """``kind``: "face" (recognition, face attention) or "fas" (liveness model).

        Delivers ``(heatmap HxW in image coords, regions dict, description)`` or an exception;
        cached per query/face, concurrent requests for the same map share one computation.
        """

        fr = self.face
        if fr is None:
            return
        if not hasattr(self, "_xcache"):
            self._xcache, self._xwait = {}, {}
        key = (self.result.sha256, self.result.query, self.face_index, kind)
        if key in self._xcache:
            ok, value = self._xcache[key]
            (on_result if ok else on_error)(value)
            return
        if key in self._xwait:
            self._xwait[key].append((on_result, on_error))
            return
        self._xwait[key] = [(on_result, on_error)]

        def done(ok, value, key=key):
            if not ok and getattr(value, "code", None) == "cancelled":  # a newer query replaced this one
                self._xwait.pop(key, None)
                return
            if ok:  # a fasfinder.results.Heatmap
                value = (value.heatmap, value.regions, value.method)
            self._xcache[key] = (ok, value)
            for res_cb, err_cb in self._xwait.pop(key, []):
                (res_cb if ok else err_cb)(value)

        method = "explain_face" if kind == "face" else "liveness_explain"
        self.call(method, self.result.sha256, self.face_index, path=self.result.query, lane="explain",
                  on_result=lambda v: done(True, v), on_error=lambda e: done(False, e))
