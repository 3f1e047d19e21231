"""FASFinder desktop app (PySide6). Thin views, docks and workers over :class:`fasfinder.service.FasFinder`.

``ui.host`` and ``ui.demo`` import no Qt (they also run in the inference helper process).
"""
