"""CLI commands of the office server: ``server init | add-user | add-case`` and ``sync``.

Registered by :func:`fasfinder.cli.build_parser` (which passes its own helpers in, so this module
stays below the CLI in the layers). Passwords are never command-line arguments: they come from
``$FASFINDER_SERVER_PASSWORD`` or ``--password-file`` (mode 0600).
"""

from __future__ import annotations

import os

from .server.connection import TLS_OPTIONS

NEW_USER_PASSWORD_ENV = "FASFINDER_NEW_USER_PASSWORD"


def _tls(args) -> dict:
    return {k: getattr(args, k) for k in TLS_OPTIONS if getattr(args, k, None)}


def _connection_args(sp, *, required: bool) -> None:
    sp.add_argument("--server", required=required, help="postgresql://user@host:port/db (no password in it; "
                    "default: the settings' server)")
    sp.add_argument("--password-file", help="file (mode 0600) whose first line is the password "
                    "(default: $FASFINDER_SERVER_PASSWORD, else libpq's .pgpass / peer authentication)")
    for opt in TLS_OPTIONS:
        if opt != "sslpassword":
            sp.add_argument(f"--{opt}", help=f"libpq {opt}")


def add_server_commands(sub, common, service, emit) -> None:
    from .service_server import server_config

    def admin_conn(args):
        return server_config(args.server, password_file=args.password_file, tls=_tls(args)).connect(autocommit=True)

    def cmd_server(args) -> int:
        from .server import schema

        conn = admin_conn(args)
        try:
            if args.server_command == "init":
                out = schema.init_server(conn)
                emit(out, args.json, f"server schema version {out['schema_version']} ready; roles: "
                                     + ", ".join(out["roles"]))
            elif args.server_command == "add-user":
                schema.add_user(conn, args.name, args.role, password=os.environ.get(NEW_USER_PASSWORD_ENV))
                emit({"user": args.name, "role": args.role}, args.json, f"user {args.name}: {args.role}")
            else:
                schema.add_case(conn, args.case_id, title=args.title or "", assign=args.assign or [])
                emit({"case_id": args.case_id, "assigned": args.assign or []}, args.json,
                     f"case {args.case_id}: assigned {', '.join(args.assign or []) or 'nobody'}")
        finally:
            conn.close()
        return 0

    def cmd_sync(args) -> int:
        ff = service(args)
        if args.status:
            out = ff.sync_status()
            emit(out, args.json, ff.status_text() or "this gallery has never been synced")
            return 0
        progress = None
        if args.progress:
            import sys

            def progress(done, total, message):
                sys.stderr.write(f"\r{message}: {done}" + (f"/{total}" if total else "") + " " * 8)
                sys.stderr.flush()

        out = ff.sync(args.server, password_file=args.password_file, tls=_tls(args), case_id=args.case,
                      progress=progress)
        emit(out, args.json, f"pushed {out['pushed']}, pulled {out['pulled_persons']} person row(s) and "
                             f"{out['pulled_images']} image(s), removed {out['removed_persons']}, "
                             f"{len(out['conflicts'])} conflict(s)")
        return 0

    sp = sub.add_parser("server", help="set up the office server (PostgreSQL): schema, roles, users, cases")
    ss = sp.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    s = ss.add_parser("init", help="create or upgrade the schema, roles and row-level security (DBA account)")
    s = [s, ss.add_parser("add-user", help=f"create a login role as viewer, caseworker or admin (password: "
                                           f"${NEW_USER_PASSWORD_ENV}; needs CREATEROLE)"),
         ss.add_parser("add-case", help="create a case and assign users to it (an admin)")]
    s[1].add_argument("name")
    s[1].add_argument("--role", required=True, choices=["viewer", "caseworker", "admin"])
    s[2].add_argument("case_id")
    s[2].add_argument("--title")
    s[2].add_argument("--assign", nargs="+", help="user names")
    for p in s:
        _connection_args(p, required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_server)

    sp = sub.add_parser("sync", help="push this workstation's changes to the office server and pull the others'")
    common(sp, engine=False)
    _connection_args(sp, required=False)
    sp.add_argument("--case", help="case id for persons enrolled without one (default: the settings' server_case)")
    sp.add_argument("--status", action="store_true", help="only show the last sync and pending changes (offline)")
    sp.add_argument("--progress", action="store_true", help="progress on stderr")
    sp.set_defaults(func=cmd_sync)


