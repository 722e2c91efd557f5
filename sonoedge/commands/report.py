"""``sonoedge report BUNDLE``: the accuracy table of a bundle (Markdown), straight from its manifest.

Per precision: gate, pass/fail, max and p99 absolute error, PSNR, SSIM and LPIPS against the
PyTorch fp32 reference; then the INT8 calibration set and the layers kept out of INT8.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle")


def run(args: argparse.Namespace) -> int:
    from sonoedge.export.report import report_markdown

    print(report_markdown(args.bundle))
    return 0
