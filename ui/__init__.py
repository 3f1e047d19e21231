"""FASFinder desktop app (PySide6). Thin views, docks and workers over the service API.

``ui`` imports from the core only the service API (``fasfinder.service``, ``fasfinder.host``,
``fasfinder.operations``), result types (``fasfinder.results``), errors and settings; the service
runs in a helper process (``fasfinder.host``).
"""
