"""The review database: clips, their candidates and every judgment, in one SQLite file (WAL).

Each judgment is one committed transaction (synchronous=FULL) before the server answers, so a
`kill -9` of the server loses nothing that the page showed as saved, and a restart finds each
annotator's place from the judgments alone. A judgment is never deleted: undo marks it undone, so
the history stays. One live judgment per (clip, annotator) is enforced by a partial unique index,
so a retried or double-sent request cannot count twice. A clip never has more live judgments than
`judges_per_clip`: a save is refused once the clip's hold went to someone else (the page stayed open
past HOLD_SECONDS) or the clip has its judges, so a late page cannot add a second, contradictory one.

Each thread gets its own connection (SQLite connections are not shared across threads); writes
take the write lock up front (BEGIN IMMEDIATE) so that concurrent annotators queue instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rlhf_asr.data.text_rules import text_problem
from rlhf_asr.errors import UserInputError
from rlhf_asr.review.clips import Clip

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
  id INTEGER PRIMARY KEY, line INTEGER NOT NULL, audio_path TEXT NOT NULL, duration REAL NOT NULL,
  language TEXT, texts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
  clip_id INTEGER NOT NULL REFERENCES clips(id), rank INTEGER NOT NULL, origin TEXT NOT NULL,
  text TEXT NOT NULL, logprob REAL, PRIMARY KEY (clip_id, rank));
CREATE TABLE IF NOT EXISTS judgments (
  id INTEGER PRIMARY KEY AUTOINCREMENT, clip_id INTEGER NOT NULL REFERENCES clips(id),
  annotator TEXT NOT NULL, action TEXT NOT NULL, rank INTEGER, text TEXT NOT NULL,
  created_at REAL NOT NULL, undone_at REAL);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_judgment ON judgments (clip_id, annotator) WHERE undone_at IS NULL;
CREATE INDEX IF NOT EXISTS by_annotator ON judgments (annotator, id);
CREATE TABLE IF NOT EXISTS holds (annotator TEXT PRIMARY KEY, clip_id INTEGER NOT NULL, at REAL NOT NULL);
"""

HOLD_SECONDS = 600  # a clip shown to one annotator is not shown to another for this long
ACTIONS = ("choose", "correct", "no_speech", "skip")  # skip: seen, no opinion; not exported
MODEL = "model"  # origin of the model's own candidates (the others come from the manifest row)


class AlreadyJudged(Exception):
    """The annotator already has a live judgment of this clip (a repeated request)."""


class BadJudgment(Exception):
    """A judgment that does not fit its clip (unknown candidate, empty correction); HTTP 400."""


class ClipTaken(Exception):
    """The clip went to someone else after this annotator's hold expired, or has all its judges; HTTP 409."""


def agreement_key(text: str) -> str:
    """Two judgments agree when their texts are the same, case and spacing aside."""
    return " ".join(text.lower().split())


def check_db_path(path: str | Path, option: str = "--db", must_exist: bool = False) -> None:
    """One line naming the folder when `path` cannot be a review database, before SQLite says only
    "unable to open database file". The folder must be writable even to read: a WAL database keeps
    its -wal and -shm files beside it."""
    path = Path(path)
    folder = path.absolute().parent
    if path.is_dir():
        raise UserInputError(f"{option} {path} is a folder: give the review database file (e.g. {path}/review.sqlite)")
    if not folder.is_dir():
        raise UserInputError(f"{option} {path}: folder {folder} does not exist")
    if must_exist and not path.is_file():
        raise UserInputError(f"{option} {path}: no such file (`rlhf-asr review serve` makes it)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(
            f"{option} {path}: folder {folder} is not writable (SQLite writes the database's -wal and -shm files there)"
        )


@dataclass(frozen=True)
class Judgment:
    id: int
    clip_id: int
    annotator: str
    action: str
    rank: int | None
    text: str
    created_at: float


class ReviewStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.connection().executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            check_db_path(self.path, "review database")  # a missing or read-only folder, said as such
            raise UserInputError(f"{self.path}: not a review database ({error})") from None

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as error:
                check_db_path(self.path, "review database")
                raise UserInputError(f"{self.path}: not a review database ({error})") from None
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def write(self):
        """A transaction holding the write lock from its start."""
        return _Transaction(self.connection())

    # -- the dataset ---------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def attach_dataset(self, clips: list[Clip], fingerprint: str, manifest: str) -> None:
        """Fills a new database with the clips, or checks that an old one was made for the same data."""
        known = self.meta("dataset")
        if known is not None and known != fingerprint:
            made_for = self.meta("manifest")
            raise UserInputError(
                f"{self.path} was made for another dataset ({made_for}), not {manifest}: use a new --db for it"
            )
        with self.write() as db:
            if known is None:
                db.executemany(
                    "INSERT INTO clips VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (i, c.line, c.audio_path, c.duration, c.language, json.dumps(c.texts))
                        for i, c in enumerate(clips, 1)
                    ],
                )
                db.execute("INSERT INTO meta VALUES ('dataset', ?), ('manifest', ?)", (fingerprint, str(manifest)))
            else:  # the same rows, perhaps moved with their manifest: the audio paths of today
                db.executemany(
                    "UPDATE clips SET audio_path = ? WHERE id = ?", [(c.audio_path, i) for i, c in enumerate(clips, 1)]
                )

    def clip_count(self) -> int:
        return self.connection().execute("SELECT count(*) FROM clips").fetchone()[0]

    def clips_without_candidates(self) -> list[sqlite3.Row]:
        return (
            self.connection()
            .execute(
                "SELECT * FROM clips c WHERE NOT EXISTS (SELECT 1 FROM candidates WHERE clip_id = c.id) ORDER BY id"
            )
            .fetchall()
        )

    def add_candidates(self, rows: list[tuple[int, list[tuple[str, str, float | None]]]]) -> None:
        """rows: (clip id, [(origin, text, logprob), ...] best first), one transaction per call."""
        with self.write() as db:
            for clip_id, candidates in rows:
                db.executemany(
                    "INSERT INTO candidates VALUES (?, ?, ?, ?, ?)",
                    [(clip_id, rank, origin, text, logprob) for rank, (origin, text, logprob) in enumerate(candidates)],
                )

    def clip(self, clip_id: int) -> sqlite3.Row | None:
        return self.connection().execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()

    def candidates(self, clip_id: int) -> list[sqlite3.Row]:
        return (
            self.connection().execute("SELECT * FROM candidates WHERE clip_id = ? ORDER BY rank", (clip_id,)).fetchall()
        )

    # -- judging -------------------------------------------------------------------------------
    def next_clip(self, annotator: str, judges_per_clip: int = 1) -> int | None:
        """The clip to show this annotator, held for them so that others are shown other clips.

        Their held clip while it still needs them (the one they stopped at, or undid), else the first
        clip they have not judged or skipped, that fewer than `judges_per_clip` people judged, and
        that no one else holds (holds expire after HOLD_SECONDS: a closed tab frees its clip).
        """
        with self.write() as db:
            held = db.execute("SELECT clip_id FROM holds WHERE annotator = ?", (annotator,)).fetchone()
            if held is not None and self._open_for(db, held[0], annotator, judges_per_clip):
                db.execute("UPDATE holds SET at = ? WHERE annotator = ?", (time.time(), annotator))
                return held[0]
            row = db.execute(
                """SELECT id FROM clips c WHERE NOT EXISTS (
                     SELECT 1 FROM judgments j WHERE j.clip_id = c.id AND j.annotator = ? AND j.undone_at IS NULL)
                   AND (SELECT count(*) FROM judgments j WHERE j.clip_id = c.id AND j.undone_at IS NULL
                        AND j.action != 'skip') < ?
                   AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.clip_id = c.id AND h.annotator != ? AND h.at > ?)
                   ORDER BY id LIMIT 1""",
                (annotator, judges_per_clip, annotator, time.time() - HOLD_SECONDS),
            ).fetchone()
            if row is None:
                db.execute("DELETE FROM holds WHERE annotator = ?", (annotator,))
                return None
            self._hold(db, annotator, row[0])
            return row[0]

    @staticmethod
    def _hold(db: sqlite3.Connection, annotator: str, clip_id: int) -> None:
        db.execute("INSERT OR REPLACE INTO holds VALUES (?, ?, ?)", (annotator, clip_id, time.time()))

    @staticmethod
    def _open_for(db: sqlite3.Connection, clip_id: int, annotator: str, judges_per_clip: int) -> bool:
        mine = db.execute(
            "SELECT 1 FROM judgments WHERE clip_id = ? AND annotator = ? AND undone_at IS NULL", (clip_id, annotator)
        ).fetchone()
        others = db.execute(
            "SELECT count(*) FROM judgments WHERE clip_id = ? AND undone_at IS NULL AND action != 'skip'", (clip_id,)
        ).fetchone()[0]
        held = db.execute(
            "SELECT 1 FROM holds WHERE clip_id = ? AND annotator != ? AND at > ?",
            (clip_id, annotator, time.time() - HOLD_SECONDS),
        ).fetchone()
        return mine is None and others < judges_per_clip and held is None

    def judge(
        self,
        annotator: str,
        clip_id: int,
        action: str,
        rank: int | None = None,
        text: str = "",
        judges_per_clip: int | None = None,
    ) -> Judgment:
        """Commits one judgment; the text saved is what the export will call `chosen`.

        judges_per_clip: the server's; a save is then refused (ClipTaken) when someone else holds the
        clip now or it has its judges already. None (scripts, tests): no such check.
        """
        if action not in ACTIONS:
            raise BadJudgment(f"unknown action {action!r}")
        if action == "correct":
            problem = text_problem(str(text or ""))  # before tidying spaces: split() eats some controls
            if problem:
                raise BadJudgment(f"the correction {problem}: not saved")
        with self.write() as db:
            if db.execute("SELECT 1 FROM clips WHERE id = ?", (clip_id,)).fetchone() is None:
                raise KeyError(clip_id)
            if judges_per_clip is not None:
                self._check_still_open(db, annotator, clip_id, action, judges_per_clip)
            if action == "choose":
                row = db.execute(
                    "SELECT text FROM candidates WHERE clip_id = ? AND rank = ?", (clip_id, rank)
                ).fetchone()
                if row is None:
                    raise BadJudgment(f"clip {clip_id} has no candidate {rank}")
                text = row[0]
            elif action == "correct":
                text = " ".join(str(text or "").split())
                if not text:
                    raise BadJudgment("an empty correction: use 'no speech' for a clip without speech")
                rank = None
            else:
                text, rank = "", None
            now = time.time()
            try:
                cursor = db.execute(
                    "INSERT INTO judgments (clip_id, annotator, action, rank, text, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (clip_id, annotator, action, rank, text, now),
                )
            except sqlite3.IntegrityError:
                raise AlreadyJudged(clip_id) from None
        return Judgment(cursor.lastrowid, clip_id, annotator, action, rank, text, now)

    @staticmethod
    def _check_still_open(db: sqlite3.Connection, annotator: str, clip_id: int, action: str, judges: int) -> None:
        """Inside judge's transaction, so no other save can come between the check and the insert."""
        minutes = f"{HOLD_SECONDS // 60} minutes"
        if db.execute(
            "SELECT 1 FROM holds WHERE clip_id = ? AND annotator != ? AND at > ?",
            (clip_id, annotator, time.time() - HOLD_SECONDS),
        ).fetchone():
            raise ClipTaken(
                f"clip {clip_id} went to another annotator after your hold on it expired ({minutes} without a save):"
                " not saved"
            )
        others = db.execute(
            "SELECT count(*) FROM judgments WHERE clip_id = ? AND annotator != ? AND undone_at IS NULL"
            " AND action != 'skip'",
            (clip_id, annotator),
        ).fetchone()[0]
        if action != "skip" and others >= judges:
            raise ClipTaken(
                f"clip {clip_id} already has its {judges} judgment(s) from others (your hold on it expired after"
                f" {minutes}): not saved"
            )

    def undo(self, annotator: str) -> int | None:
        """Marks the annotator's latest live judgment undone; returns its clip (shown again next)."""
        with self.write() as db:
            row = db.execute(
                "SELECT id, clip_id FROM judgments WHERE annotator = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE judgments SET undone_at = ? WHERE id = ?", (time.time(), row["id"]))
            if self._open_for(db, row["clip_id"], annotator, 1 << 30):  # unless someone else is on it now
                self._hold(db, annotator, row["clip_id"])  # shown next, also after a restart
        return row["clip_id"]

    def live_judgments(self, annotator: str | None = None) -> list[Judgment]:
        query = "SELECT id, clip_id, annotator, action, rank, text, created_at FROM judgments WHERE undone_at IS NULL"
        args: tuple = ()
        if annotator is not None:
            query, args = query + " AND annotator = ?", (annotator,)
        return [Judgment(*row) for row in self.connection().execute(query + " ORDER BY id", args)]

    def annotator_counts(self, annotator: str) -> dict:
        """One annotator's counts (their own judgments only: cheap, asked with every clip)."""
        counts = Counter(
            dict(
                self.connection().execute(
                    "SELECT action, count(*) FROM judgments WHERE annotator = ? AND undone_at IS NULL GROUP BY 1",
                    (annotator,),
                )
            )
        )
        return _counts(counts)

    def progress(self, judges_per_clip: int = 1) -> dict:
        """Counts per annotator, clips done, and agreement among clips judged by two or more people.

        Counted in SQL (the page asks for it with every clip); only the clips judged twice or more
        are compared in Python (case and spacing aside).
        """
        db = self.connection()
        per: dict[str, Counter] = {}
        live = "FROM judgments WHERE undone_at IS NULL"
        for annotator, action, count in db.execute(f"SELECT annotator, action, count(*) {live} GROUP BY 1, 2"):
            per.setdefault(annotator, Counter())[action] = count
        judged = f"SELECT clip_id {live} AND action != 'skip' GROUP BY clip_id HAVING count(*) >= ?"
        done = db.execute(f"SELECT count(*) FROM ({judged})", (judges_per_clip,)).fetchone()[0]
        by_clip: dict[int, set[str]] = {}
        for clip_id, text in db.execute(
            f"SELECT clip_id, text {live} AND action != 'skip' AND clip_id IN ({judged})", (2,)
        ):
            by_clip.setdefault(clip_id, set()).add(agreement_key(text))
        return {
            "clips": self.clip_count(),
            "done": done,
            "annotators": {name: _counts(c) for name, c in sorted(per.items())},
            "agreement": {"clips": len(by_clip), "agreeing": sum(len(texts) == 1 for texts in by_clip.values())},
        }


def _counts(actions: Counter) -> dict:
    judged = sum(actions.values()) - actions["skip"]
    return {"judged": judged, "skipped": actions["skip"], "no_speech": actions["no_speech"]}


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
