"""Zone and line events: our mask rules against supervision's box anchors, on the same tracks, scored against the
simulator's true events.

    nice -n 10 .venv/bin/python benchmarks/zones_events.py --out /tmp/zones-bench [--frames 240]

For each synthetic clip (surveillance and drone; held out: clip seeds are salted apart from the training stills'
scene seeds, docs/MODEL.md) rendered with `configs/zones-eval.yaml`:
1. the true events (`events_gt.jsonl`, synth.zone_truth: our rules on the exact visible masks and identities);
2. two sets of tracks: the bundled model's detections (computed once, cached) through our tracker, and the
   ground-truth tracks (true boxes, masks and ids);
3. on each set of tracks, the events of: our rules with reference `mask` (default), `footprint` and `box_bottom`;
   supervision 0.31.2 `LineZone` (default anchors: the four box corners) for lines and `PolygonZone` (default
   anchor: bottom centre) for zones, the latter debounced with the same `min_frames` state machine as ours;
4. every set of events is scored with `evaluation.events` (matching within --tolerance seconds, same class) twice:
   against the true events (the mask rule on exact masks, so on ground-truth tracks our `mask` rows are 1.0 by
   construction and the other rows say how far each anchor is from the mask definition), and against each rule's
   own truth (the same rule on the exact masks, boxes and ids): what the model's detections and our tracker cost
   each rule, whatever its definition.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from analytics.geometry import box_window, side_of_line
from analytics.rules import Moment, ObjectView, RegionRules
from evaluation.events import Score, group_scores, load_events, score_events
from evaluation.tracking import DetectionSet, _default_detector, iter_video, load_clip, model_detections
from pipeline.config.tracker import TrackerConfig
from pipeline.config.zones import RegionsConfig, load_regions
from pipeline.events import EventBuilder
from pipeline.items import Frame, ZoneEvent
from stages.zones import detection_mask
from synth.clip import render_clip
from synth.zone_truth import TRUTH_FILE, synth_class_names
from tracking.tracker import MultiObjectTracker

log = logging.getLogger("zones_events")


@dataclass(slots=True)
class FrameTracks:
    now: Moment
    objects: list[ObjectView]
    ended: list[int] = field(default_factory=list)


def _crop(rle: dict, box: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int]:
    from pycocotools import mask as mask_utils

    mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)
    x0, y0, x1, y1 = box_window(box, height, width)
    return mask[y0:y1, x0:x1], x0, y0


def model_tracks(clip, dets: DetectionSet) -> list[FrameTracks]:
    height, width = clip.size
    tracker = MultiObjectTracker(TrackerConfig())
    out = []
    # the decoded video, as the pipeline sees it: camera-motion compensation needs the pictures
    for (index, pts, image), frame_dets in zip(iter_video(clip.video), dets.frames, strict=False):
        frame = Frame(clip.name, index, pts, pts, image)
        detections = frame_dets.valid(height, width).to_detections(height, width)
        step = tracker.step(frame, detections)
        objects = []
        for track in step.tracks:
            if track.detection_index is None:
                continue
            crop, x0, y0 = detection_mask(detections, track.detection_index)
            box = detections.boxes[track.detection_index]
            objects.append(ObjectView(track.track_id, track.label, box, crop, x0, y0))
        ended = [t.track.track_id for t in step.transitions if t.kind == "ended"]
        out.append(FrameTracks(Moment(index, pts, pts), objects, ended))
    finished = [t.track.track_id for t in tracker.finish()]
    if out:
        out[-1].ended += finished
    return out


def gt_tracks(clip, gap_s: float = 1.5) -> list[FrameTracks]:
    """The true tracks, ended as synth.zone_truth ends them (unseen for more than gap_s)."""
    height, width = clip.size
    out, last_seen = [], {}
    for index in range(clip.num_frames):
        t = index / clip.fps
        objs = clip.gt.get(index)
        objects = []
        if objs is not None:
            for k in range(len(objs.ids)):
                crop, x0, y0 = _crop(objs.rles[k], objs.boxes[k], height, width)
                objects.append(ObjectView(int(objs.ids[k]), int(objs.classes[k]), objs.boxes[k], crop, x0, y0))
                last_seen[int(objs.ids[k])] = t
        ended = [tid for tid, seen in last_seen.items() if t - seen > gap_s]
        for tid in ended:
            del last_seen[tid]
        out.append(FrameTracks(Moment(index, t, t), objects, ended))
    if out:
        out[-1].ended += list(last_seen)
    return out


class _PolygonZoneRules(RegionRules):
    """Our state machine, with supervision's PolygonZone (bottom-centre anchor) deciding inside/outside."""

    def resolve(self, width: int, height: int) -> list[str]:
        import supervision as sv

        problems = super().resolve(width, height)
        self._sv = {z.cfg.name: sv.PolygonZone(np.round(z.polygon).astype(np.int64)) for z in self.zones}
        return problems

    def _inside(self, zone, obj: ObjectView) -> bool:
        import supervision as sv

        det = sv.Detections(xyxy=np.asarray(obj.box, float).reshape(1, 4), class_id=np.array([obj.label]))
        return bool(self._sv[zone.cfg.name].trigger(det)[0])


