"""``livesale show`` and ``livesale lineup``: shows and their run-lists, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from livesale.cli.base import (
    call,
    cli,
    client_options,
    connect,
    fail,
    money,
    out,
    plain,
    print_bad_rows,
    print_json,
    read,
    table,
)
from livesale.rows import FileProblems
from livesale.shows import read_lineup


@cli.group()
def show() -> None:
    """Shows."""


def _print_shows(shows: list[dict[str, Any]], as_json: bool, title: str = "Shows") -> None:
    if as_json:
        print_json(shows)
        return
    table(
        title,
        ["ID", "Title", "Host", "State", "Watch"],
        (
            [
                s["id"],
                s["title"],
                s["host_name"],
                "live (paused)" if s.get("paused") and s["state"] == "live" else s["state"],
                s["watch_url"],
            ]
            for s in shows
        ),
    )


@show.command("create")
@click.argument("title")
@click.option("--host", "host_name", required=True, help="The host's name, shown to viewers.")
@click.option("--at", "scheduled_at", default=None, help="When it starts (ISO 8601).")
@click.option(
    "--replay-sales/--no-replay-sales",
    default=True,
    show_default=True,
    help="Keep the line-up on sale on the replay after the end.",
)
@client_options
def show_create(
    title: str,
    host_name: str,
    scheduled_at: str | None,
    replay_sales: bool,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Create a show; prints the studio link (with the host token) once."""
    body: dict[str, Any] = {"title": title, "host_name": host_name, "replay_sales": replay_sales}
    if scheduled_at:
        body["scheduled_at"] = scheduled_at
    created = call(connect(server, api_key, data_dir), "POST", "/api/shows", body)
    if as_json:
        print_json(created)
        return
    out.print(f"Created show [bold]{escape(created['id'])}[/]: {escape(plain(created['title']))}")
    out.print(f"  studio (keep it secret): {created['studio_url']}", markup=False)
    out.print(f"  watch:                   {created['watch_url']}", markup=False)


@show.command("list")
@client_options
def show_list(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List shows, live first."""
    _print_shows(call(connect(server, api_key, data_dir), "GET", "/api/shows"), as_json)


def _move(
    show_id: str,
    action: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    moved = call(connect(server, api_key, data_dir), "POST", f"/api/shows/{show_id}/{action}")
    if as_json:
        print_json(moved)
    else:
        out.print(plain(f"Show {moved['id']} is {moved['state']}."), markup=False)


@show.command("start")
@click.argument("show_id")
@client_options
def show_start(show_id: str, **kw: Any) -> None:
    """Start a show (it takes orders from now on)."""
    _move(show_id, "start", **kw)


@show.command("end")
@click.argument("show_id")
@client_options
def show_end(show_id: str, **kw: Any) -> None:
    """End a show."""
    _move(show_id, "end", **kw)


@cli.group()
def lineup() -> None:
    """A show's line-up (its run-list)."""


def _print_lineup(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    table(
        f"Line-up of {data['show_id']}",
        ["#", "SKU", "Title", "Price", "Limit", "Available", ""],
        (
            [
                n,
                i["sku"],
                i["title"],
                money(i["price"]),
                i["limit_per_buyer"] or "",
                i["available"],
                "featured" if i["featured"] else "",
            ]
            for n, i in enumerate(data["items"], start=1)
        ),
    )


@lineup.command("push")
@click.argument("show_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@client_options
def lineup_push(
    show_id: str, file: Path, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Replace SHOW's line-up with FILE (CSV or JSON rows sku[,price][,limit_per_buyer])."""
    import msgspec

    text = read(file)
    client = connect(server, api_key, data_dir)
    catalogue = call(client, "GET", "/api/products")
    currencies = {p["sku"]: p["price"]["currency"] for p in catalogue}
    try:
        items = read_lineup(text, currencies)
    except FileProblems as problems:
        print_bad_rows(file, problems)
        raise fail(f"{len(problems.rows)} bad row(s) in {file}; the line-up is unchanged") from None
    data = call(client, "PUT", f"/api/shows/{show_id}/lineup", msgspec.to_builtins(items))
    if as_json:
        print_json(data)
    else:
        out.print(plain(f"Line-up of {show_id}: {len(data['items'])} item(s)."), markup=False)
        _print_lineup(data, False)


@lineup.command("show")
@click.argument("show_id")
@client_options
def lineup_show(
    show_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Show SHOW's line-up with live stock."""
    client = connect(server, api_key, data_dir)
    _print_lineup(call(client, "GET", f"/api/shows/{show_id}/lineup"), as_json)


@show.command("update")
@click.argument("show_id")
@click.option(
    "--replay-sales/--no-replay-sales",
    default=None,
    help="Sell the line-up on the replay after the end, or stop (after the end: at once).",
)
@client_options
def show_update(
    show_id: str,
    replay_sales: bool | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Change a show's settings."""
    if replay_sales is None:
        raise fail("nothing to change: give --replay-sales or --no-replay-sales")
    client = connect(server, api_key, data_dir)
    changed = call(client, "PATCH", f"/api/shows/{show_id}", {"replay_sales": replay_sales})
    if as_json:
        print_json(changed)
        return
    sells = "sells on its replay" if changed["replay_sales"] else "does not sell on its replay"
    out.print(plain(f"Show {changed['id']} ({changed['state']}) {sells}."), markup=False)


@show.command("recording")
@click.argument("show_id")
@click.option("--delete", is_flag=True, help="Delete the recording (and so the replay).")
@client_options
def show_recording(
    show_id: str,
    delete: bool,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Print how much of SHOW is recorded and what it takes on disk; --delete deletes it."""
    client = connect(server, api_key, data_dir)
    method = "DELETE" if delete else "GET"
    info = call(client, method, f"/api/shows/{show_id}/recording")
    if as_json:
        print_json(info)
        return
    size = f"{info['bytes'] / 1e6:.1f} MB"
    what = f"{info['segments']} segments, {_clock(info['duration_s'])}, {size}"
    if delete:
        out.print(plain(f"Deleted the recording of show {show_id} ({what})."), markup=False)
    else:
        state = "replay ready" if info["ended"] else "recording, or cut off"
        out.print(plain(f"Recording of show {show_id}: {what} ({state})."), markup=False)


@show.command("token")
@click.argument("show_id")
@client_options
def show_token(
    show_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Give the show a new host token and print its studio link; the old link stops working
    at once and the studio open with it is disconnected."""
    made = call(connect(server, api_key, data_dir), "POST", f"/api/shows/{show_id}/host-token")
    if as_json:
        print_json(made)
        return
    out.print(f"New studio link for show {escape(made['show_id'])} (keep it secret):")
    out.print(f"  {made['studio_url']}", markup=False)
    out.print("The old link no longer works.")


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@show.command("replay")
@click.argument("show_id")
@client_options
def show_replay(
    show_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Print an ended show's replay: the link of its playlist, its length and a chapter per
    product the host explained."""
    client = connect(server, api_key, data_dir)
    replay = call(client, "GET", f"/api/shows/{show_id}/replay")
    if as_json:
        print_json(replay)
        return
    out.print(plain(f"Replay of show {show_id}: {_clock(replay['duration_s'])}"), markup=False)
    out.print(plain(f"  {client.server}{replay['playlist']}"), markup=False)
    table(
        "Chapters",
        ["Start", "End", "SKU", "Title"],
        (
            [_clock(c["start_s"]), _clock(c["end_s"]), c["sku"], c["title"]]
            for c in replay["chapters"]
        ),
    )
