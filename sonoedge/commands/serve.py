"""``sonoedge serve --config enhancer.toml``: the enhancer daemon (see :mod:`sonoedge.runtime.service.daemon`).

    sonoedge serve --config runtime/service/enhancer.toml
    sonoedge serve --config enhancer.toml --validate-config
    sonoedge serve --config enhancer.toml --set source.uri=replay:///data/clip.mp4?loop=1 --set health.port=0
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="daemon config (TOML); see runtime/service/enhancer.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set enhancer.precision=fp16 (repeatable)")
    parser.add_argument("--validate-config", action="store_true",
                        help="check every key, the source and sink, the bundle's hashes and the health port, then exit")


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.service.daemon import read_config, serve, validate_config

    if args.validate_config:
        for fact in validate_config(read_config(args.config, args.overrides)):
            print(f"ok  {fact}")
        print(f"config {args.config} is valid")
        return 0
    return serve(args.config, args.overrides)
