"""python -m rethink readme: splice the generated findings table into README.md (run by `make study`).

Everything else runs through the Snakefile."""
from __future__ import annotations

import argparse

from .report import splice_readme


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rethink")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("readme", help="splice reports/findings.md into README.md")
    p.add_argument("--findings", default="reports/findings.md")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--smoke-benchmarks", help="the smoke profile's benchmarks folder, if it ran")
    args = parser.parse_args(argv)
    splice_readme(args.findings, args.readme, args.smoke_benchmarks)


if __name__ == "__main__":
    main()
