#!/usr/bin/env python
"""Django's command-line utility.

``manage.py azuresim`` is dispatched before Django loads: the simulator stands in for Azure
and needs nothing of the portal's configuration (no SECRET_KEY, database or Redis).
"""

import os
import sys


def main():
    if sys.argv[1:2] == ["azuresim"]:
        from simulator.cli import main as azuresim

        azuresim(sys.argv[2:])
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
