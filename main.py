"""FASFinder entry point: the desktop app by default, CLI subcommands otherwise.

    python main.py                      # desktop app on the default gallery
    python main.py search IMG --json    # command line (see `python main.py --help`)
"""

import sys


def _wants_gui(argv: list[str]) -> bool:
    return not argv or argv[0].startswith("--screenshot") or argv[0] in ("--db", "--query", "--gui")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _wants_gui(argv):
        # torch before Qt: importing Qt first breaks torch's DLL loading on Windows (WinError 1114).
        import torch  # noqa: F401

        from ui.app import run

        return run(argv)
    from fasfinder.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
