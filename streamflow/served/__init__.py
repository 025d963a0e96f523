"""Served versus offline, value by value: what the API served (its sampled log, written by
serving/served_log.py) collected into the offline engine exactly once (collect.py), then replayed
against the engine's marts at the time each value was served (replay.py, by the rules of
outcomes.py), the outcomes kept per feature and hour in the monitoring schema."""
