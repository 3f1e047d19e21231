"""Liveness check of one face (the default ensemble, fas-nuaa-wide): serial vs split over the compute threads.

    python bench/bench_liveness_split.py [--runs 30] [--out FILE]

Rows (medians, ms, one 144 px crop): the BN-folded copy as before (NCHW weights) and channels-last,
each with 1 and 2 torch threads; the compute pool (fasfinder.compute: 1 worker + the caller, one
part per member, traced members); and the members eager vs traced while another thread runs
pure Python (the query thread's search and bookkeeping): the GIL's cost to a compute thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out")
    args = ap.parse_args()

    import numpy as np
    import torch

    from fasfinder.compute import set_compute_threads
    from fasfinder.liveness import default_liveness_model
    from fasfinder.liveness.networks import fused_for_inference, traced_members

    def ms(fn):
        fn()
        ts = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return round(statistics.median(ts) * 1e3, 2)

    model = default_liveness_model()
    crops = np.random.default_rng(0).integers(0, 256, (1, 144, 144, 3), dtype=np.uint8)
    cl = model._inference_net()
    nchw = fused_for_inference(model.net)
    x = cl.preprocess(crops)
    out = {"load_before": os.getloadavg(), "runs": args.runs}
    with torch.inference_mode():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[f"serial_nchw_{threads}thr"] = ms(lambda: nchw(x))
            out[f"serial_channels_last_{threads}thr"] = ms(lambda: cl(x))
        torch.set_num_threads(1)
        inputs = cl.window_inputs(x)
        traced = traced_members(cl)
        eager = [lambda m=m: m(inputs[m.window]) for m in cl.members]
        jit = [lambda t=t, m=m: t(inputs[m.window]) for t, m in zip(traced, cl.members)]
        stop = threading.Event()

        def python_busy():
            while not stop.is_set():
                sum(i * i for i in range(20000))

        th = threading.Thread(target=python_busy)
        th.start()
        try:
            out["members_eager_beside_python_thread"] = ms(lambda: [f() for f in eager])
            out["members_traced_beside_python_thread"] = ms(lambda: [f() for f in jit])
        finally:
            stop.set()
            th.join()
        out["members_eager_alone"] = ms(lambda: [f() for f in eager])
        out["members_traced_alone"] = ms(lambda: [f() for f in jit])
    for workers in (0, 1):
        set_compute_threads(workers)
        out[f"scores_from_crops_compute_{workers}"] = ms(lambda: model.scores_from_crops(crops))
    out["load_after"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
