"""Scene analytics on top of tracks and masks: zones (entries, exits, dwell, occupancy) and counting lines.

`geometry` holds the pure polygon/line/mask arithmetic, `rules` the per-source state machine that turns each
frame's tracks into zone and line events. The pipeline stage that drives them is `stages/zones.py`.
"""
