"""The command line: `main(argv) -> exit code` parses (main.py) and dispatches to one function per command
(commands.py); the demo lives in demo.py. Library errors become one line here."""

from superres.cli.main import main

__all__ = ["main"]
