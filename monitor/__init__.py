"""Linkwatch's domain: configuration, agent, storage, state, CLI."""

__version__ = "0.1.0"
