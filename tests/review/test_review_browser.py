"""The review page in a real browser (Playwright driving headless Chromium from the OS packages).

One annotator judges by keyboard, corrects one clip, marks one as no speech, undoes; the server is
killed with SIGKILL mid-session and restarted; the page resumes where they stopped; they finish, and
the export holds exactly their judgments. A second test checks tokens, paths and escaping.
`RLHF_ASR_SCREENSHOT=docs/review/page.png` saves the page as docs/review.md shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import urllib.error
import urllib.request

import pytest

from review_fixtures import make_review_data, write_annotators
from rlhf_asr.commands import cli
from rlhf_asr.review.loadcheck import free_port, start_server

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make system-deps installs it)")
TOKEN = "alice-token-0123456789"
EVIL = "<script>window.pwned=1</script><b>bold</b>"


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


class Server:
    def __init__(self, folder, manifest, db):
        self.args = (manifest, db, write_annotators(folder, alice=TOKEN))
        self.port, self.process = free_port(), None

    def start(self):
        self.process = start_server(*self.args, self.port)
        return f"http://127.0.0.1:{self.port}"

    def kill9(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _shows(page, clip: int) -> None:
    playwright_api.expect(page.locator("#clip-title")).to_contain_text(f"Clip {clip} (", timeout=10_000)


def test_judge_by_keyboard_survive_kill_9_resume_and_export(browser, tmp_path, capsys):
    manifest, db = make_review_data(tmp_path, clips=6)
    server = Server(tmp_path, manifest, db)
    page = browser.new_page()
    try:
        page.goto(f"{server.start()}/?token={TOKEN}")
        _shows(page, 1)
        # every control has an accessible name
        for name in ("Play", "Save", "Skip", "No speech", "Undo"):
            playwright_api.expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
        group = page.get_by_role("radiogroup", name="Candidates")
        playwright_api.expect(group.get_by_role("radio")).to_have_count(3)
        playwright_api.expect(page.get_by_role("textbox", name="Transcript")).to_be_visible()
        playwright_api.expect(group.locator("mark")).to_have_text(["one", "won", "1"])  # the words that differ
        page.keyboard.press("1")  # clip 1: the model's top candidate
        _shows(page, 2)
        page.keyboard.press("2")  # clip 2: the second candidate
        _shows(page, 3)
        page.keyboard.press("e")  # clip 3: a correction
        box = page.get_by_role("textbox", name="Transcript")
        playwright_api.expect(box).to_be_focused()
        playwright_api.expect(box).to_have_value("clip 3 one")
        box.fill("clip three corrected")
        page.keyboard.press("Control+Enter")
        _shows(page, 4)
        page.keyboard.press("n")  # clip 4: no speech ...
        _shows(page, 5)
        page.keyboard.press("u")  # ... undone: clip 4 is back
        _shows(page, 4)
        playwright_api.expect(page.locator("#counts")).to_contain_text("alice: 3 judged")

        server.kill9()  # mid-session: what the page showed as saved must be on disk
        with sqlite3.connect(db) as check:
            live = check.execute("SELECT clip_id, action FROM judgments WHERE undone_at IS NULL ORDER BY id").fetchall()
        assert live == [(1, "choose"), (2, "choose"), (3, "correct")]

        server.start()
        page.reload()
        _shows(page, 4)  # resumes where alice stopped
        playwright_api.expect(page.locator("#counts")).to_contain_text("alice: 3 judged")
        if os.environ.get("RLHF_ASR_SCREENSHOT"):
            page.get_by_role("radio").nth(1).check()
            page.screenshot(path=os.environ["RLHF_ASR_SCREENSHOT"], full_page=True)
        page.keyboard.press("n")  # clip 4: no speech
        _shows(page, 5)
        page.get_by_role("radio").nth(2).check()  # clip 5: the reference, by mouse, and the Save button
        page.get_by_role("button", name="Save", exact=True).click()
        _shows(page, 6)
        page.keyboard.press("s")  # clip 6: skipped
        playwright_api.expect(page.locator("#clip-title")).to_have_text("All clips are judged. Thank you!")
        playwright_api.expect(page.get_by_role("progressbar", name="Progress")).to_have_attribute("value", "5")
    finally:
        page.close()
        server.stop()

    output = tmp_path / "pairs.jsonl"
    assert cli.main(["review", "export", "--db", str(db), "--output", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["source"], r["chosen"], r["rejected"], r["action"], r["annotator"]) for r in rows] == [
        ("clip 2 (line 2)", "clip 2 won", "clip 2 one", "choose", "alice"),
        ("clip 3 (line 3)", "clip three corrected", "clip 3 one", "correct", "alice"),
        ("clip 4 (line 4)", "", "clip 4 one", "no_speech", "alice"),
        ("clip 5 (line 5)", "clip 5 1", "clip 5 one", "choose", "alice"),
    ]  # clip 1 chose the model's top candidate (no pair); clip 6 was skipped
    assert all(r["audio"]["path"].endswith(f"c{r['source'].split()[1]}.wav") and r["judged_at"] for r in rows)


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def test_tokens_paths_and_escaping(browser, tmp_path):
    manifest, db = make_review_data(tmp_path, clips=2, texts={1: EVIL})
    server = Server(tmp_path, manifest, db)
    page = browser.new_page()
    try:
        base = server.start()
        assert page.goto(f"{base}/").status == 401
        assert page.goto(f"{base}/?token=alice-token-wrong").status == 401
        for path in ("/api/next", "/audio/1", "/audio/2"):
            assert _status(f"{base}{path}") == 401
        assert _status(f"{base}/audio/1?token={TOKEN}") == 200
        for path in ("/audio/3", "/audio/..%2Fclips.jsonl", "/audio/c1.wav", "/clips.jsonl", "/review.sqlite"):
            assert _status(f"{base}{path}?token={TOKEN}") == 404, path

        page.goto(f"{base}/?token={TOKEN}")
        _shows(page, 1)
        first = page.get_by_role("radio").first
        playwright_api.expect(page.get_by_text(EVIL)).to_be_visible()  # shown as text
        assert page.evaluate("window.pwned") is None  # and never run
        assert page.locator("#candidates b, #candidates script").count() == 0
        assert first.is_checked()
    finally:
        page.close()
        server.stop()


def test_a_late_save_is_refused_on_the_page_and_it_moves_on(browser, tmp_path):
    """Issue 22: alice's hold expired and the clip went to bob; her save is refused and the page says so."""
    manifest, db = make_review_data(tmp_path, clips=3)
    bob = "bob-token-0123456789"
    server = Server(tmp_path, manifest, db)
    server.args = (manifest, db, write_annotators(tmp_path, alice=TOKEN, bob=bob))
    page = browser.new_page()
    try:
        base = server.start()
        page.goto(f"{base}/?token={TOKEN}")
        _shows(page, 1)
        with sqlite3.connect(db) as expire:  # as if the page had stayed open past the 10-minute hold
            expire.execute("UPDATE holds SET at = at - 601")
        request = urllib.request.Request(f"{base}/api/next", headers={"Authorization": f"Bearer {bob}"})
        assert json.load(urllib.request.urlopen(request, timeout=10))["clip"]["id"] == 1  # bob gets clip 1
        page.keyboard.press("1")
        playwright_api.expect(page.locator("#status")).to_contain_text("Not saved: clip 1 went to another annotator")
        _shows(page, 2)  # and alice goes on with another clip
    finally:
        page.close()
        server.stop()
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM judgments").fetchone()[0] == 0
