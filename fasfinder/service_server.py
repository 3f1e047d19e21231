"""Service operations of the office server: sync the local replica, show its state, set the server up.

A mixin of :class:`fasfinder.service.FasFinder` (it needs ``self.gallery`` and ``self.settings``).
Searching never calls any of these: the replica answers searches with the server down.
"""

from __future__ import annotations

from .errors import BadArgument
from .operations import CancelToken, Progress, operation


def server_config(url: str | None, *, password_file: str | None = None, tls: dict | None = None, settings=None):
    from .server.connection import ServerConfig

    url = url or (settings.server if settings is not None else "")
    if not url:
        raise BadArgument("no server: give --server postgresql://user@host/db (or set it in the settings)")
    pw_file = password_file or (settings.server_password_file if settings is not None else "") or None
    return ServerConfig(url, password_file=pw_file, tls=dict(tls or {}))


class ServerOperations:
    """Replica sync (needs ``self.gallery``, ``self.settings``)."""

    @operation(progress=True)
    def sync(self, server: str | None = None, *, password_file: str | None = None, tls: dict | None = None,
             case_id: str | None = None, progress: Progress | None = None, cancel: CancelToken | None = None) -> dict:
        """Push this workstation's pending changes to the office server, then pull the server's since the last sync."""

        from .server.sync import Sync

        config = server_config(server, password_file=password_file, tls=tls, settings=self.settings)
        report = Sync(self.gallery, config, default_case=case_id or self.settings.server_case or None,
                      progress=progress, cancel=cancel).run()
        return report.to_dict()

    @operation
    def sync_status(self) -> dict:
        """The replica's last sync time, pending (unpushed) changes and recorded conflicts; never contacts the server."""

        from .server import replica

        return replica.status(self.gallery)

    @operation
    def record_decision(self, person_id: int, verdict: str, *, note: str = "", query_sha256: str | None = None,
                        face_id: int | None = None) -> str:
        """Record a decision on a match (synced to the office server at the next sync); its uuid."""

        from .server import replica

        return replica.record_decision(self.gallery, person_id=int(person_id), verdict=verdict, note=note,
                                       query_sha256=query_sha256, face_id=face_id)

    @operation
    def status_text(self) -> str:
        """One line for the status bar: last sync and pending changes (empty when this gallery never synced)."""

        st = self.sync_status()
        if not st["attached"]:
            return ""
        last = (st["last_sync"] or "never")[:19].replace("T", " ")
        text = f"last sync {last} UTC, {st['pending']} pending"
        return text + (f", {st['conflicts']} conflict(s)" if st["conflicts"] else "")
