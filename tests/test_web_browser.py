"""The live page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium)
against a real run: one file source and one HTTP camera (a real HTTP server) that the test kills mid-run."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.config import build_config
from tests.live_helpers import (
    HttpCamera,
    MovingObjectDetector,
    PrefixProxy,
    PublishTimes,
    chromium,
    chromium_available,
    running,
    wait_for,
)
from tests.pipeline_helpers import write_clip
from tests.servers import free_port
from tests.test_source_files import write_clip as write_numbered_clip

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not chromium_available(), reason="chromium and chromium-driver are not installed (see .ci/run)"),
]

SECRET = "s3cret-pw"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("live")
    clip = write_clip(root / "cam1.mp4", frames=400)
    write_numbered_clip(root / "cam2.ts", frames=300, fmt="mpegts")
    camera = HttpCamera(root)
    cfg = build_config(
        {
            "sources": [
                {"id": "cam1", "url": str(clip)},
                {
                    "id": "cam2",
                    "url": f"http://viewer:{SECRET}@127.0.0.1:{camera.port}/cam2.ts",
                    "read_timeout_s": 1.0,
                    "open_timeout_s": 1.0,
                    "reconnect": {"initial_backoff_s": 0.5, "max_backoff_s": 1.0},
                },
            ],
            "metrics": {"port": free_port(), "host": "127.0.0.1"},
            "log": {"progress": False},
        }
    )
    recorder = PublishTimes()
    run = running(cfg, detector=MovingObjectDetector(delay_s=0.05), event_sinks=[recorder])
    with run as (pipeline, base), chromium() as driver:
        driver.get(base + "/")
        yield {"driver": driver, "base": base, "pipeline": pipeline, "recorder": recorder, "camera": camera}
    camera.kill()


def _js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def test_page_loads_and_shows_each_source(page) -> None:
    driver = page["driver"]
    assert driver.title == "maskstream live"
    ids = wait_for(
        lambda: _js(driver, "return [...document.querySelectorAll('article.source')].map(a => a.dataset.source)"),
        10,
        message="source cards",
    )
    assert sorted(ids) == ["cam1", "cam2"]
    wait_for(lambda: _js(driver, "return document.querySelector('[data-source=cam2]').dataset.state") == "connected",
             20, message="cam2 connected")  # fmt: skip
    html = driver.page_source
    assert SECRET not in html and "viewer:***@127.0.0.1" in html  # the camera's password never reaches the page


def test_image_changes_over_time(page) -> None:
    driver = page["driver"]
    # the picture's number and bytes read together: a new picture may land between two separate reads
    picture = "const i = document.querySelector('[data-source=cam1] img'); return [Number(i.dataset.seq), i.src]"
    first_seq, first_src = wait_for(lambda: (p := _js(driver, picture)) and p[0] and p, 20, message="a first picture")
    assert first_src.startswith("data:image/jpeg;base64,/9j/")  # a JPEG
    _, src = wait_for(lambda: (p := _js(driver, picture)) and p[0] > first_seq and p, 10, message="a newer picture")
    assert src != first_src
    width = _js(driver, "return document.querySelector('[data-source=cam1] img').naturalWidth")
    assert width == 320  # the browser decoded it


def test_track_started_appears_within_a_second_of_being_published(page) -> None:
    driver, recorder = page["driver"], page["recorder"]
    since = time.time()  # tracks that start from now on reach the page over its open live stream
    rows_script = (
        "return [...document.querySelectorAll('#events li[data-type=\"track.started\"]')]"
        ".map(li => [li.dataset.source, li.dataset.eventId, Number(li.dataset.receivedAt)])"
    )

    def delays() -> list[float]:
        rows = _js(driver, rows_script)
        published = [(recorder.times.get((source, event_id)), received) for source, event_id, received in rows]
        return [received / 1000 - at for at, received in published if at is not None and at > since]

    measured = wait_for(delays, 40, message="a track.started published after the page opened, in its feed")
    assert max(measured) < 1.0, measured


def test_clicking_an_event_highlights_that_track(page) -> None:
    driver = page["driver"]
    row = driver.find_element("css selector", '#events li.track[data-source="cam1"]')
    track = row.get_attribute("data-track")
    row.click()
    highlighted = "return document.querySelector('[data-source=cam1] img').dataset.highlight"
    wait_for(lambda: _js(driver, highlighted) == track, 10, message=f"cam1 picture highlighting track {track}")
    assert driver.find_element("id", "highlight-what").text == f"cam1 track #{track}"
    driver.find_element("id", "highlight-clear").click()
    wait_for(lambda: _js(driver, highlighted) == "", 10, message="highlight cleared")


def test_events_filter_by_type(page) -> None:
    driver = page["driver"]
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "filter-type")).select_by_value("stream.started")
    visible = _js(
        driver, "return [...document.querySelectorAll('#events li[data-type]:not(.hidden)')].map(l => l.dataset.type)"
    )
    assert visible and set(visible) == {"stream.started"}
    Select(driver.find_element("id", "filter-type")).select_by_value("")


def test_killed_source_shows_as_reconnecting(page) -> None:
    driver = page["driver"]
    page["camera"].kill()
    began = time.monotonic()
    state = "return document.querySelector('[data-source=cam2]').dataset.state"
    wait_for(lambda: _js(driver, state) == "reconnecting", 20, message="cam2 reconnecting after its camera died")
    reason = driver.find_element("css selector", "[data-source=cam2] .reason").text
    assert reason, "the page says why"
    assert time.monotonic() - began < 20
    assert _js(driver, "return document.querySelector('[data-source=cam1]').dataset.state") == "connected"
    assert SECRET not in driver.page_source
    for path in ("/api/sources", "/api/events?limit=1000", "/api/status"):  # disconnect reasons included
        with urllib.request.urlopen(page["base"] + path, timeout=10) as response:
            body = response.read().decode()
        assert SECRET not in body and "viewer:***@" in body if path == "/api/sources" else SECRET not in body


def test_page_works_behind_a_reverse_proxy_under_a_path_prefix(page) -> None:
    driver = page["driver"]
    proxy = PrefixProxy(int(page["base"].rsplit(":", 1)[1]), "/cams/live")
    try:
        driver.get(f"http://127.0.0.1:{proxy.port}/cams/live")  # no trailing slash: the page's <base> fixes it
        seq = "return Number(document.querySelector('[data-source=cam1] img')?.dataset.seq || 0)"
        wait_for(lambda: _js(driver, seq) > 0, 20, message="a picture of cam1 through the proxy")
        wait_for(lambda: _js(driver, "return document.querySelectorAll('#events li[data-type]').length") > 0, 10,
                 message="events through the proxy")  # fmt: skip
        states = _js(driver, "return [...document.querySelectorAll('article.source')].map(a => a.dataset.state)")
        assert len(states) == 2 and all(states)
    finally:
        proxy.close()


def test_sixteen_cameras_share_one_connection() -> None:
    """The page's design claim: 16 live pictures over one stream (an <img> per camera would stall at 6)."""
    import threading

    from tests.test_web_api import Server, result

    ids = tuple(f"cam{i:02d}" for i in range(16))
    server = Server(source_ids=ids)
    stop = threading.Event()

    def feed() -> None:  # like 16 cameras at ~5 fps each
        index = 0
        while not stop.is_set():
            for sid in ids:
                server.view.write(result(sid, index))
            index += 1
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with chromium() as driver:
            driver.get(f"http://127.0.0.1:{server.port}/")
            seqs = "return [...document.querySelectorAll('article.source img')].map(i => Number(i.dataset.seq))"
            first = wait_for(lambda: (s := _js(driver, seqs)) and len(s) == 16 and all(s) and s, 30,
                             message="16 pictures")  # fmt: skip
            wait_for(lambda: all(b > a for a, b in zip(first, _js(driver, seqs), strict=True)), 30,
                     message="all 16 pictures updating")  # fmt: skip
            assert server.app.viewers == 1 and server.http.connections == 1  # the page's one stream, nothing else
    finally:
        stop.set()
        feeder.join(5)
        server.http.stop()
