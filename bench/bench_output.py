"""The liveness benches' one way to hand back a result: the JSON on stdout and, if asked, in a file."""

from __future__ import annotations

import json
import time
from pathlib import Path


def emit(result: dict, t0: float, json_path: str = "") -> int:
    """Add ``seconds`` since ``t0``, print ``result`` as indented JSON, write it to ``json_path`` too; 0."""

    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")
    return 0
