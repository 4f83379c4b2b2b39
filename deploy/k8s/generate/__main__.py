"""`python -m deploy.k8s.generate [--check]`: write deploy/k8s/base/ and components/monitoring/, or report
where they differ."""

from __future__ import annotations

import argparse
import sys

from deploy.k8s.generate.render import BASE, drift, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the base is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift()
        for path in stale:
            print(f"out of date: deploy/k8s/{path} (run `make k8s`)", file=sys.stderr)
        return 1 if stale else 0
    for written in write():
        print(f"wrote {written.relative_to(BASE.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
