"""Scoring tracks against ground truth with TrackEval's metrics, in memory.

TrackEval's metric classes (HOTA, CLEAR, Identity) score one sequence from per-frame id lists and similarity
matrices (`eval_sequence`), which is exactly what its file-based runner feeds them after preprocessing. Here the
similarity is box IoU (MOTChallenge) or mask IoU from COCO RLEs (MOTS; pycocotools), computed per class: a track
of the wrong class is never credited. Classes of a sequence are combined as TrackEval combines sequences (sums of
TP/FN/FP and of association counts), i.e. detection-averaged.

TrackEval is a benchmark dependency (`pip install .[bench]`), imported only when scoring.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tracking.association import box_iou
from tracking.mot_io import FrameObjects

# The summary reported per run, in percent where TrackEval reports a fraction.
PERCENT_FIELDS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "sMOTA")
COUNT_FIELDS = ("IDSW", "CLR_FP", "CLR_FN", "Frag")


def _trackeval():
    try:
        import trackeval
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from pipeline.errors import MaskstreamError

        raise MaskstreamError(
            "scoring tracks needs TrackEval: pip install --no-deps trackeval==1.3.0 && pip install tabulate "
            "(see docs/TRACKING.md)"
        ) from exc
    return trackeval


@dataclass(slots=True)
class SequenceData:
    """TrackEval's per-sequence input for one class."""

    num_timesteps: int
    gt_ids: list[np.ndarray]
    tracker_ids: list[np.ndarray]
    similarity_scores: list[np.ndarray]

    def as_dict(self) -> dict:
        gt_all = np.concatenate(self.gt_ids) if self.gt_ids else np.zeros(0, int)
        tr_all = np.concatenate(self.tracker_ids) if self.tracker_ids else np.zeros(0, int)
        return {
            "num_timesteps": self.num_timesteps,
            "num_gt_ids": len(np.unique(gt_all)),
            "num_tracker_ids": len(np.unique(tr_all)),
            "num_gt_dets": len(gt_all),
            "num_tracker_dets": len(tr_all),
            "gt_ids": self.gt_ids,
            "tracker_ids": self.tracker_ids,
            "similarity_scores": self.similarity_scores,
        }


def _contiguous(ids_per_frame: list[np.ndarray]) -> list[np.ndarray]:
    """Map arbitrary ids to 0..K-1 as TrackEval requires."""
    all_ids = np.unique(np.concatenate(ids_per_frame)) if ids_per_frame else np.zeros(0, int)
    lookup = {int(v): k for k, v in enumerate(all_ids.tolist())}
    return [np.array([lookup[int(v)] for v in ids], dtype=int) for ids in ids_per_frame]


def mask_iou_matrix(gt_rles: list[dict], tr_rles: list[dict]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if not gt_rles or not tr_rles:
        return np.zeros((len(gt_rles), len(tr_rles)))

    def enc(rles: list[dict]) -> list[dict]:
        return [
            {
                "size": list(r["size"]),
                "counts": r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"],
            }
            for r in rles
        ]

    return np.asarray(mask_utils.iou(enc(gt_rles), enc(tr_rles), [False] * len(tr_rles)), dtype=float).reshape(
        len(gt_rles), len(tr_rles)
    )


def build_sequence(
    gt: dict[int, FrameObjects],
    tracks: dict[int, FrameObjects],
    frames: Iterable[int],
    cls: int | None,
    use_masks: bool,
) -> SequenceData:
    """Per-frame ids and similarities for one class (cls None: every object, class ignored)."""
    gt_ids, tr_ids, sims = [], [], []
    frames = list(frames)
    empty = FrameObjects()
    for f in frames:
        g = gt.get(f, empty)
        t = tracks.get(f, empty)
        g_sel = np.ones(len(g), bool) if cls is None else g.classes == cls
        t_sel = np.ones(len(t), bool) if cls is None else t.classes == cls
        gi, ti = np.flatnonzero(g_sel), np.flatnonzero(t_sel)
        gt_ids.append(g.ids[gi])
        tr_ids.append(t.ids[ti])
        if use_masks:
            sims.append(mask_iou_matrix([g.rles[i] for i in gi], [t.rles[i] for i in ti]))
        else:
            sims.append(box_iou(g.boxes[gi], t.boxes[ti]))
    return SequenceData(len(frames), _contiguous(gt_ids), _contiguous(tr_ids), sims)


def _metrics():
    trackeval = _trackeval()
    with contextlib.redirect_stdout(io.StringIO()):  # TrackEval prints its config on construction
        return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]


def evaluate(
    gt: dict[int, FrameObjects],
    tracks: dict[int, FrameObjects],
    frames: Iterable[int],
    use_masks: bool = False,
    per_class: bool = True,
) -> dict[str, float]:
    """HOTA, DetA, AssA, LocA, MOTA, MOTP, IDF1, sMOTA (percent) and IDSW, FP, FN, Frag (counts) of one sequence."""
    frames = list(frames)
    classes: list[int | None] = [None]
    if per_class:
        present = set()  # tracker-only classes too: their boxes are false positives, not ignored
        for f in frames:
            for source in (gt, tracks):
                if f in source:
                    present.update(source[f].classes.tolist())
        classes = sorted(present) or [None]
    metrics = _metrics()
    per_metric: list[dict[str, dict]] = [{} for _ in metrics]
    for cls in classes:
        data = build_sequence(gt, tracks, frames, cls, use_masks).as_dict()
        for k, metric in enumerate(metrics):
            per_metric[k][str(cls)] = metric.eval_sequence(data)
    combined: dict[str, float] = {}
    for metric, results in zip(metrics, per_metric, strict=True):
        res = metric.combine_sequences(results)
        for key, value in res.items():
            combined[key] = float(np.mean(value)) if np.ndim(value) else float(value)
    summary = {k: 100.0 * combined[k] for k in PERCENT_FIELDS if k in combined}
    summary.update({k: combined[k] for k in COUNT_FIELDS if k in combined})
    return summary


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each field over runs (seeds); counts are averaged too (per sequence)."""
    keys = runs[0].keys() if runs else []
    return {k: float(np.mean([r[k] for r in runs])) for k in keys}
