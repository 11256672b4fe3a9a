"""Scoring zone and line events against the simulator's true events (`maskstream synth --zones`).

Events are matched per (type, zone or line, direction): a predicted event and a true one match when they agree on
the class and lie within `tolerance_s` of each other; each event matches at most once (an optimal assignment on
the time differences). Track ids are not compared: the pipeline's ids are its own. Reported per row and per group
(crossings, crossings per direction, entries, exits): precision, recall, F1 and the mean / max timing error of the
matches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.errors import MaskstreamError

SCORED_TYPES = ("line.crossed", "zone.entered", "zone.exited")


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """Events of a JSON Lines file (a run's `sinks.jsonl`, or a clip's events_gt.jsonl)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise MaskstreamError(f"cannot read events {path}: {exc.strerror}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MaskstreamError(f"{path}:{number}: not a JSON event ({exc.msg})") from None
    return events


def event_time(event: dict[str, Any]) -> float:
    return float(event["pts"] if event.get("pts") is not None else event["capture_time"])


def event_key(event: dict[str, Any]) -> tuple[str, str, str]:
    region = event.get("line") if event["type"] == "line.crossed" else event.get("zone")
    return event["type"], str(region), str(event.get("direction") or "")


@dataclass(slots=True)
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list[float] = field(default_factory=list)  # |time difference| of each match, seconds

    def add(self, other: Score) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.errors += other.errors

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "mean_abs_error_s": round(float(np.mean(self.errors)), 4) if self.errors else None,
            "max_abs_error_s": round(float(np.max(self.errors)), 4) if self.errors else None,
        }


def _match(predicted: list[dict], truth: list[dict], tolerance_s: float, same_class: bool) -> Score:
    score = Score()
    if not predicted or not truth:
        return Score(fp=len(predicted), fn=len(truth))
    never = 1e9
    cost = np.full((len(predicted), len(truth)), never)
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            dt = abs(event_time(p) - event_time(t))
            if dt <= tolerance_s and (not same_class or p.get("class_name") == t.get("class_name")):
                cost[i, j] = dt
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] < never:
            score.tp += 1
            score.errors.append(float(cost[i, j]))
    score.fp = len(predicted) - score.tp
    score.fn = len(truth) - score.tp
    return score


def score_events(
    predicted: list[dict[str, Any]],
    truth: list[dict[str, Any]],
    tolerance_s: float = 0.5,
    same_class: bool = True,
) -> dict[tuple[str, str, str], Score]:
    """Score per (type, region, direction) over the scored types; every key of either side appears."""
    by_key: dict[tuple[str, str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for event in predicted:
        if event.get("type") in SCORED_TYPES:
            by_key[event_key(event)][0].append(event)
    for event in truth:
        if event.get("type") in SCORED_TYPES:
            by_key[event_key(event)][1].append(event)
    return {key: _match(p, t, tolerance_s, same_class) for key, (p, t) in sorted(by_key.items())}


GROUPS: dict[str, tuple[str, ...]] = {
    "crossings": ("line.crossed",),
    "crossings in": ("line.crossed:in",),
    "crossings out": ("line.crossed:out",),
    "entries": ("zone.entered",),
    "exits": ("zone.exited",),
    "entries+exits": ("zone.entered", "zone.exited"),
}


def group_scores(scores: dict[tuple[str, str, str], Score]) -> dict[str, Score]:
    """Totals per group of rows (every crossing, per direction, entries, exits, both)."""
    out: dict[str, Score] = {}
    for group, members in GROUPS.items():
        total = Score()
        for (kind, _, direction), score in scores.items():
            if kind in members or f"{kind}:{direction}" in members:
                total.add(score)
        out[group] = total
    return out


def markdown(scores: dict[tuple[str, str, str], Score]) -> str:
    rows = [
        "| events | TP | FP | FN | precision | recall | F1 | mean / max timing error (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, score: Score) -> str:
        d = score.as_dict()
        timing = f"{d['mean_abs_error_s']:.3f} / {d['max_abs_error_s']:.3f}" if score.errors else "–"
        return f"| {name} | {score.tp} | {score.fp} | {score.fn} | {score.precision:.3f} | {score.recall:.3f} | {score.f1:.3f} | {timing} |"

    for (kind, region, direction), score in scores.items():
        rows.append(row(f"{kind} {region}" + (f" {direction}" if direction else ""), score))
    for group, score in group_scores(scores).items():
        rows.append(row(f"**{group}**", score))
    return "\n".join(rows) + "\n"
