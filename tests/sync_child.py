"""``python -m tests.sync_child GALLERY URL`` -- one sync in its own process (killed with -9 by the tests)."""

import sys

from fasfinder.gallery import Gallery
from fasfinder.server.connection import ServerConfig
from fasfinder.server.sync import Sync

if __name__ == "__main__":
    gallery = Gallery(sys.argv[1])
    print("ready", flush=True)
    report = Sync(gallery, ServerConfig(sys.argv[2]), batch=int(sys.argv[3]) if len(sys.argv) > 3 else 25).run()
    gallery.close()
    print("done", report.pushed, report.pulled_images, flush=True)