def replay(frames: list[FrameTracks], rules: RegionRules, size: tuple[int, int]) -> list[ZoneEvent]:
    rules.resolve(*size)
    last: dict[int, Moment] = {}
    events: list[ZoneEvent] = []
    for ft in frames:
        events += rules.step(ft.now, ft.objects)
        for obj in ft.objects:
            last[obj.track_id] = ft.now
        if ft.ended:
            events += rules.end_tracks([(tid, last.pop(tid, ft.now)) for tid in ft.ended], ft.now)
    return events


def supervision_lines(frames: list[FrameTracks], regions: RegionsConfig, size: tuple[int, int]) -> list[ZoneEvent]:
    """supervision's LineZone (default anchors: the four box corners) on the same tracks."""
    import supervision as sv

    rules = RegionRules([], regions.lines, synth_class_names())
    rules.resolve(*size)
    events: list[ZoneEvent] = []
    for line in rules.lines:
        zone = sv.LineZone(start=sv.Point(*line.a), end=sv.Point(*line.b))
        for ft in frames:
            objs = [o for o in ft.objects if line.classes is None or o.label in line.classes]
            if not objs:
                continue
            det = sv.Detections(
                xyxy=np.array([np.asarray(o.box, float) for o in objs]),
                class_id=np.array([o.label for o in objs]),
                tracker_id=np.array([o.track_id for o in objs]),
            )
            crossed_in, crossed_out = zone.trigger(det)
            for k in np.flatnonzero(crossed_in | crossed_out):
                o = objs[k]
                box = np.asarray(o.box, float)
                centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
                side = 1 if side_of_line(centre, line.a, line.b) > 0 else -1  # where it is now: its new side
                direction = "in" if side == line.in_sign else "out"
                events.append(
                    ZoneEvent(
                        "line.crossed",
                        line.cfg.name,
                        ft.now.frame_index,
                        ft.now.pts,
                        ft.now.capture_time,
                        track_id=o.track_id,
                        label=o.label,
                        direction=direction,
                    )
                )
    return events


def with_reference(regions: RegionsConfig, reference: str) -> RegionsConfig:
    return RegionsConfig(
        zones=[z.model_copy(update={"reference": reference}) for z in regions.zones],
        lines=[ln.model_copy(update={"reference": reference}) for ln in regions.lines],
    )


def methods(regions: RegionsConfig, frames: list[FrameTracks], size: tuple[int, int]) -> dict[str, list[ZoneEvent]]:
    names = synth_class_names()
    out = {}
    for reference in ("mask", "footprint", "box_bottom"):
        out[f"ours, {reference}"] = replay(frames, _rules(regions, reference), size)
    sv_zones = replay(frames, _PolygonZoneRules(with_reference(regions, "box_bottom").zones, [], names), size)
    out["supervision LineZone / PolygonZone"] = supervision_lines(frames, regions, size) + sv_zones
    return out


def _rules(regions: RegionsConfig, reference: str) -> RegionRules:
    cfg = with_reference(regions, reference)
    return RegionRules(cfg.zones, cfg.lines, synth_class_names())


