"""`python -m tinyllava_bench` is the same program as the `tinyllava-bench` console script."""

from tinyllava_bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
