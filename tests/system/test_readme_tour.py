"""README's 5-minute tour, run as a newcomer runs it: its shell block, copied out of README.md
as it stands, pasted into bash against a real `slotgraph serve` started the way the tour says
(`SLOTGRAPH_BOOTSTRAP_SECRET_KEY=sk_tour`). Before, nothing ran the block, and a step that
drifted from the server (a field renamed, an answer reshaped) would have shown only to the
next person who tried it. What each step should print is written out here from the README's
own `# ->` comments and sentences, not read from the server."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Server, serving

pytestmark = pytest.mark.system

README = Path(__file__).parents[2] / "README.md"
STEP = re.compile(r"^# (\d)\. ")
TIME = re.compile(r'data-testid="time" data-start="(\d{4}-\d\d-\d\d)T')


def tour_block() -> str:
    """The first ```sh block under "## A 5-minute tour"."""
    tour = README.read_text().split("## A 5-minute tour", 1)[1]
    return tour.split("```sh\n", 1)[1].split("```", 1)[0]


# The docs' blocks that go on from the tour (its $SG, $AUTH and $DOC), in this order, each a step
# of its own after the tour's nine: (page, which of its ```sh blocks).
AFTER_THE_TOUR = [
    ("booking-pages.md", 0),  # 10. a page with every field
    ("calendars.md", 0),  # 11. the feed
    ("calendars.md", 1),  # 12. free/busy, JSON and text/calendar
    ("migrating-from-timekit.md", 0),  # 13. a project for Timekit's widget
]


def docs_block(page: str, index: int) -> str:
    text = (README.parent / "docs" / page).read_text()
    block = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)[index]
    # a browser is opened by hand: no machine that runs the tests has one to open
    return "".join(line for line in block.splitlines(True) if not line.startswith("xdg-open"))


def marked(block: str, url: str) -> str:
    """The block pointed at `url`, with a marker echoed before each numbered step, so that what
    each step printed can be told apart (the answers carry no newline of their own)."""
    assert "http://127.0.0.1:8000" in block  # the address the README promises
    lines = []
    for line in block.replace("http://127.0.0.1:8000", url).splitlines():
        if found := STEP.match(line):
            lines.append(f"echo; echo '@@ step {found.group(1)}'")
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
async def tour_server(fresh_database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Server]:
    env = {"SLOTGRAPH_BOOTSTRAP_SECRET_KEY": "sk_tour", "SLOTGRAPH_MAIL_DIR": str(tmp_path)}
    async with serving(fresh_database, tmp_path, env=env) as server:
        yield server


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour's commands are curl commands")
async def test_the_readme_tour_does_what_it_says(tour_server: Server, tmp_path: Path) -> None:
    # its files (/tmp/b1.json) in this test's folder: two runs on one machine do not share them
    script = marked(tour_block(), tour_server.url).replace("/tmp/", f"{tmp_path}/")
    for step, (page, index) in enumerate(AFTER_THE_TOUR, start=10):
        script += f"echo; echo '@@ step {step}'\n" + docs_block(page, index).replace(
            "http://127.0.0.1:8000", tour_server.url
        )
    ran = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    steps = dict(
        (int(part.split("\n", 1)[0]), part.split("\n", 1)[1].strip())
        for part in ran.stdout.split("@@ step ")[1:]
    )
    assert sorted(steps) == list(range(1, 14)), ran.stdout
    assert steps[1] == ""  # the ids went into $DOC and $ANN
    # 2. "-> 201 {"booking_id": "...", "status": "confirmed", "available_actions": ["cancel", ..."
    assert '"status":"confirmed"' in steps[2]
    assert '"available_actions":["cancel",' in steps[2]
    # "Ann is emailed ("Booked: ..."): ... as an .eml file" (the worker writes it soon after)
    assert await _written(tmp_path, "To: ann@example.com", "Subject: Booked: Dr. Berg")
    # 3. the overlap: 409 slot_unavailable as problem+json
    assert '"type":"urn:slotgraph:problem:slot_unavailable"' in steps[3]
    assert '"status":409' in steps[3]
    # 4. "| field status  # -> confirmed"; 5. "# -> cancelled", and the history
    assert steps[4] == "confirmed"
    assert steps[5].startswith("cancelled\n")
    assert '"action":"cancel","to":"cancelled"' in steps[5]
    # 6. the graph's table
    assert steps[6].startswith('{"name":"instant_payment"')
    # 7. the hours, then "-> {"data": [{"start_time": "2030-05-20T09:00:00+02:00", ..."
    assert steps[7].count('"weekly_hours"') == 1
    assert (
        '{"data":[{"start_time":"2030-05-20T09:00:00+02:00",'
        '"end_time":"2030-05-20T09:45:00+02:00","resource_ids":["' in steps[7]
    )
    # 8. a webhook (with its secret), or, on a machine without DNS, 422 "does not resolve"
    assert '"secret":"whsec_' in steps[8] or "does not resolve" in steps[8], steps[8]
    # 9. "-> {"page_id": "...", "slug": "dr-berg", "url": "/book/dr-berg", ...}"
    assert '"slug":"dr-berg","url":"/book/dr-berg"' in steps[9]
    # the docs after the tour: booking-pages.md's page, calendars.md's feed (its 365 days hold
    # none of the tour's 2030 bookings) and free/busy (step 4's booking), the Timekit project
    assert '"slug":"dr-berg-checkups","url":"/book/dr-berg-checkups"' in steps[10]
    assert steps[11].startswith("BEGIN:VCALENDAR")
    assert "X-WR-CALNAME:Dr. Berg" in steps[11]
    assert "BEGIN:VEVENT" not in steps[11]
    assert (
        '"busy":[{"start_time":"2030-05-18T13:00:00Z","end_time":"2030-05-18T13:30:00Z"}]}'
        in steps[12]
    )
    assert "FREEBUSY;FBTYPE=BUSY;VALUE=PERIOD:20300518T130000Z/20300518T133000Z" in steps[12]
    assert steps[13].startswith('{"data":{"id":"')
    assert '"slug":"dr-berg-widget"' in steps[13]
    # the tour with a key the server does not know: field() shows the 401 (which says where keys
    # come from), where it printed a KeyError's traceback and hid the answer
    wrong = script.split("# 2. ", 1)[0].replace("sk_tour", "sk_not_this_one")
    refused = subprocess.run(
        ["bash", "-c", wrong], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert "Traceback" not in refused.stderr, refused.stderr
    assert '"status": 401' in refused.stderr
    assert "Keys are shown once" in refused.stderr
    # ... "open http://127.0.0.1:8000/book/dr-berg: the next free times (Mondays and Tuesdays)"
    async with httpx.AsyncClient(base_url=tour_server.url) as http:
        page = await http.get("/book/dr-berg")
    assert page.status_code == 200
    # the times' UTC dates are Oslo's too: its hours are 09:00-17:00, 07:00-16:00 in UTC
    days = {date.fromisoformat(d).strftime("%a") for d in re.findall(TIME, page.text)}
    assert days, page.text
    assert days <= {"Mon", "Tue"}, days


async def _written(folder: Path, *starts: str) -> bool:
    """Whether an .eml in `folder` has a line that begins with each of `starts` (up to 60 s:
    the worker writes it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for eml in folder.glob("*.eml"):
            had = eml.read_text().splitlines()
            if all(any(line.startswith(start) for line in had) for start in starts):
                return True
        await asyncio.sleep(0.2)
    return False
