"""The ``fastcnn`` command: a thin shell over the public API."""
from __future__ import annotations

import argparse
import sys

import fastcnn
from fastcnn.zoo.summary import format_table, layer_table


def _cmd_list(args: argparse.Namespace) -> None:
    for name in fastcnn.list_models(args.pattern):
        info = fastcnn.model_info(name)
        c, h, w = info.input_size
        print(f"{name:22s} {c}x{h}x{w}  {info.paper}")


def _cmd_summary(args: argparse.Namespace) -> None:
    info = fastcnn.model_info(args.model)
    model = fastcnn.create_model(args.model, seed=0)
    print(f"{info.name}: {info.paper}; input {' x '.join(map(str, info.input_size))}")
    print(format_table(layer_table(model, info.input_size), model))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastcnn", description=fastcnn.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list the zoo's models")
    listing.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    listing.set_defaults(run=_cmd_list)
    summary = commands.add_parser("summary", help="per-layer table of a zoo model")
    summary.add_argument("model", help="zoo model name (see `fastcnn list`)")
    summary.set_defaults(run=_cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except fastcnn.FastCNNError as exc:
        print(f"fastcnn: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
