"""The review web app (Starlette): one page, a small JSON API, and the clips' audio.

Every request needs an annotator's token (`?token=` on the page and audio URLs, `Authorization:
Bearer` from the page's script); without a valid one the answer is 401, whatever the path. Audio
is addressed by clip number, never by path, so only the data's own files can be served: any other
URL, `..` included, is 404. The page builds its text with `textContent`, never as HTML, so a
transcript containing `<script>` shows as text. Endpoints are plain functions (Starlette runs them
in its thread pool); each judgment is committed before the answer, which carries the next clip
(the counts come from /api/progress, asked by the page once the clip shows). A judge request is
read up to MAX_BODY_BYTES (else 413), its numbers must be JSON integers (`1.7` is not candidate 1,
`true` not clip 1), and a correction must be text `rlhf-asr train` takes (limits.py, text_rules.py);
each refusal is a JSON `{"error": ...}` that the page shows.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rlhf_asr.data.text_rules import text_problem
from rlhf_asr.review.diff import marked_words
from rlhf_asr.review.limits import BadRequest, CorrectionLimit, correction_limit, parse_judgment, read_body
from rlhf_asr.review.store import AlreadyJudged, BadJudgment, ClipTaken, ReviewStore

logger = logging.getLogger(__name__)
PROGRESS_SECONDS = 2.0  # how stale the page's totals may be (counting 10,000 judgments takes a while)


class _Every:
    """`compute()`'s value, computed again when older than `seconds` (one thread at a time)."""

    def __init__(self, seconds: float, compute):
        self.seconds, self.compute = seconds, compute
        self.value, self.at, self.lock = None, float("-inf"), threading.Lock()

    def get(self):
        with self.lock:
            if time.monotonic() - self.at > self.seconds:
                self.value, self.at = self.compute(), time.monotonic()
            return self.value


def page_html() -> str:
    """The page with its script inlined (one request, and the script needs no token of its own)."""
    static = resources.files("rlhf_asr.review") / "static"
    page = (static / "page.html").read_text(encoding="utf-8")
    return page.replace("/*REVIEW_JS*/", (static / "review.js").read_text(encoding="utf-8"))


class TokenAuth:
    """ASGI middleware: the annotator's name into `scope["annotator"]`, or 401 for the whole request."""

    def __init__(self, app, tokens: dict[str, str]):
        self.app, self.tokens = app, tokens

    def _annotator(self, scope) -> str | None:
        request = Request(scope)
        given = request.query_params.get("token") or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        found = None
        for token, name in self.tokens.items():  # constant-time comparison against every token
            if hmac.compare_digest(token.encode(), given.encode()):
                found = name
        return found

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        annotator = self._annotator(scope)
        if annotator is None:
            response = PlainTextResponse("401: a valid annotator token is needed (?token=...)", status_code=401)
            return await response(scope, receive, send)
        scope["annotator"] = annotator
        return await self.app(scope, receive, send)


def create_app(
    store: ReviewStore, tokens: dict[str, str], judges_per_clip: int = 1, limit: CorrectionLimit | None = None
) -> Starlette:
    """tokens: token -> annotator name; limit: how long a correction may be (None: counted in bytes)."""
    page = page_html()
    limit = limit or correction_limit(None)
    totals = _Every(PROGRESS_SECONDS, lambda: store.progress(judges_per_clip))

    def clip_payload(clip_id: int | None, annotator: str) -> dict:
        if clip_id is None:
            return {"clip": None}
        clip, candidates = store.clip(clip_id), store.candidates(clip_id)
        words = marked_words([row["text"] for row in candidates])
        return {
            "clip": {
                "id": clip_id,
                "line": clip["line"],
                "duration": clip["duration"],
                "candidates": [
                    {"rank": row["rank"], "origin": row["origin"], "text": row["text"], "words": marks}
                    for row, marks in zip(candidates, words)
                ],
            }
        }

    def progress(request: Request) -> Response:
        """Asked by the page after it shows a clip. The annotator's own counts are fresh; the totals,
        which count every judgment, are shared by all annotators for up to PROGRESS_SECONDS."""
        annotator = request.scope["annotator"]
        return JSONResponse({**totals.get(), "you": annotator, "yours": store.annotator_counts(annotator)})

    def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def next_clip(request: Request) -> Response:
        annotator = request.scope["annotator"]
        return JSONResponse(clip_payload(store.next_clip(annotator, judges_per_clip), annotator))

    async def judge(request: Request) -> Response:
        annotator = request.scope["annotator"]
        try:
            clip_id, action, rank, text = parse_judgment(await read_body(request))
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        problem = None
        if action == "correct" and text_problem(text) is None:  # else the store refuses it, saying why
            problem = limit.problem(" ".join(text.split()))  # spaces tidied as the store saves it
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        try:
            await _in_thread(store.judge, annotator, clip_id, action, rank, text, judges_per_clip)
        except KeyError:
            return JSONResponse({"error": f"no clip {clip_id}"}, status_code=404)
        except BadJudgment as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except AlreadyJudged:
            return JSONResponse({"error": f"clip {clip_id} is already judged by {annotator}"}, status_code=409)
        except ClipTaken as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse(
            await _in_thread(lambda: clip_payload(store.next_clip(annotator, judges_per_clip), annotator))
        )

    def undo(request: Request) -> Response:
        annotator = request.scope["annotator"]
        undone = store.undo(annotator)  # held for this annotator, so it is the next clip
        payload = clip_payload(store.next_clip(annotator, judges_per_clip), annotator)
        payload["undone"] = undone
        return JSONResponse(payload)

    def audio(request: Request) -> Response:
        clip = store.clip(request.path_params["clip_id"])
        if clip is None:
            return PlainTextResponse("404: no such clip", status_code=404)
        return FileResponse(clip["audio_path"])

    def not_found(request: Request, exc) -> Response:
        return PlainTextResponse("404: not found", status_code=404)

    routes = [
        Route("/", index),
        Route("/api/next", next_clip),
        Route("/api/progress", progress),
        Route("/api/judge", judge, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/audio/{clip_id:int}", audio),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(TokenAuth, tokens=tokens)], exception_handlers={404: not_found}
    )


async def _in_thread(function, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)
