"""Notification channels: one module per way of delivering (e-mail, webhook, Alertmanager, chat).

``specs`` holds their configuration models (light, imported by ``monitor.config``); ``base``
the record every channel receives and the error it raises; :func:`build_channels` in
``registry`` makes the configured channels. Importing this package loads no channel library.
"""
