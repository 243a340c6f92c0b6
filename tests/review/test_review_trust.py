"""What the judge API refuses (issue 22): a late save after one's hold went to someone else, texts
`rlhf-asr train` would refuse or that read differently from what trains, non-integer numbers, huge bodies."""

from __future__ import annotations

import json

import pytest
import uvicorn
from starlette.testclient import TestClient

from review_fixtures import make_review_data, write_annotators
from rlhf_asr.commands import cli
from rlhf_asr.review import app as app_module
from rlhf_asr.review.app import create_app, page_html
from rlhf_asr.review.export import preference_rows
from rlhf_asr.review.limits import MAX_BODY_BYTES, correction_limit
from rlhf_asr.review.loadcheck import free_port
from rlhf_asr.review.store import HOLD_SECONDS, ReviewStore
from whisper_fixtures import make_tiny_whisper_dir, tiny_processor

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789"


def _auth(token: str = ALICE) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(tmp_path):
    return ReviewStore(make_review_data(tmp_path)[1])


@pytest.fixture
def client(store):
    # raise_server_exceptions=False: a crash must show as the 500 a browser would get
    app = create_app(store, {ALICE: "alice", BOB: "bob"}, judges_per_clip=1)
    return TestClient(app, raise_server_exceptions=False)


def _expire_holds(store: ReviewStore) -> None:
    """As if the page had been left open past the hold (10 minutes) without a save."""
    with store.write() as db:
        db.execute("UPDATE holds SET at = at - ?", (HOLD_SECONDS + 1,))


def test_a_late_save_after_the_expired_hold_went_to_someone_else_is_refused(client, store):
    assert client.get("/api/next", headers=_auth()).json()["clip"]["id"] == 1
    _expire_holds(store)
    assert client.get("/api/next", headers=_auth(BOB)).json()["clip"]["id"] == 1  # the clip went to bob
    late = client.post("/api/judge", headers=_auth(), json={"clip": 1, "action": "correct", "text": "a b d"})
    assert late.status_code == 409 and "another annotator" in late.json()["error"]
    assert "not saved" in late.json()["error"]
    assert client.post("/api/judge", headers=_auth(BOB), json={"clip": 1, "action": "no_speech"}).status_code == 200
    assert [(j.clip_id, j.annotator) for j in store.live_judgments()] == [(1, "bob")]
    rows, _ = preference_rows(store)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("", "clip 1 one")]  # one pair for the audio, not two


def test_a_late_save_after_someone_else_judged_the_clip_is_refused(client, store):
    assert client.get("/api/next", headers=_auth()).json()["clip"]["id"] == 1
    _expire_holds(store)
    assert client.get("/api/next", headers=_auth(BOB)).json()["clip"]["id"] == 1
    assert client.post("/api/judge", headers=_auth(BOB), json={"clip": 1, "action": "no_speech"}).status_code == 200
    late = client.post("/api/judge", headers=_auth(), json={"clip": 1, "action": "choose", "rank": 1})
    assert late.status_code == 409 and "not saved" in late.json()["error"]
    assert len(store.live_judgments()) == 1  # never more than judges_per_clip
    assert client.get("/api/next", headers=_auth()).json()["clip"]["id"] == 3  # alice goes on (bob holds 2)


def test_a_save_after_an_expired_hold_nobody_took_is_kept(client, store):
    assert client.get("/api/next", headers=_auth()).json()["clip"]["id"] == 1
    _expire_holds(store)
    assert (
        client.post("/api/judge", headers=_auth(), json={"clip": 1, "action": "choose", "rank": 1}).status_code == 200
    )


def test_the_page_shows_a_refused_save_and_moves_on():
    """The page's script (inlined in GET /) treats every 409 as "not saved, go on", not only one wording."""
    script = page_html()
    assert "error.status === 409" in script and '"Not saved: " + error.message' in script


def _judge(client, body) -> tuple[int, str]:
    response = client.post("/api/judge", headers=_auth(), content=body if isinstance(body, bytes) else json.dumps(body))
    return response.status_code, response.json().get("error", "")


def test_a_lone_surrogate_is_a_400_with_a_message(client, store):
    status, error = _judge(client, b'{"clip": 1, "action": "correct", "text": "lone \\ud800"}')
    assert status == 400 and "lone surrogate" in error and "U+D800" in error
    assert store.live_judgments() == []


