"""What the action keys do: confirm, re-check the target against the server, act on that id only.

A confirmation names what it will act on as the screen showed it. Before acting, the session is
read again: if its statement (query id) changed, or it is a different session under the same id
(other user or connection time), nothing is done and the notification says why. Results and
server errors come back as notifications, in words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from textual.screen import ModalScreen

from .client import ApiFailure, ClientError, NotServed, Unreachable
from .format import age, duration
from .model import (
    ActiveQuery,
    Alert,
    BlockerNode,
    MaintenanceJob,
    Session,
    Silence,
    Snapshot,
    field_of,
    int_,
    maintenance_targets,
    parse_all,
    records,
    str_,
    wait_edges,
)
from .panes.base import SessionTarget
from .screens.confirm import ConfirmScreen
from .screens.maintenance import JOBS_SHOWN, MaintenanceScreen, job_result
from .screens.silence import SilenceRequest, SilenceScreen

if TYPE_CHECKING:
    from .app import RdbTop

FOLLOW_FIRST_DELAY = 0.25  # seconds before a started job is first read again
FOLLOW_MAX_DELAY = 5.0


def frees_words(behind: list[int] | None) -> str:
    """What terminating a session frees: the sessions waiting behind it, or unknown."""
    if behind is None:
        return "unknown"
    if not behind:
        return "no waiting session"
    return (f"{len(behind)} waiting session{'s' if len(behind) != 1 else ''} ({', '.join(map(str, behind[:12]))}"
            f"{', …' if len(behind) > 12 else ''})")


def in_words(exc: ClientError, what: str) -> str:
    if isinstance(exc, Unreachable):
        return f"The server cannot be reached, so {what} was not done: {exc}"
    if isinstance(exc, NotServed):
        return f"This server does not offer {what} ({exc.message})."
    if isinstance(exc, ApiFailure):
        reason = {401: "the server no longer accepts our credentials",
                  403: "our role is not allowed to do this",
                  404: "it no longer exists",
                  409: "it is in a state that does not allow it"}.get(exc.status, f"the server answered {exc.status}")
        return f"Could not {what}: {reason}. Server says: {exc.message}"
    return f"Could not {what}: {exc}"


class Actions:
    def __init__(self, app: RdbTop) -> None:
        self.app = app
        # From an action key to the answer of its last dialog: keys typed meanwhile belong to the
        # dialogs (or to nothing), never to the console's own keys.
        self.asking = False

    def _run(self, flow: Coroutine[Any, Any, None]) -> None:
        self.app.run_worker(flow, group="action", exit_on_error=False)

    def _ready(self) -> bool:
        if self.app.client is None:
            self.app.notify("Not connected yet.", severity="warning")
            return False
        return True

    def _done(self, message: str) -> None:
        self.app.notify(message, title="done")
        if self.app.poller is not None:
            self.app.poller.poll_now()

    def _error(self, message: str) -> None:
        self.app.notify(message, severity="error", timeout=10, kind="action failed")

    def _warn(self, message: str) -> None:
        self.app.notify(message, severity="warning", timeout=10, kind="action refused")

    def _ask(self, screen: ModalScreen[Any], last: bool = True) -> asyncio.Future[Any]:
        """Open a dialog now, in the handler of the key that asked for it, and return its answer to come.

        Keys typed right after that key are queued behind it and so land in the dialog. A dialog
        pushed from the flow's worker came after them: the text meant for an acknowledgement's
        note ran as console keys (`b` opened the backup dialog). A flow's later dialogs (after
        the first answer) are opened from its worker; `asking` keeps the console's keys off
        until the last one is answered."""
        self.asking = True
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def answered(result: Any) -> None:
            if last or result is None:
                self.asking = False  # the flow asks nothing more
            if not answer.done():
                answer.set_result(result)

        self.app.push_screen(screen, answered)
        return answer

    async def _confirmed(self, answer: asyncio.Future[str | None], declined: str) -> str | None:
        result = await answer
        if result is None:
            self.app.notify(declined)
        return result

    async def _send(self, method: str, path: str, body: Any, what: str) -> tuple[bool, Any]:
        """(True, the answer), or (False, None) after telling the user in words why not."""
        assert self.app.client is not None
        try:
            if method == "DELETE":
                return True, await self.app.client.delete(path)
            return True, await self.app.client.post(path, body)
        except ClientError as exc:
            self._error(in_words(exc, what))
            return False, None

    async def _current(self, t: SessionTarget, what: str) -> dict[str, Any] | None:
        """The session as the server has it now, or None (and a notification) if it is gone."""
        assert self.app.client is not None
        try:
            body = await self.app.client.get(f"/api/v1/sessions/{t.session_id}")
        except ApiFailure as exc:
            if exc.status == 404:
                self._warn(f"Session {t.session_id} has ended: nothing was {what}.")
            else:
                self._error(in_words(exc, f"check session {t.session_id}"))
            return None
        except ClientError as exc:
            self._error(in_words(exc, f"check session {t.session_id}"))
            return None
        if not isinstance(body, dict):
            self._error(f"The server's answer about session {t.session_id} is not a session: nothing was {what}.")
            return None
        same_user = t.username is None or str_(body, "username") in (None, t.username)
        created = int_(body, "created_at")
        if not same_user or (t.created_at is not None and created is not None and created != t.created_at):
            self._warn(f"Session {t.session_id} is now a different connection (user {str_(body, 'username')}): "
                       f"nothing was {what}.")
            return None
        return body

    # -- cancel and terminate --------------------------------------------------------------

    def cancel(self, t: SessionTarget | None) -> None:
        if t is None:
            self.app.notify("Select a session or a query first.")
        elif not t.query_id:
            self.app.notify(f"Session {t.session_id} runs no statement: nothing to cancel.")
        elif self._ready():
            self._run(self._cancel(t, self._ask(ConfirmScreen(
                f"Cancel the statement of session {t.session_id}?",
                [("session", t.session_id), ("user", t.username), ("query", t.query_id), ("SQL", t.sql)],
                "Only this statement is interrupted; the session stays connected."))))

    async def _cancel(self, t: SessionTarget, answer: asyncio.Future[str | None]) -> None:
        if await self._confirmed(answer, "Nothing was canceled.") is None:
            return
        current = await self._current(t, "canceled")
        if current is None:
            return
        now_id = str_(current, "current_query_id")
        changed = now_id != t.query_id if "current_query_id" in current else str_(current, "current_query") != t.sql
        if changed:
            self._warn(f"The statement of session {t.session_id} changed since the screen was drawn "
                       f"(was {t.query_id}, now {now_id or 'none'}): nothing was canceled.")
            return
        ok, body = await self._send("POST", f"/api/v1/query/{t.query_id}/cancel", {"reason": "rdbtop console"},
                                    f"cancel {t.query_id} of session {t.session_id}")
        if ok:
            self._done(str_(body, "message") or f"Statement {t.query_id} of session {t.session_id} canceled.")

    def terminate(self, t: SessionTarget | None) -> None:
        if t is None:
            self.app.notify("Select a session first.")
        elif self._ready():
            # the dialog is open before the graph is read again: it says what the last poll knew and
            # the fresh count replaces it when it comes
            dialog = ConfirmScreen(
                f"Terminate session {t.session_id}?",
                [("session", t.session_id), ("user", t.username), ("query", t.query_id or "none"), ("SQL", t.sql),
                 ("frees", frees_words(self.known_behind(t.session_id)))],
                "The session is disconnected; its open transaction is rolled back.")
            answer = self._ask(dialog)
            self._run(self._recount(t.session_id, dialog))
            self._run(self._terminate(t, answer))

    async def _recount(self, session_id: int, dialog: ConfirmScreen) -> None:
        behind = await self.waiting_behind(session_id)
        if behind is not None and dialog.is_attached:
            dialog.set_fact("frees", frees_words(behind))

    async def _terminate(self, t: SessionTarget, answer: asyncio.Future[str | None]) -> None:
        if await self._confirmed(answer, "Nothing was terminated.") is None:
            return
        if await self._current(t, "terminated") is None:
            return
        ok, _ = await self._send("DELETE", f"/api/v1/sessions/{t.session_id}", None,
                                 f"terminate session {t.session_id}")
        if ok:
            self._done(f"Session {t.session_id} ({t.username or '–'}) terminated.")

    # -- alerts, maintenance, backup -----------------------------------------------------------

    def acknowledge(self, alert: Alert | None) -> None:
        if alert is None:
            self.app.notify("Select an alert first.")
        elif alert.status != "firing":
            self.app.notify(f"Alert {alert.alert_id} is {alert.status}: nothing to acknowledge.")
        elif self._ready():
            self._run(self._acknowledge(alert, self._ask(ConfirmScreen(
                f"Acknowledge alert {alert.alert_id}?",
                [("alert", alert.alert_id), ("severity", alert.severity), ("title", alert.title),
                 ("since", age(alert.triggered_at, self.app.clock()))],
                "Acknowledge it (others see who did)?", note="optional note, e.g. what you are doing about it"))))

    async def _acknowledge(self, alert: Alert, answer: asyncio.Future[str | None]) -> None:
        note = await self._confirmed(answer, "Nothing was acknowledged.")
        if note is None:
            return
        ok, _ = await self._send("POST", f"/api/v1/alerts/{alert.alert_id}/acknowledge",
                                 {"note": note} if note else None, f"acknowledge alert {alert.alert_id}")
        if ok:
            self._done(f"Alert {alert.alert_id} acknowledged.")

    def silence(self, alert: Alert | None) -> None:
        if alert is None:
            self.app.notify("Select an alert first.")
        elif not alert.rule and not alert.labels:
            self.app.notify(f"Alert {alert.alert_id} names no rule or labels to silence it by.")
        elif self._ready():
            self._run(self._silence(alert, self._ask(SilenceScreen(alert.title or alert.alert_id, alert.rule,
                                                                   alert.labels))))

    async def _silence(self, alert: Alert, answer: asyncio.Future[SilenceRequest | None]) -> None:
        wanted = await answer
        if wanted is None:
            self.app.notify("No silence was created.")
            return
        body: dict[str, Any] = {"duration_seconds": wanted.duration_seconds}
        if wanted.rule_id:
            body["rule_id"] = wanted.rule_id
        if wanted.labels:
            body["labels"] = wanted.labels
        if wanted.comment:
            body["comment"] = wanted.comment
        ok, created = await self._send("POST", "/api/v1/alerts/silences", body, "create the silence")
        if ok:
            silence = Silence.parse(created) if isinstance(created, dict) else None
            until = silence.expires_at if silence else None
            what = (f"every alert of rule {wanted.rule_id}" if wanted.rule_id and not wanted.labels else
                    f"alert {alert.alert_id}")
            self._done(f"{f'Silence {silence.silence_id}' if silence else 'A silence'} holds back {what}" +
                       (f" until {time.strftime('%H:%M', time.localtime(until))}." if until else "."))

    def maintenance(self) -> None:
        if self._ready():
            dialog = MaintenanceScreen()  # open at once; what the server has is read meanwhile
            chosen = self._ask(dialog, last=False)
            self._run(self._read_maintenance(dialog))
            self._run(self._maintenance(chosen))

    async def _read_maintenance(self, dialog: MaintenanceScreen) -> None:
        targets, jobs = await self.maintenance_targets(), await self.maintenance_jobs()
        if dialog.is_attached:
            dialog.loaded(targets, jobs)

    async def _maintenance(self, chosen: asyncio.Future[tuple[str, str | None] | None]) -> None:
        choice = await chosen
        if choice is None:
            return
        operation, target = choice
        if await self._confirmed(self._ask(ConfirmScreen(
                f"Run {operation}?", [("operation", operation), ("target", target or "everything"),
                                      ("server", self.app.source.label)],
                "It runs on the server as a job; heavy operations slow other sessions.")),
                "No maintenance was started.") is None:
            return
        ok, body = await self._send("POST", "/api/v1/admin/maintenance", {"operation": operation, "target": target},
                                    f"start {operation}")
        if ok:
            job = str_(body, "job_id")
            what = f"{operation} on {target or 'everything'}"
            self._done(f"{what} started" + (f" (job {job})." if job else "."))
            if job:
                self._run(self._follow(job, what))

    async def _follow(self, job_id: str, what: str) -> None:
        """Read the job until it ends, then say how it ended; quickly at first, as most jobs are short."""
        assert self.app.client is not None
        delay = FOLLOW_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)
            delay = min(FOLLOW_MAX_DELAY, delay * 2)
            try:
                job = MaintenanceJob.parse(await self.app.client.get(f"/api/v1/admin/maintenance/{job_id}"))
            except Unreachable:
                continue  # for a while: the banner says so; the job goes on meanwhile
            except ClientError:
                return  # not served (RustyDB runs jobs without telling about them), or forgotten
            if job is None:
                return
            if job.finished:
                break
        took = "" if job.duration_ms is None else f" in {duration(job.duration_ms / 1000)}"
        result = job_result(job)
        message = f"{what} {job.status}{took}" + (f": {result}" if result else "") + "."
        severity = {"completed": "information", "canceled": "warning"}.get(job.status or "", "error")
        self.app.notify(message, title="maintenance", severity=severity, timeout=10)  # type: ignore[arg-type]

    async def maintenance_targets(self) -> dict[str, list[str]] | None:
        """The schemas and tables jobs can target, or None when the server does not list them."""
        assert self.app.client is not None
        try:
            return maintenance_targets(await self.app.client.get("/api/v1/admin/maintenance/targets"))
        except ClientError:
            return None

    async def maintenance_jobs(self) -> list[MaintenanceJob] | None:
        """The newest jobs, or None when the server does not list them."""
        assert self.app.client is not None
        try:
            body = await self.app.client.get("/api/v1/admin/maintenance", page_size=JOBS_SHOWN)
        except ClientError:
            return None
        return parse_all(field_of(body, "data"), MaintenanceJob.parse) if isinstance(body, dict) else None

    def backup(self) -> None:
        if not self._ready():
            return
        snap = self.app.latest
        good = [b for b in snap.backups if b.good] if snap else []
        last = max((b.completion_time or b.start_time or 0 for b in good), default=None)
        self._run(self._backup(self._ask(ConfirmScreen(
            "Start a full backup?",
            [("server", self.app.source.label), ("type", "full"),
             ("last good", "none" if last is None else f"{age(last, self.app.clock())} ago")],
            "The backup runs on the server while sessions go on."))))

    async def _backup(self, answer: asyncio.Future[str | None]) -> None:
        if await self._confirmed(answer, "No backup was started.") is None:
            return
        ok, body = await self._send("POST", "/api/v1/backup/full", {"backup_type": "full"}, "start a backup")
        if ok:
            self._done(f"Backup {str_(body, 'backup_id') or ''} started ({str_(body, 'status') or 'accepted'}).")

    # -- reads ---------------------------------------------------------------------------------

    def known_behind(self, session_id: int) -> list[int] | None:
        """The sessions that waited for `session_id` at the last poll (its graph, else its sessions'
        blocking_session); None when that poll read neither."""
        snap = self.app.latest
        if snap is None or not (snap.blocking_tree or snap.wait_edges or snap.sessions):
            return None
        return snap.waiting_behind(session_id)

    async def waiting_behind(self, session_id: int) -> list[int] | None:
        """The sessions that wait for `session_id` now, from a fresh read of the blocking graph (the
        pane on screen may not have read it), deadlock cycles included; what the last poll knew
        when the server has no graph; None when neither can tell."""
        if self.app.client is not None:
            try:
                graph = await self.app.client.get("/api/v1/transactions/locks/graph")
            except ClientError:
                graph = None
            if isinstance(graph, dict) and isinstance(graph.get("blocking_tree"), list):
                fresh = Snapshot(taken_at=self.app.clock(),
                                 blocking_tree=parse_all(graph["blocking_tree"], BlockerNode.parse),
                                 wait_edges=wait_edges(graph))
                return fresh.waiting_behind(session_id)
        return self.known_behind(session_id)

    async def role(self) -> str | None:
        """monitor, operator or admin, when the server tells a login token's role; else None (unknown)."""
        if self.app.client is None:
            return None
        try:
            body = await self.app.client.get("/api/v1/auth/validate")
        except ClientError:
            return None
        return str_(body, "role") if body and body.get("valid") is True else None

    async def statement(self, query_id: str, session: Session | None) -> ActiveQuery | None:
        """A statement as the server has it now; from its session's fields when the server cannot say."""
        assert self.app.client is not None
        try:
            found = ActiveQuery.parse(await self.app.client.get(f"/api/v1/query/{query_id}/status"))
        except ClientError:
            found = None  # a server without the status endpoint, or a statement that just ended
        if found is not None or session is None or session.query_id != query_id:
            return found
        return ActiveQuery(query_id, session.session_id, session.username, session.state, None, session.wait_event,
                           session.blocking_session, session.sql, session.sql_id, session.wait_class)

    async def fingerprint(self, sql_id: str | None) -> tuple[dict[str, Any] | None, str]:
        """The statistics of one fingerprint (the server has no per-id endpoint: search the profiles)."""
        if sql_id is None or self.app.client is None:
            return None, "no fingerprint for this statement"
        try:
            body = await self.app.client.get("/api/v1/profiling/queries", page_size=1000)
        except ClientError as exc:
            return None, in_words(exc, "read the fingerprint statistics")
        found = next((p for p in records(field_of(body, "profiles")) if str_(p, "query_id") == sql_id), None)
        return found, "" if found else f"no statistics for fingerprint {sql_id} yet"