def _timing(score: Score) -> str:
    return f"{np.mean(score.errors):.2f}" if score.errors else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/zones-bench", help="clips and cached detections go here")
    parser.add_argument("--zones", default=str(Path(__file__).resolve().parents[1] / "configs/zones-eval.yaml"))
    parser.add_argument("--surveillance-seeds", type=int, nargs="*", default=[901, 902])
    parser.add_argument("--drone-seeds", type=int, nargs="*", default=[901])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--fps", type=float, default=15.0, help="clip frame rate (15: half the model time of 30)")
    parser.add_argument("--tolerance", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    regions = load_regions(args.zones)
    root = Path(args.out)
    detector = None
    rows: dict[tuple[str, str, str, str], dict[str, Score]] = {}
    started = time.monotonic()
    clips = [("surveillance", s) for s in args.surveillance_seeds] + [("drone", s) for s in args.drone_seeds]
    for mode, seed in clips:
        directory = root / "clips" / f"{mode}-{seed}-{args.frames}f{args.fps:g}"
        if not (directory / TRUTH_FILE).exists():
            render_clip(directory, mode=mode, seed=seed, frames=args.frames, fps=args.fps, force=True, regions=regions)
        clip = load_clip(directory)
        truth = load_events(directory / TRUTH_FILE)
        cache = root / "detections" / f"{clip.name}.model.npz"
        if cache.exists():
            dets = DetectionSet.load(cache)
        else:
            detector = detector or _default_detector()
            dets = model_detections(clip, detector)
            dets.save(cache)
        size = (clip.size[1], clip.size[0])
        builder = EventBuilder(synth_class_names())
        true_frames = gt_tracks(clip)
        # each rule's own truth: that rule on the exact masks, boxes and ids (the mask one is events_gt.jsonl)
        own_truth = {
            reference: builder.for_zone_events(clip.name, replay(true_frames, _rules(regions, reference), size))
            for reference in ("mask", "footprint", "box_bottom")
        }
        for tracks_name, frames in (("model", model_tracks(clip, dets)), ("ground truth", true_frames)):
            for method, zone_events in methods(regions, frames, size).items():
                events = builder.for_zone_events(clip.name, zone_events)
                reference = method.split(", ")[1] if method.startswith("ours") else "box_bottom"
                for truth_name, truth_events in (("mask", truth), ("own", own_truth[reference])):
                    groups = group_scores(score_events(events, truth_events, args.tolerance))
                    acc = rows.setdefault((truth_name, mode, tracks_name, method), {})
                    for group, score in groups.items():
                        acc.setdefault(group, Score()).add(score)
        n_truth = sum(1 for e in truth if e["type"] in ("line.crossed", "zone.entered", "zone.exited"))
        log.info("%s: %d true crossings/entries/exits", clip.name, n_truth)
    print(f"\n{len(clips)} clips x {args.frames} frames at {args.fps:g} fps, tolerance {args.tolerance} s, "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    for truth_name, title in (
        ("mask", "against the true events (the mask rule on exact masks: events_gt.jsonl)"),
        ("own", "each rule against its own truth (the same rule on exact masks and boxes; supervision: box_bottom)"),
    ):
        print(f"\n{title}\n")
        print("| clips | tracks | rule | crossings F1 (P / R) | in F1 | out F1 | entries+exits F1 (P / R) "
              "| mean timing error crossings / entries+exits (s) | true crossings / entries+exits |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for (name, mode, tracks_name, method), groups in rows.items():
            if name != truth_name or (name == "own" and tracks_name != "model"):
                continue  # on exact tracks a rule matches its own truth by construction
            c, e = groups["crossings"], groups["entries+exits"]
            print(
                f"| {mode} | {tracks_name} | {method} | {c.f1:.3f} ({c.precision:.2f} / {c.recall:.2f}) | "
                f"{groups['crossings in'].f1:.3f} | {groups['crossings out'].f1:.3f} | "
                f"{e.f1:.3f} ({e.precision:.2f} / {e.recall:.2f}) | {_timing(c)} / {_timing(e)} | "
                f"{c.tp + c.fn} / {e.tp + e.fn} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
