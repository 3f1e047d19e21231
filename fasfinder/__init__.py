"""FASFinder core: image loading, faces, engines, gallery, evaluation.

This package never imports Qt (an import-linter contract in pyproject.toml enforces it);
the desktop app in ``ui/`` talks to it only through :mod:`fasfinder.service`.
"""

__version__ = "0.1.0"
