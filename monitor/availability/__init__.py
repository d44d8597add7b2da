"""Availability: time-weighted, maintenance excluded, unknown time apart.

:mod:`monitor.availability.maths` holds the arithmetic over state periods,
:mod:`monitor.availability.queries` reads them from the database (the data functions the
status page, ``/metrics`` and ``linkwatch report`` use).
"""
