"""A controller process for the cluster tests: `python -m tests.cluster_job ADDRESS JOB CONFIG.json`.

Runs a job with the paced stand-in model to its end (exit 0: every source done), so a test can SIGKILL it
midway and start it again: the second run re-attaches to the job's workers and finishes the job.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tests.cluster_helpers import FACTORY, use_token_auth

use_token_auth()  # before the first `import ray` (also a barrier that keeps import sorting from moving it)

from cluster.controller import Controller  # noqa: E402
from cluster.driver import connect  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402


def main(address: str, job_id: str, config_path: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    cfg = PipelineConfig.model_validate_json(Path(config_path).read_text())
    connect(address, "maskstream-test")
    controller = Controller(cfg, job_id, detector_factory=FACTORY)
    report = controller.run()
    controller.shutdown()
    return 0 if sorted(report.done) == sorted(s.id for s in cfg.sources) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
