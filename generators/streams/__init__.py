"""Scale-out on Redis Streams: bots queue jobs, GPU workers on any machine take them and report back.

Both ends of the protocol live here, so one directory explains a job's round trip:

- the bot's side: :mod:`~generators.streams.submit` (``RedisRunner``: submit with the caps checked in
  Redis, the fair order and positions, cancels, reading events back and fetching result files); it
  imports no torch, so a bot on Redis ships none.
- the worker's side: :mod:`~generators.streams.take` (``RedisQueue``: claim fair batches, take over
  abandoned jobs, report events) and :mod:`~generators.streams.relay` (the worker's events, result
  files and heartbeat back to the bots).
- shared by both: :mod:`~generators.streams.keys` (key names), :mod:`~generators.streams.scripts`
  (the Lua scripts), :mod:`~generators.streams.codec` (events on the wire),
  :mod:`~generators.streams.heartbeat` (workers' status) and :mod:`~generators.streams.files`
  (result files, small ones written on the loop).

One stream per model and owner (``{prefix}:q:{model}:{owner}``) in one consumer group keeps the
round-robin order across workers, per model; a worker reads only the streams of the models it serves.
Caps, claims and acknowledgements are Lua scripts, so several bots and workers stay consistent.
"""
