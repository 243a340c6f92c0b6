"""Label Studio's "ASR hypotheses selection" JSON, both ways.

Its labeling config is `<Audio name="audio" value="$audio"/>` with `<Choices name="transcriptions"
toName="audio" value="$transcriptions"/>`; a task's data holds the audio and the hypotheses as
`[{"value": text}, ...]`, and an annotation's result the chosen one as a `choices` value. A
correction (which that template cannot take) is a `textarea` result named "transcription", as
in Label Studio's ASR templates; "no speech" is that textarea with an empty text.

`to_tasks` writes the review database as tasks (one annotation per live judgment), which Label
Studio imports; `judgments_from_tasks` reads tasks exported by Label Studio (or by `to_tasks`)
back into (audio, chosen, hypotheses, annotator) rows, from which `pairs_from_tasks` makes pairs,
merging the annotations of one task as `export.preference_rows` merges judges. A text with a
character no transcript may hold (text_rules.py) is refused, naming the task and annotation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rlhf_asr.data.audio import AudioError, audio_duration
from rlhf_asr.data.text_rules import text_problem
from rlhf_asr.errors import UserInputError
from rlhf_asr.review.export import agreeing_groups
from rlhf_asr.review.store import MODEL, ReviewStore

logger = logging.getLogger(__name__)

CONFIG = (
    '<View><Audio name="audio" value="$audio"/>'
    '<Choices name="transcriptions" toName="audio" value="$transcriptions" selection="highlight"/>'
    '<TextArea name="transcription" toName="audio" editable="true"/></View>'
)


def _result(judgment) -> list[dict]:
    if judgment.action == "choose":
        return [{"from_name": "transcriptions", "to_name": "audio", "type": "choices",
                 "value": {"choices": [judgment.text]}}]  # fmt: skip
    return [{"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [judgment.text]}}]


def to_tasks(store: ReviewStore) -> list[dict]:
    by_clip: dict[int, list] = {}
    for judgment in store.live_judgments():
        if judgment.action != "skip":
            by_clip.setdefault(judgment.clip_id, []).append(judgment)
    tasks = []
    for clip_id in range(1, store.clip_count() + 1):
        clip = store.clip(clip_id)
        candidates = store.candidates(clip_id)
        tasks.append(
            {
                "id": clip_id,
                "data": {
                    "audio": clip["audio_path"],
                    "transcriptions": [{"value": row["text"]} for row in candidates],
                    "origins": [row["origin"] for row in candidates],
                },
                "annotations": [
                    {"completed_by": j.annotator, "created_at": j.created_at, "result": _result(j)}
                    for j in by_clip.get(clip_id, [])
                ],
            }
        )
    return tasks


def judgments_from_tasks(path: str | Path) -> list[dict]:
    """One {task, audio, chosen, hypotheses, origins, annotator} per annotation with a choice or a text."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{path}: not a Label Studio JSON export ({error})") from None
    if not isinstance(tasks, list):
        raise UserInputError(f"{path}: a Label Studio export is a JSON list of tasks")
    found = []
    for index, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        hypotheses = data.get("transcriptions") if isinstance(data, dict) else None
        if not isinstance(hypotheses, list) or "audio" not in data:
            raise UserInputError(f"{path}: task {index}: needs data.audio and data.transcriptions")
        texts = [item.get("value", "") if isinstance(item, dict) else str(item) for item in hypotheses]
        origins = data.get("origins") or [MODEL] * len(texts)
        for number, annotation in enumerate(task.get("annotations") or []):
            chosen = None
            for result in annotation.get("result") or []:
                value = result.get("value") or {}
                if result.get("type") == "textarea" and value.get("text") is not None:
                    chosen = " ".join(value["text"])
                elif result.get("type") == "choices" and value.get("choices") and chosen is None:
                    chosen = value["choices"][0]
            if chosen is not None:
                problem = text_problem(chosen) if isinstance(chosen, str) else "is not a string"
                if problem:
                    raise UserInputError(f"{path}: task {index}, annotation {number}: the text {problem}")
                who = annotation.get("completed_by")
                found.append({"task": index, "audio": data["audio"], "chosen": " ".join(chosen.split()),
                              "hypotheses": texts, "origins": origins,
                              "annotator": str(who) if who is not None else ""})  # fmt: skip
    return found


def pairs_from_tasks(path: str | Path, rejected: str = "top", keep_disagreements: bool = False) -> list[dict]:
    """Preference rows from a Label Studio export, chosen, rejected and judges as in `export.preference_rows`."""
    by_task: dict[int, list[dict]] = {}
    for item in judgments_from_tasks(path):
        by_task.setdefault(item["task"], []).append(item)
    rows, disagree = [], 0
    base = Path(path).absolute().parent
    for items in by_task.values():
        groups = agreeing_groups(items, lambda item: item["chosen"])
        if len(groups) > 1 and not keep_disagreements:
            disagree += 1
            continue
        rows += [row for group in groups for row in _pairs_of(group, base, path, rejected)]
    if disagree:
        logger.info(
            "%s: %d task(s) where the judges disagree left out (--keep_disagreements keeps them)", path, disagree
        )
    return rows


def _pairs_of(group: list[dict], base: Path, path, rejected: str) -> list[dict]:
    """The rows of annotations of one task that agree (the first one's text)."""
    rows, item = [], group[0]
    audio = base / Path(item["audio"]).expanduser()
    try:
        duration = round(audio_duration(audio), 3)
    except AudioError as error:
        raise UserInputError(f"{path}: {error.kind}: {error.path}: {error.reason}") from None
    model = [text for text, origin in zip(item["hypotheses"], item["origins"]) if origin == MODEL]
    others = model[:1] if rejected == "top" else item["hypotheses"]
    for text in others:
        if text.split() != item["chosen"].split():
            rows.append({"audio": {"path": str(audio)}, "duration": duration, "chosen": item["chosen"],
                         "rejected": text, "annotator": item["annotator"], "judges": len(group),
                         "annotators": [i["annotator"] for i in group]})  # fmt: skip
    return rows
