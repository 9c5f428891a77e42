"""Scale-out on Redis Streams: bots queue jobs, GPU workers on any machine take them and report back.

One stream per owner (``{prefix}:q:{owner}``) in one consumer group keeps the round-robin order across
workers; caps, claims and acknowledgements are Lua scripts, so several bots and workers stay consistent.
"""
