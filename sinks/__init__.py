"""Where results go: event sinks (Redis Streams, JSON Lines) and frame sinks (annotated video, MOT files).

| module | what |
|---|---|
| `base.py` | `EventSink` and `FrameSink`: the two roles, with no-op defaults |
| `paths.py` | every output path checked before the first frame (light: no av, cv2, sqlite3) |
| `redis_publisher.py` | Redis Streams publisher that never blocks inference |
| `spool.py` | the publisher's on-disk spool (SQLite) |
| `jsonl.py` | events as JSON Lines |
| `annotated_video.py` | MP4 with masks, boxes and track ids drawn |
| `mot.py` | MOTChallenge / MOTS text files |
"""
