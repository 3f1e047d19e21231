"""Recall of dlib HOG without upsampling vs upsample 1 on CelebA in-the-wild images (celeba_subset, every 5th
file), at the original size and resized to a 250 px long side; the rule "upsample 0 first, the size-dependent
upsampling when that finds nothing" (FaceAnalyzer.detect(largest=True)). Reference faces: the union of the
upsample 1 and 2 detections (IoU >= 0.5 counts as found). CelebA only: LFW is never used to choose a rule.

    python bench/detect_recall.py     # prints one line per size; rows in $TMPDIR/detect_recall.json
"""
import json
import tempfile
import time
from pathlib import Path
import numpy as np
import cv2
import dlib
from PIL import Image
CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba_subset" / "Celeb"
files = sorted(CELEBA.glob("*.jpg"))[::5]
det = dlib.get_frontal_face_detector()
def iou(a, b):
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    i = max(0, x1 - x0) * max(0, y1 - y0)
    return i / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - i)
def boxes(im, up):
    t = time.process_time()
    r, s, _ = det.run(im, up, 0.0)
    return [(x.left(), x.top(), x.right(), x.bottom()) for x in r], time.process_time() - t
rows = []
for f in files:
    im0 = np.asarray(Image.open(f).convert("RGB"))
    for tag in ("orig", "250"):
        im = im0
        if tag == "250":
            sc = 250 / max(im0.shape[:2]); im = cv2.resize(im0, (round(im0.shape[1]*sc), round(im0.shape[0]*sc)), interpolation=cv2.INTER_AREA)
        b = {}; t = {}
        for up in (0, 1, 2):
            b[up], t[up] = boxes(im, up)
        ref = list(b[1])
        for x in b[2]:
            if all(iou(x, y) < 0.5 for y in ref):
                ref.append(x)
        area = lambda x: (x[2]-x[0])*(x[3]-x[1])
        largest = max(ref, key=area) if ref else None
        def found(bs, x): return any(iou(x, y) >= 0.5 for y in bs)
        rows.append({"file": f.name, "size": tag, "long": max(im.shape[:2]), "ref": len(ref),
                     "up0_found": sum(found(b[0], x) for x in ref), "up1_found": sum(found(b[1], x) for x in ref),
                     "largest_up0": (found(b[0], largest) if largest else None), "largest_up1": (found(b[1], largest) if largest else None),
                     "up0_any": bool(b[0]), "largest_side": (largest[2]-largest[0]) if largest else None,
                     "t0": t[0], "t1": t[1]})
Path(tempfile.gettempdir(), "detect_recall.json").write_text(json.dumps(rows))
for tag in ("orig", "250"):
    r = [x for x in rows if x["size"] == tag]
    ref = sum(x["ref"] for x in r)
    wl = [x for x in r if x["largest_up0"] is not None]
    # rule: up0 first, up1 only when up0 found nothing
    rule_all = sum(x["up0_found"] if x["up0_any"] else x["up1_found"] for x in r)
    rule_largest = sum(1 for x in wl if (x["largest_up0"] if x["up0_any"] else x["largest_up1"]))
    print(tag, "images", len(r), "ref faces", ref, "recall up0", sum(x["up0_found"] for x in r) / ref, "up1", sum(x["up1_found"] for x in r) / ref,
          "| largest face: up0", sum(x["largest_up0"] for x in wl) / len(wl), "up1", sum(x["largest_up1"] for x in wl) / len(wl),
          "| rule up0-then-up1: all", rule_all / ref, "largest", rule_largest / len(wl),
          "| cpu ms up0", 1e3 * np.median([x["t0"] for x in r]), "up1", 1e3 * np.median([x["t1"] for x in r]))