@pytest.mark.parametrize(
    "body",
    [
        {"clip": 1, "action": "choose", "rank": 1.7},
        {"clip": 1, "action": "choose", "rank": 1.0},
        {"clip": 1, "action": "choose", "rank": True},
        {"clip": 1, "action": "choose", "rank": "1"},
        {"clip": True, "action": "skip"},
        {"clip": 1.0, "action": "skip"},
        {"clip": "1", "action": "skip"},
        {"clip": 1, "action": 7},
        {"clip": 1, "action": "correct", "text": 123},
        {"clip": 10**30, "action": "skip"},
        [1, "skip"],
        b"[" * 60_000,  # within the body cap, nested deeper than the JSON parser's stack
    ],
)
def test_numbers_must_be_integers_and_fields_of_their_type(client, store, body):
    status, error = _judge(client, body)
    assert status == 400 and error, (body, status)
    assert store.live_judgments() == []


@pytest.mark.parametrize(
    "text, reason",
    [
        ("a\x00b", "U+0000"),
        ("ring \x07 bell", "U+0007"),
        ("esc \x1b[31m red", "U+001B"),
        ("abc \u202edcba", "U+202E"),
        ("unit\x1fseparator", "U+001F"),  # str.split() would have made it a space, silently
    ],
)
def test_control_and_bidi_override_characters_are_refused(client, store, text, reason):
    status, error = _judge(client, {"clip": 1, "action": "correct", "text": text})
    assert status == 400 and reason in error and "correction" in error
    assert store.live_judgments() == []


def test_a_body_over_the_cap_is_413_and_not_saved(client, store):
    status, error = _judge(client, {"clip": 1, "action": "correct", "text": "word " * 2_000_000})  # 10 MB
    assert status == 413 and f"{MAX_BODY_BYTES // 1024} KiB" in error
    assert store.live_judgments() == []


def test_a_correction_longer_than_whisper_trains_on_is_refused(store):
    client = TestClient(create_app(store, {ALICE: "alice"}, limit=correction_limit(tiny_processor())))
    fits = " ".join(["word"] * 300)  # about 300 tokens
    status, error = _judge(client, {"clip": 1, "action": "correct", "text": " ".join(["word"] * 600)})
    assert status == 400 and "448" in error and "tokens" in error
    assert _judge(client, {"clip": 1, "action": "correct", "text": fits})[0] == 200
    status, error = _judge(client, {"clip": 2, "action": "correct", "text": "stop <|endoftext|> here"})
    assert status == 400 and "control token" in error


def test_without_a_tokenizer_a_correction_is_bounded_by_its_bytes(client):
    """No tokenizer known: a text of N UTF-8 bytes is at most N + 1 tokens, so a byte cap is safe."""
    assert _judge(client, {"clip": 1, "action": "correct", "text": "x" * 300})[0] == 200
    status, error = _judge(client, {"clip": 2, "action": "correct", "text": "y " * 400})
    assert status == 400 and "bytes" in error and "--model" in error


def test_serve_counts_corrections_with_the_model_whose_candidates_it_shows(tmp_path, monkeypatch):
    """The model decoded at the first start is recorded; a restart without --model counts with its tokenizer."""
    limits = []
    real_create_app = app_module.create_app
    monkeypatch.setattr(app_module, "create_app", lambda *a: limits.append(a[3]) or real_create_app(*a))
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)  # started, and stopped at once
    manifest, _ = make_review_data(tmp_path / "d", clips=2)
    model = make_tiny_whisper_dir(tmp_path)
    db = tmp_path / "fresh.sqlite"
    argv = ["review", "serve", "--data", str(manifest), "--db", str(db), "--port", str(free_port())]
    argv += ["--annotators", str(write_annotators(tmp_path, alice=ALICE)), "--device", "cpu"]
    assert cli.main([*argv, "--model", str(model)]) == 0
    assert ReviewStore(db).meta("model") == str(model.absolute())
    assert cli.main(argv) == 0  # a restart: candidates stored, no --model
    assert [limit.encoder is not None for limit in limits] == [True, True]
    assert limits[1].max_tokens == 448 - 2 - 1  # tiny.en's prompt: <|startoftranscript|> <|notimestamps|>
    with ReviewStore(db).write() as forget:  # a database from before the model was recorded
        forget.execute("DELETE FROM meta WHERE key = 'model'")
    assert cli.main(argv) == 0
    assert limits[2].encoder is None and limits[2].max_tokens == 448 - 4 - 1
