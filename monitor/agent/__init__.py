"""The site agent: schedule probes, spool every result locally, upload batches to the server.

Modules: :mod:`~monitor.agent.scheduler` (cadence, concurrency, one result per round),
:mod:`~monitor.agent.spool` (durable bounded SQLite queue), :mod:`~monitor.agent.uploader`
(batches, acks, backoff), :mod:`~monitor.agent.runner` (wiring, signals, ``main_agent``),
:mod:`~monitor.agent.clock` (the clock seam).
"""
