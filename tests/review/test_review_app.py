"""The review app's doors (tokens on every request, audio only for the data's clips) and the command's errors."""

from __future__ import annotations

import http.client
import json

import pytest
from starlette.testclient import TestClient

from review_fixtures import make_review_data, write_annotators
from rlhf_asr.commands import cli
from rlhf_asr.review.app import create_app
from rlhf_asr.review.loadcheck import free_port, start_server
from rlhf_asr.review.store import ReviewStore

TOKEN = "alice-token-0123456789"


@pytest.fixture
def client(tmp_path):
    _, db = make_review_data(tmp_path)
    return TestClient(create_app(ReviewStore(db), {TOKEN: "alice"}))


PATHS = [
    "/",
    "/api/next",
    "/api/progress",
    "/audio/1",
    "/audio/99",
    "/nothing",
    "/audio/../clips.jsonl",
    "/static/review.js",
]


@pytest.mark.parametrize("path", PATHS)
def test_every_request_without_a_valid_token_is_401(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, params={"token": "alice-token-wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/judge", json={"clip": 1, "action": "skip"}).status_code == 401


def test_audio_only_for_clips_in_the_data(client, tmp_path):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.get("/audio/1", headers=auth)
    assert response.status_code == 200 and response.content == (tmp_path / "c1.wav").read_bytes()
    for path in ["/audio/0", "/audio/99", "/audio/c1.wav", "/audio/..%2Fclips.jsonl", "/audio/%2e%2e/%2e%2e/etc/passwd",
                 "/c1.wav", "/clips.jsonl", "/review.sqlite"]:  # fmt: skip
        assert client.get(path, headers=auth).status_code == 404, path


def test_raw_dot_dot_paths_are_404_over_the_wire(tmp_path):
    """http.client sends `..` as is (a browser or TestClient would tidy the path first)."""
    manifest, db = make_review_data(tmp_path)
    port = free_port()
    server = start_server(manifest, db, write_annotators(tmp_path, alice=TOKEN), port)
    try:
        for path in ["/audio/../../../../etc/passwd", "/audio/1/../../clips.jsonl", "/../review.sqlite"]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", f"{path}?token={TOKEN}")
            assert connection.getresponse().status == 404, path
            connection.close()
    finally:
        server.kill()
        server.wait()


def test_judging_through_the_api(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = client.get("/api/next", headers=auth).json()
    assert first["clip"]["id"] == 1 and [c["text"] for c in first["clip"]["candidates"]][:2] == [
        "clip 1 one",
        "clip 1 won",
    ]
    assert first["clip"]["candidates"][0]["words"] == [["clip", False], ["1", False], ["one", True]]
    after = client.post("/api/judge", headers=auth, json={"clip": 1, "action": "choose", "rank": 1}).json()
    assert after["clip"]["id"] == 2
    progress = client.get("/api/progress", headers=auth).json()
    assert progress["yours"] == progress["annotators"]["alice"] == {"judged": 1, "skipped": 0, "no_speech": 0}
    assert (progress["clips"], progress["done"], progress["you"]) == (6, 1, "alice")
    assert client.post("/api/judge", headers=auth, json={"clip": 1, "action": "skip"}).status_code == 409
    assert client.post("/api/judge", headers=auth, json={"clip": 2, "action": "choose", "rank": 9}).status_code == 400
    assert client.post("/api/judge", headers=auth, content=b"{not json").status_code == 400
    assert client.post("/api/undo", headers=auth).json()["clip"]["id"] == 1


def _run(capsys, *argv):
    code = cli.main(["review", *argv])
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    manifest, db = make_review_data(tmp_path / "d")
    annotators = write_annotators(tmp_path, alice=TOKEN)
    cases = {
        "unreadable manifest": (["serve", "--data", str(tmp_path / "none.jsonl"), "--db", str(db)], "not found"),
        "another dataset": (["serve", "--data", str(_changed(manifest)), "--db", str(db)], "another dataset"),
        "no model": (["serve", "--data", str(manifest), "--db", str(tmp_path / "new.sqlite")], "--model is needed"),
        "short token": (
            [
                "serve",
                "--data",
                str(manifest),
                "--db",
                str(db),
                "--annotators",
                str(write_annotators(tmp_path, "short.txt", bob="short")),
            ],
            "shorter than 12",
        ),  # fmt: skip
        "bad port": (["serve", "--data", str(manifest), "--db", str(db), "--port", "0"], "--port 0"),
        "export no db": (["export", "--db", str(tmp_path / "none.sqlite"), "--output", "x.jsonl"], "no such file"),
        "export both": (["export", "--db", str(db), "--from_label_studio", "a.json", "--output", "x"], "one of --db"),
        "no subcommand": (["judge"], "expected one of: serve, export, loadcheck"),
    }
    for name, (argv, expected) in cases.items():
        code, err = _run(capsys, *argv)
        assert code == 2 and expected in err and "\n" not in err, (name, err)
    (tmp_path / "d" / "c3.wav").unlink()
    code, err = _run(capsys, "serve", "--data", str(manifest), "--db", str(db), "--annotators", str(annotators))
    assert code == 2 and "c3.wav" in err and "audio file missing" in err


def _changed(manifest):
    other = manifest.with_name("other.jsonl")
    other.write_text(manifest.read_text().replace("clip 1 1", "clip 1 changed"))
    return other


def test_export_command_writes_pairs_and_label_studio(tmp_path, capsys):
    _, db = make_review_data(tmp_path)
    ReviewStore(db).judge("alice", 2, "choose", rank=1)
    assert _run(capsys, "export", "--db", str(db), "--output", str(tmp_path / "p.jsonl"))[0] == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("clip 2 won", "clip 2 one")]
    out = str(tmp_path / "ls.json")
    assert _run(capsys, "export", "--db", str(db), "--format", "label-studio", "--output", out)[0] == 0
    assert _run(capsys, "export", "--from_label_studio", out, "--output", str(tmp_path / "q.jsonl"))[0] == 0
    assert json.loads((tmp_path / "q.jsonl").read_text())["chosen"] == "clip 2 won"
