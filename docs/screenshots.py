"""Take the live page's screenshots in docs/ from a real run, so they show what the code does today.

    python docs/screenshots.py [--frames 60] [--device cpu]

Runs the demo clip (synthetic surveillance, bundled model, configs/demo.yaml, no Redis) as two sources with the page
on a free port, opens it in headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium), waits
for pictures and track events, and saves `docs/live-page.png`; then clicks a `track.started` event and saves
`docs/live-highlight.png`. PNGs are reduced to a 256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image

from pipeline.config import load_config
from pipeline.demo import DEMO_CONFIG, demo_clip
from pipeline.run_command import pipeline_with_server
from tests.live_helpers import chromium, wait_for
from tests.servers import free_port


def save_small(png: bytes, path: Path, width: int = 1200) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    clip = demo_clip(ROOT / "out" / "screenshots", args.frames, (640, 360), seed=1)
    cfg = load_config(
        DEMO_CONFIG,
        overrides=[
            "redis=null",
            "sinks.annotate=null",
            "sinks.jsonl=null",
            "log.progress=false",
            f"model.device={args.device}",
            f"metrics.port={free_port()}",
            "metrics.host=127.0.0.1",
        ],
        sources=[f"street={clip}", f"entrance={clip}"],
    )
    pipeline, server = pipeline_with_server(cfg)
    assert server is not None
    run = threading.Thread(target=pipeline.run, daemon=True)
    run.start()
    try:
        with chromium(1280, 860) as driver:
            driver.get(f"http://127.0.0.1:{server.port}/")
            started = "return document.querySelectorAll('#events li[data-type=\"track.started\"]').length"
            wait_for(lambda: driver.execute_script(started) >= 3, 300, 0.5, "three track.started events")
            time.sleep(2.0)  # a few more pictures and numbers
            save_small(driver.get_screenshot_as_png(), ROOT / "docs" / "live-page.png")
            driver.find_element("css selector", '#events li.track[data-type="track.started"]').click()
            lit = "return document.querySelector('article.source img[data-highlight]:not([data-highlight=\"\"])')"
            wait_for(lambda: driver.execute_script(lit), 60, 0.3, "a highlighted picture")
            time.sleep(0.5)
            save_small(driver.get_screenshot_as_png(), ROOT / "docs" / "live-highlight.png")
    finally:
        pipeline.stop()
        run.join(60)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
