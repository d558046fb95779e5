"""Failure reporting shared by the interop scripts: one FAIL line on stderr, exit status 1."""

import sys


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
