"""``python -m monitor`` is the ``linkwatch`` command."""

from monitor.cli import main

main()
