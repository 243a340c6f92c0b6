"""What a judge request may carry: a capped body, JSON integers, and a correction train can train on.

Training takes a decoder sequence of at most MAX_TARGET_TOKENS (448: prompt, text, <|endoftext|>),
so a longer correction would be saved, exported and then refused by train. The server counts a
correction's tokens with the tokenizer of the model whose candidates it shows, the one training
will use. Without one (a database from before the model was recorded, and no `--model`), it counts
UTF-8 bytes instead: each byte-level BPE token covers at least one byte, so N bytes are at most
N + 1 tokens (the leading space) and a text within the byte cap always fits; a longer one may fit
too, and `--model` then lets the server count it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.requests import Request

from rlhf_asr.data.tokens import (
    MAX_TARGET_TOKENS,
    TranscriptEncoder,
    TranscriptError,
    max_text_tokens,
    transcript_encoder,
)

MAX_BODY_BYTES = 64 * 1024  # a judge request; the longest correction that trains is a few KiB even as \uXXXX escapes
# The longest prompt of any Whisper (multilingual: <|startoftranscript|> <|lang|> <|task|> <|notimestamps|>)
LONGEST_PROMPT = 4


SQLITE_INTEGERS = range(-(2**63), 2**63)  # what SQLite can store; a larger number would crash the query


class BadRequest(Exception):
    """A request the server refuses as it stands; `status` is the HTTP code, the message its error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, read no further than `limit` bytes (a declared or streamed larger one is refused)."""
    too_big = BadRequest(413, f"the request is over {limit // 1024} KiB: a correction is far shorter")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
        raise too_big
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return body


def _integer(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass: true is not 1 here
        raise BadRequest(400, f"{key} must be an integer, not {json.dumps(value)[:40]}")
    if value not in SQLITE_INTEGERS:
        raise BadRequest(400, f"{key} {value} is out of range")
    return value


def parse_judgment(raw: bytes) -> tuple[int, str, int | None, str]:
    """(clip, action, rank, text) of a judge request's body, or BadRequest(400) saying what is wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # also bytes that are not UTF-8, and "[[[[..." nested past the stack
        raise BadRequest(400, "expected JSON {clip, action[, rank, text]}") from None
    if not isinstance(body, dict) or "clip" not in body or "action" not in body:
        raise BadRequest(400, "expected JSON {clip, action[, rank, text]}")
    clip_id, rank = _integer(body, "clip"), _integer(body, "rank")
    action, text = body["action"], body.get("text")
    if clip_id is None or not isinstance(action, str):
        raise BadRequest(400, "clip must be an integer and action a string")
    if text is not None and not isinstance(text, str):
        raise BadRequest(400, "text must be a string")
    return clip_id, action, rank, text or ""


@dataclass(frozen=True)
class CorrectionLimit:
    max_tokens: int  # text tokens that fit after the prompt and before <|endoftext|> (max_text_tokens)
    encoder: TranscriptEncoder | None  # counts the tokens; None: bytes are counted (see the module's doc)

    def problem(self, text: str) -> str | None:
        """Why `text` (a correction, spaces already tidied) cannot train, or None."""
        whole = f"Whisper trains on at most {MAX_TARGET_TOKENS} tokens with the prompt"
        if self.encoder is None:
            size = len(text.encode("utf-8"))
            if size + 1 > self.max_tokens:
                return (
                    f"the correction is {size} bytes; with no tokenizer to count its tokens ({whole}) the server"
                    f" takes at most {self.max_tokens - 1} bytes: restart it with --model to count them"
                )
            return None
        try:
            count = len(self.encoder.text_ids(text))
        except TranscriptError as error:
            return f"the correction cannot train: {error}"
        if count > self.max_tokens:
            return f"the correction is {count} tokens; {whole}, {self.max_tokens} for the text: shorten it"
        return None


def correction_limit(processor=None) -> CorrectionLimit:
    """The limit for corrections counted with `processor`'s tokenizer, or by bytes when None."""
    if processor is None:
        return CorrectionLimit(max_text_tokens(LONGEST_PROMPT), None)
    encoder = transcript_encoder(processor)
    prompt = len(encoder.prefix("en" if encoder.multilingual else None))  # every language is one token
    return CorrectionLimit(max_text_tokens(prompt), encoder)
