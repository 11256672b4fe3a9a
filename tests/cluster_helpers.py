"""Helpers for the cluster tests and benchmark: a local multi-node Ray cluster, a paced stand-in model, checks.

The stand-in model finds the clips' coloured shapes by colour (tests/pipeline_helpers.write_clip draws them), so
its detections — and the tracks and events — depend on the decoded pixels only and are the same on every worker
and in a single-process run; it sleeps a fixed time per frame under a per-process lock, like one accelerator per
worker, so a 2-core machine measures coordination, not compute.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import torch

from pipeline.config import PipelineConfig
from pipeline.items import RawDetections
from stages.inference import Detector

PACE_ENV = "MASKSTREAM_TEST_PACE_S"  # seconds per frame of the stand-in (workers read it from their env)
_ACCELERATOR = threading.Lock()
# (low, high) RGB bounds of the two shapes write_clip draws, (230, 60, 60) and (60, 200, 240), and of the white
# ball of the RTSP test server's picture
_COLOURS = (((200, 0, 0), (255, 110, 110)), ((0, 160, 200), (110, 240, 255)), ((200, 200, 200), (255, 255, 255)))
WALL_CLOCK_FIELDS = ("capture_time", "duration_s")


@dataclass
class PacedColourDetector(Detector):
    seconds_per_frame: float = 0.05

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        with _ACCELERATOR:
            time.sleep(self.seconds_per_frame * len(images))
            return [self._find_shapes(image) for image in images]

    @staticmethod
    def _find_shapes(image: torch.Tensor) -> RawDetections:
        pixels = (image * 255).round()
        boxes, labels = [], []
        for label, (low, high) in enumerate(_COLOURS, start=1):
            inside = torch.ones(pixels.shape[1:], dtype=torch.bool)
            for channel in range(3):
                inside &= (pixels[channel] >= low[channel]) & (pixels[channel] <= high[channel])
            ys, xs = torch.nonzero(inside, as_tuple=True)
            if len(xs) > 50:
                boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
                labels.append(label)
        count = len(boxes)
        return RawDetections(
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(count, 4),
            scores=torch.full((count,), 0.9),
            labels=torch.tensor(labels, dtype=torch.int64),
            mask_probs=torch.ones((count, 1, 28, 28)),
        )


def paced_detector(cfg: PipelineConfig | None = None) -> Detector:
    """The factory the workers call (`tests.cluster_helpers:paced_detector`)."""
    torch.set_num_threads(1)
    model = torch.nn.Identity()
    return PacedColourDetector(
        model, ["background", "red", "cyan", "ball"], torch.device("cpu"), arch="paced-stand-in",
        seconds_per_frame=float(os.environ.get(PACE_ENV, "0.05")),
    )  # fmt: skip


FACTORY = "tests.cluster_helpers:paced_detector"
TINY_FACTORY = "tests.cluster_helpers:tiny_maskrcnn_detector"


def tiny_maskrcnn_detector(cfg: PipelineConfig | None = None) -> Detector:
    """A real (tiny, seeded) torchvision Mask R-CNN on the CPU in fp32, one thread so every process computes alike."""
    from tests.pipeline_helpers import tiny_detector

    torch.set_num_threads(1)
    return tiny_detector(max_detections=5)


def use_token_auth() -> None:
    """Token auth for every Ray process of this test session. Ray reads it when it is first imported, so this
    runs before `import ray` (at the import of this module)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    # Every address on loopback: Ray otherwise guesses the node IP from a route to the internet, and where that
    # guess changes (no route out) the head binds one address while clients dial another.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


use_token_auth()


class LocalRayCluster:
    """A head (no slots) and `workers` nodes with one `maskstream_slot` and one CPU each, token auth on.

    The token is made here and handed over in the environment only (RAY_AUTH_TOKEN), never in a file we write.
    """

    def __init__(self, workers: int) -> None:
        use_token_auth()
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            # loopback only: tests never send traffic to the machine's network address
            head_node_args={
                "num_cpus": 0,
                "object_store_memory": 100 * 1024**2,
                "include_dashboard": False,
                "node_ip_address": "127.0.0.1",
            },
        )
        self.nodes = [self.add_node() for _ in range(workers)]

    def add_node(self) -> Any:
        node = self.cluster.add_node(
            num_cpus=1,
            resources={"maskstream_slot": 1},
            object_store_memory=100 * 1024**2,
            node_ip_address="127.0.0.1",
        )
        self.cluster.wait_for_nodes()
        return node

    def remove_node(self, node_id: str) -> None:
        node = next(n for n in self.nodes if n.node_id == node_id)
        self.nodes.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)

    @property
    def address(self) -> str:
        return self.cluster.address

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()


@contextmanager
def local_ray_cluster(workers: int) -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(workers)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def stream_events(client: redis.Redis, source_id: str) -> list[tuple[str, dict[str, Any], int]]:
    """(entry id, event, epoch) of every entry of a source's stream, in stream order."""
    entries = client.xrange(f"maskstream:{{{source_id}}}:events")
    return [
        (entry_id.decode(), json.loads(fields[b"data"]), int(fields.get(b"epoch", b"0")))
        for entry_id, fields in entries
    ]


def without_wall_clock(event: dict[str, Any]) -> dict[str, Any]:
    """The event minus wall-clock readings (capture times), which differ between any two runs by nature."""
    out = {k: v for k, v in event.items() if k not in WALL_CLOCK_FIELDS}
    for key in ("first_seen", "last_seen"):
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k != "capture_time"}
    return out


def single_process_events(cfg: PipelineConfig, tmp: Path, factory: str = FACTORY) -> dict[str, list[dict[str, Any]]]:
    """The reference: the same sources through today's Pipeline in this process (no pacing), per source."""
    from cluster.worker import load_factory
    from pipeline.runner import Pipeline
    from sinks.jsonl import JsonlSink

    path = tmp / "reference.jsonl"
    detector = load_factory(factory)(cfg)
    if isinstance(detector, PacedColourDetector):
        detector.seconds_per_frame = 0.0
    plain = cfg.model_copy(update={"redis": None})
    Pipeline(plain, detector=detector, event_sinks=[JsonlSink(path)], frame_sinks=[]).run()
    events: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        events.setdefault(event["source_id"], []).append(event)
    return events
