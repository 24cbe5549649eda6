"""The ``hybridland`` console script: ``check-dalec`` and ``bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _check_dalec(args: argparse.Namespace) -> int:
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from hybridland.io import open_netcdf
    from hybridland.model import reference

    if not args.reference.is_file():
        print(f"hybridland check-dalec: no such file: {args.reference}", file=sys.stderr)
        return 2
    open_netcdf(args.reference)  # a truncated or corrupt file: one sentence naming it
    comparisons = reference.compare(args.reference)
    print(reference.report(comparisons))
    failed = [c for c in comparisons if not c.passed]
    if failed:
        names = ", ".join(sorted({f"{c.output} ({c.precision})" for c in failed}))
        print(f"\nFAILED: {len(failed)} comparisons outside tolerance: {names}", file=sys.stderr)
        return 1
    print(f"\nall {len(comparisons)} comparisons within tolerance")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from hybridland.training import bench

    result = bench.run_benchmark(args.cells, args.months, repeats=args.repeats, seed=args.seed)
    if args.json:
        print(bench.to_json(result))
    else:
        for name in ("forward", "value_and_grad", "adam_step"):
            r = result[name]
            print(
                f"{name:15s} {r['median_s'] * 1e3:9.2f} ms  "
                f"{r['pixel_months_per_s']:.3e} pixel-months/s"
            )
        print(f"compile {result['compile_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
        print(f"backend {result['backend']} ({result['device_kind']})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybridland", description="hybridland: DALEC993 in JAX")
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-dalec", help="compare DALEC993 with reference runs of the published model"
    )
    check.add_argument(
        "reference", type=Path, help="reference file in the layout of dalec993_cases.nc"
    )
    check.add_argument(
        "--x64", action="store_true", help="run in float64 and compare with the float64 reference"
    )
    check.set_defaults(func=_check_dalec)
    b = sub.add_parser("bench", help="time forward, loss gradient and one Adam step")
    b.add_argument("--cells", type=int, default=320)
    b.add_argument("--months", type=int, default=168)
    b.add_argument("--repeats", type=int, default=9, help="timed runs after warm-up (>= 7)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from hybridland.io import UnreadableFileError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, UnreadableFileError) as error:
        print(f"hybridland {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
