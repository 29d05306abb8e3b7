"""The command line every py_test_*.py gets from CTest (tests/CMakeLists.txt):
`python3 script --fstm PATH --work DIR --tools DIR`. Kept free of torch, so that scripts which run
inside a PyPI virtual environment can use it too."""
import argparse
import os


def parser(description=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--fstm", help="path to the fstm program")
    p.add_argument("--work", required=True, help="scratch directory (created)")
    p.add_argument("--tools", help="directory of the test tools (parity_runner, st_roundtrip, ...)")
    return p


def parse(p):
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    return a
