"""What the console says about itself: refused credentials, the role, pause and staleness at every width."""

from __future__ import annotations

import io

import pytest

from rdbtop.once import run_once

from .conftest import make_app, running, until
from .fakeserver import FakeServer, FakeSource


def status(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.status.render())


def polling(app) -> bool:  # type: ignore[no-untyped-def]
    return any(w.group == "poll" and not w.is_finished for w in app.workers)


async def test_refused_credentials_are_said_in_words_and_not_retried(server: FakeServer) -> None:
    server.refuse = True
    app = make_app(server, interval=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.refused is not None)
        await pilot.pause()
        banner = str(app.banner.render())
        assert "Credentials refused" in banner and "invalid API key" in banner and "nreachable" not in banner
        assert "credentials refused" in status(app).lower() and "actions on" not in status(app)
        await until(pilot, lambda: not polling(app))  # no loop asking again with what was refused
        calls = len(server.calls)
        server.refuse = False  # the key was fixed on the server: r tries once more
        await pilot.press("r")
        await until(pilot, lambda: app.shown is not None)
        assert len(server.calls) > calls and not app.banner.has_class("shown") and app.refused is None


@pytest.mark.parametrize("as_json", [False, True])
async def test_once_exits_3_when_the_credentials_are_refused(server: FakeServer, as_json: bool) -> None:
    server.refuse = True
    out, err = io.StringIO(), io.StringIO()
    assert await run_once(FakeSource(server), as_json, False, out, err) == 3
    assert "credentials refused" in err.getvalue() and "invalid API key" in err.getvalue()
    assert out.getvalue() == ""  # never a snapshot that says "healthy"


@pytest.mark.parametrize(("role", "said"), [(None, "role not told"), ("operator", "operator: actions on"),
                                             ("monitor", "READ-ONLY (monitor role)")])
async def test_the_status_line_says_actions_on_only_for_a_role_that_has_them(server: FakeServer, role, said) -> None:  # type: ignore[no-untyped-def]
    server.role = role
    async with running(server) as (app, pilot):
        await until(pilot, lambda: app.role_asked)
        await pilot.pause()
        assert said in status(app)
        assert ("actions on" in status(app)) == (role == "operator")


def test_the_status_line_says_role_asking_before_the_server_answered() -> None:
    app = make_app(FakeServer())
    assert app._mode()[0] == "role: asking…"


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (160, 48)])
async def test_paused_and_the_frozen_datas_age_stay_on_the_status_line(server: FakeServer, size) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=size) as (app, pilot):
        await pilot.press("space")
        server.now += 75  # the clock goes on; the data on screen stays what it was
        await pilot.press("r")
        await until(pilot, lambda: app.latest.taken_at == server.now)
        app._update_status()
        await pilot.pause()
        line = status(app)
        assert "PAUSED" in line and "08:00:00" in line and "1m15s old" in line, line
        assert "fake://" in line and "role" in line, line
        assert len(line) <= size[0] - 2


async def test_a_stale_display_says_so_on_the_status_line_at_80_columns(server: FakeServer) -> None:
    from rdbtop.client import Unreachable

    async with running(server, size=(80, 24)) as (app, pilot):
        server.now += 75
        app.failed(Unreachable("cannot reach http://fake: [Errno 111] Connection refused"), 4.0)
        app._update_status()
        await pilot.pause()
        assert "STALE" in status(app) and "1m15s old" in status(app)
        banner = str(app.banner.render()).splitlines()
        assert banner[0].startswith("Server unreachable since 08:01:15") and "Connection refused" in banner[1]
        assert all(len(line) <= 78 for line in banner)


def toasts(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(n.message) for n in app._notifications]


async def test_repeated_notices_replace_each_other_and_never_climb_over_the_status_line(server: FakeServer) -> None:
    async with running(server, size=(80, 24), toasts=True) as (app, pilot):
        await pilot.press(*"++++++")
        await pilot.pause()
        assert [t for t in toasts(app) if t.startswith("Refreshing")] == ["Refreshing every 1m00s."]
        await pilot.press("2", "s", "i", "t", "minus", "s", "i", "t")  # five kinds of notice, some twice
        await pilot.pause()
        assert toasts(app) == ["Sessions: sorted by id ▲", "Idle sessions shown.", "Theme: rdb-contrast"]
        for i in range(3):  # long ones: fewer fit below the tab bar
            app.notify(f"error {i}: " + "the server said something long " * 8, severity="error", kind=f"e{i}")
        await pilot.pause()
        assert toasts(app)[-1].startswith("error 2") and len(toasts(app)) < 3
        assert sum(map(app._toast_height, app._notifications)) <= 24 - 4


@pytest.mark.parametrize(("settings", "why"), [({"read_only": True}, "read-only (--read-only)"),
                                               ({"watch": True}, "watch mode is a read-only kiosk")])
async def test_an_action_key_that_does_nothing_says_why(server: FakeServer, settings, why) -> None:  # type: ignore[no-untyped-def]
    async with running(server, **settings) as (app, pilot):
        await pilot.press("2")
        await pilot.press("K")
        await until(pilot, lambda: any(why in t for t in toasts(app)))
        assert "K: Terminate is off" in " ".join(toasts(app)) and server.actions() == []


def test_rotate_goes_with_watch_and_help_names_the_exit_codes(capsys) -> None:  # type: ignore[no-untyped-def]
    from rdbtop.cli import build_parser, main

    with pytest.raises(SystemExit) as exit_:
        main(["--rotate", "5"])
    assert exit_.value.code == 2 and "--rotate goes with --watch" in capsys.readouterr().err
    text = build_parser().format_help()
    assert "2  the server cannot be reached" in text and "3  the server refused the credentials" in text


async def test_a_refused_login_is_said_and_not_tried_again(server: FakeServer) -> None:
    from rdbtop.app import RdbTop
    from rdbtop.client import CredentialsRefused
    from rdbtop.config import Settings

    class RefusedLogin(FakeSource):
        opened = 0

        async def open(self):  # type: ignore[no-untyped-def]
            self.opened += 1
            raise CredentialsRefused(401, "UNAUTHORIZED", "invalid username or password")

    source = RefusedLogin(server)
    app = RdbTop(Settings(url="http://fake", interval=0.5), source, clock=lambda: server.now)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.refused is not None and not polling(app))
        assert "invalid username or password" in str(app.banner.render()) and source.opened == 1
        assert "nreachable" not in str(app.banner.render())
