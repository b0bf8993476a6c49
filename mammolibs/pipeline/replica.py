"""One machine's part of a pipeline step that spans several machines: each pod of the step's Kubernetes
job (:mod:`mammolibs.pipeline.jobs`) runs

    python -m mammolibs.pipeline.replica --processes 8 --nodes 4 -- train finetune --data gs://... ...

which runs ``mammo train ...`` as this machine's node: under torchrun with its node rank and node 0's
address from the platform (:mod:`mammolibs.pipeline.rendezvous`), or, on a TPU host, as the one
torch-xla process that finds its host index itself.
"""

from __future__ import annotations

import argparse

from mammolibs.pipeline.steps import run_mammo


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mammolibs.pipeline.replica",
        description="Run 'mammo ARGS' as this machine's node of a step that spans several machines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--processes", type=int, default=1, help="training processes on this machine")
    parser.add_argument("--nodes", type=int, default=1, help="torchrun nodes of the step (its machines)")
    parser.add_argument("mammo", nargs=argparse.REMAINDER, help="-- then the mammo command, e.g. -- train encoder ...")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    command = args.mammo[1:] if args.mammo[:1] == ["--"] else args.mammo
    if min(args.processes, args.nodes) < 1:
        raise SystemExit(f"replica: --processes {args.processes} --nodes {args.nodes}: give 1 or more of each")
    if not command:
        raise SystemExit("replica: give the mammo command after --, e.g. -- train encoder --data ... --out ...")
    try:
        run_mammo(command, args.processes, nodes=args.nodes)
    except (RuntimeError, ValueError) as err:
        raise SystemExit(f"replica: {err}") from None


if __name__ == "__main__":
    main()
