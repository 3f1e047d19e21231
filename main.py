"""FASFinder entry point: the desktop app by default, CLI subcommands otherwise.

    python main.py                      # desktop app on the default gallery
    python main.py photo.jpg            # desktop app, searching this photo (app options in any order)
    python main.py --demo               # desktop app on a separate demo gallery
    python main.py search IMG --json    # command line (see `python main.py --help`)
"""

import sys


def _commands() -> set[str]:
    from fasfinder.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # the subcommands' names
    return set(sub.choices)


def _wants_gui(argv: list[str]) -> bool:
    """The app for no arguments, app options, or a photo (an existing file or a name with a suffix) first;
    the command line for a command word, -v, or any other word (a usage error, exit 2)."""

    if not argv:
        return True
    first = argv[0]
    if first in ("-v", "--verbose"):
        return False
    if first.startswith("-"):
        return True
    if first in _commands():
        return False
    from pathlib import Path

    return Path(first).exists() or bool(Path(first).suffix)


def _help() -> int:
    from fasfinder.cli import build_parser
    from ui.app import build_parser as app_parser

    app_parser().print_help()
    print("\ncommand line (python main.py COMMAND --help for each):")
    build_parser().print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        return _help()
    if _wants_gui(argv):
        # torch before Qt: importing Qt first breaks torch's DLL loading on Windows (WinError 1114).
        import torch  # noqa: F401

        from ui.app import run

        return run(argv)
    from fasfinder import report
    from fasfinder.cli import main as cli_main

    report.set_pdf_renderer(_qt_pdf)  # `report --pdf`: Qt's layout, as in the GUI (the core never imports Qt)
    return cli_main(argv)


def _qt_pdf(html: str, path: str) -> None:
    import torch  # noqa: F401  (torch before Qt, as above)

    from ui.case_record import write_pdf_from_cli

    write_pdf_from_cli(html, path)


if __name__ == "__main__":
    sys.exit(main())
