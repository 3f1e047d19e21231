"""Gallery-level timings at scale: open with an IVF build, reopen (load + checksum), sync after another
connection changed the gallery. N random unit vectors written straight into SQLite (no crops).

    python bench/bench_gallery_open.py 200000
"""
import sqlite3
import time
import numpy as np
import sys
import os
import shutil
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from fasfinder.gallery import Gallery
from fasfinder.faces import Face
N = int(sys.argv[1]); d = '/dev/shm/openbench'; shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
db = d + '/g.db'
rng = np.random.default_rng(0)
lm = np.full((68, 2), 32.0, np.float32)
with Gallery(db) as g:
    v = rng.standard_normal((1, 128)).astype(np.float32); v /= np.linalg.norm(v)
    g.add_image(label='p', path='x', sha256='s0', width=64, height=64, rgb=np.zeros((64, 64, 3), np.uint8),
                faces=[Face(box=(16, 16, 48, 48), landmarks=lm, shape5=lm[:5], score=1.0, detector='t')], embeddings={'e': v})
raw = sqlite3.connect(db); t0 = time.time()
with raw:
    for s in range(1, N, 50000):
        m = min(50000, N - s)
        V = rng.standard_normal((m, 128)).astype(np.float32); V /= np.linalg.norm(V, axis=1, keepdims=True)
        raw.executemany("INSERT INTO images(id, person_id, path, sha256, width, height, created_at) VALUES (?,1,'x',?,64,64,'t')", [(s + i + 1, f"s{s+i}") for i in range(m)])
        raw.executemany("INSERT INTO faces(id, image_id, box, landmarks, detector, score, crop, crop_box) VALUES (?,?,'[0,0,1,1]',x'','t',1,x'','[0,0,1,1]')", [(s + i + 1, s + i + 1) for i in range(m)])
        raw.executemany("INSERT INTO embeddings VALUES (?, 'e', ?)", [(s + i + 1, V[i].tobytes()) for i in range(m)])
raw.close(); print('insert', round(time.time() - t0, 1))
for label in ('first open (index stale: IVF build)', 'reopen (load + checksum)', ):
    t0 = time.time(); g = Gallery(db); info = g.index_info('e'); t1 = time.time(); g.search('e', V[:1], 5, audit=False); t2 = time.time()
    print(label, round(t1 - t0, 2), 's; first search', round((t2 - t1) * 1e3, 1), 'ms', info['kind'], info['nlist'], info['nprobe'], info['faces'])
    g.close()
t0 = time.time(); g = Gallery(db); g.index_info('e'); g2 = Gallery(db); g2.delete_image(5); g2.close()
t1 = time.time(); g.search('e', V[:1], 5, audit=False); print('search after another connection deleted a face (id-diff sync)', round((time.time() - t1) * 1e3, 1), 'ms')
print(g.verify_index('e')['consistent'])
