"""Video sources: files, globs or lists of files, and live streams (RTSP, RTSPS, HTTP), decoded with PyAV.

`open_source(cfg)` returns a `VideoSource`; iterating it yields `Frame` and `StreamStatus` items
(`pipeline.items`): `started` first, `connected`/`disconnected` for live sources, `ended` last. File sources
decode in the caller's thread (the caller's queue gives backpressure); live sources decode in a reader thread of
their own that keeps pace with the camera and reconnects. docs/SOURCES.md is the user guide.

| module | what |
|---|---|
| `open.py` | URL checks, file resolution (paths, globs, lists), the right source for a config |
| `base.py` | `VideoSource`: the interface every source implements |
| `file.py` | `FileSource`: files front to back, nothing dropped |
| `live.py` | `LiveSource`: reader thread, reconnects with backoff, drop-oldest hand-over |
| `watchdog.py` | stall detection for live streams |
| `decode.py` | PyAV helpers: open, decode, frame timing, fps cap |
"""
