"""Entry point of the frozen (PyInstaller) app: the same as ``python main.py``.

The desktop app runs its models in a *spawned* helper process (``fasfinder/host.py``). In a frozen app that
child is this executable started again with ``--multiprocessing-fork``: ``freeze_support()`` must run
first so the child becomes the helper instead of a second window. ``main.main`` imports torch before
Qt for the GUI (Qt first breaks torch's DLL loading on Windows, WinError 1114).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import main

    sys.exit(main.main())
