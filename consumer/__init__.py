"""The consumer SDK: read maskstream events from Redis Streams (needs only redis-py, numpy and pycocotools).

    from consumer import EventConsumer

    consumer = EventConsumer.from_url("redis://localhost:6379/0", group="counter", consumer="worker-1",
                                      streams=["cam1", "cam2"], start_id="0")   # or streams="cam*" (a pattern)
    for event in consumer:                                            # blocks, yields forever
        if event.type == "track.updated":
            mask = event.mask()                                       # H x W bool numpy array
        event.ack()

At-least-once: an event stays pending until acked; a consumer that dies leaves its pending events to be claimed
by the others after `claim_min_idle_s` (XAUTOCLAIM); an event delivered `max_deliveries` times without an ack is
moved to a dead-letter stream. Duplicates that a publisher retry wrote (same `event_id`, another entry) are
acked and skipped. The group is created when missing and never destroyed. See docs/CONSUMERS.md.
"""

from consumer.event import Event, StreamLag
from consumer.group import EventConsumer
from consumer.tail import EventTail

__all__ = ["Event", "EventConsumer", "EventTail", "StreamLag"]
