"""Scale-out on Redis Streams: bots queue jobs, GPU workers on any machine take them and report back.

One stream per model and owner (``{prefix}:q:{model}:{owner}``) in one consumer group keeps the
round-robin order across workers, per model; a worker reads only the streams of the models it serves.
Caps, claims and acknowledgements are Lua scripts, so several bots and workers stay consistent.
"""
