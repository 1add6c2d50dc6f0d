"""80x24 holds together: nothing cut mid-word where a shorter form exists; the small truths."""

from __future__ import annotations

from textual.widgets import Footer

from rdbtop.screens.confirm import ConfirmScreen
from rdbtop.screens.help import HelpScreen
from rdbtop.widgets.table import KeyedTable

from .conftest import on_pane, plain, running, until


def footer_text(app) -> str:  # type: ignore[no-untyped-def]
    footer = app.query_one(Footer)
    return " ".join(str(k.render()) for k in footer.query("FooterKey") if k.region.right <= footer.region.right)


async def test_the_footer_keeps_every_key_whole_at_80_columns(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        keys = list(app.query_one(Footer).query("FooterKey"))
        assert keys and all(k.region.right <= 80 for k in keys), [(str(k.render()), k.region) for k in keys]
        assert "Pause" in str(keys[-1].render())
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert not app.query_one(Footer).compact and app.query_one(Footer).show_command_palette


async def test_the_cancel_dialog_wraps_the_sql_inside_its_value_column(server) -> None:  # type: ignore[no-untyped-def]
    server.session(2).update(current_query="UPDATE inventory.stock SET quantity = quantity - 1, updated_at = "
                                           "current_timestamp, updated_by = 'shop' WHERE id = ? AND quantity > 0")
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        app.query_one("#sessions-table").select_key("2")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        facts = app.screen.query_one(".facts")
        lines = plain(facts, facts.content_size.width).splitlines()
        sql = [i for i, line in enumerate(lines) if "SQL" in line][0]
        start = lines[sql].index("UPDATE")
        assert len(lines) > sql + 1 and all(line.startswith(" " * start) and line.strip() for line in lines[sql + 1:])


async def test_ash_top_sql_shows_the_text_at_80_columns(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "ash", "5")
        top = app.query_one("#top-sql_id", KeyedTable)
        assert top.labels == ["Top SQL", "%"]  # the hash went first
        assert top.get_row("f00d")[0].plain.startswith("UPDATE inv")


async def test_the_backups_pane_at_80_columns(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "backups", "7")
        labels = app.query_one("#backups-table", KeyedTable).labels
        assert labels[-1] == "Error / path"
        summary = plain(app.pane.query_one(".summary"), 78).splitlines()[0]
        assert summary.strip() == "Last good backup 1d05h ago, older than the alert threshold (1d00h)"


async def test_help_lists_the_actions_first(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(80, 24)) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert [k for k, _ in app.screen.keys[:5]] == ["k", "K", "a", "z", "m"]


async def test_the_palette_offers_the_themes_t_cycles(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        themes = [t.removeprefix("Theme: ") for t in titles if t.startswith("Theme")]
        assert themes == app.theme_names and set(themes) == {"rdb-dark", "rdb-light", "rdb-contrast"}
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Theme: rdb-light")
        command.callback()
        assert app.theme == "rdb-light"


async def test_read_only_shows_no_action_captions(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, read_only=True) as (app, pilot):
        await on_pane(pilot, "alerts", "6")
        assert "acknowledge" not in str(app.pane.query_one(".caption").render())
        assert not {"Cancel", "Terminate", "Ack"} & set(footer_text(app).split())
