"""How far to trust `sonoedge devices --estimate`: its prediction for a network with a published Jetson time.

    python tools/latency_check.py [--out DIR]

Network: Ultralytics YOLOv8n (detect), built here from its published layer configuration
(ultralytics/cfg/models/v8/yolov8.yaml, scale n: depth 0.33, width 0.25, max channels 1024; Conv =
conv + BatchNorm + SiLU; C2f, SPPF and the decoupled Detect head with 16 DFL bins and 80 classes) as
a graph of the same layer shapes (weights random: time does not depend on them), exported to ONNX
at 640x640. Its MACs are checked against Ultralytics' published 8.7 GFLOPs (= 2 x MACs) before the
estimate is compared.

Published figure: YOLOv8n, 640x640, batch 1, TensorRT 10.3 INT8, GPU compute time 3.49 ms (286 FPS)
on a Jetson Orin Nano 8GB Developer Kit in MAXN_SUPER mode, JetPack 6.2 (H. Choi, "YOLOv8 on Jetson
Orin Nano: From PyTorch to TensorRT INT8", https://hokwangchoi.com/blog/vision-benchmarks/, April
2026; scripts at github.com/hokwangchoi/jetson-orin-nano-benchmarks). MAXN_SUPER runs the GPU at
1020 MHz with 102 GB/s (NVIDIA, "Jetson Orin Nano Developer Kit gets a Super boost", Dec. 2024: 67
sparse INT8 TOPS), so the profile's peaks are scaled to those clocks; the efficiency factors are
the profile's own, unchanged.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

PUBLISHED_MS = 3.49  # YOLOv8n INT8 640x640, Orin Nano 8GB MAXN_SUPER, TensorRT 10.3 (module doc)
PUBLISHED_GFLOPS = 8.7  # Ultralytics YOLOv8n, 640x640 (README table; FLOPs = 2 x MACs)


def yolov8n():
    """YOLOv8n's layer graph as a torch module (module doc)."""
    import torch
    from torch import nn

    class Conv(nn.Sequential):
        def __init__(self, c1, c2, k=1, s=1):
            super().__init__(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())

    class Bottleneck(nn.Module):
        def __init__(self, c, shortcut):
            super().__init__()
            self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

        def forward(self, x):
            y = self.cv2(self.cv1(x))
            return x + y if self.add else y

    class C2f(nn.Module):
        def __init__(self, c1, c2, n, shortcut):
            super().__init__()
            self.c = c2 // 2
            self.cv1, self.cv2 = Conv(c1, 2 * self.c), Conv((2 + n) * self.c, c2)
            self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

        def forward(self, x):
            y = list(self.cv1(x).split([self.c, self.c], 1))
            for m in self.m:
                y.append(m(y[-1]))
            return self.cv2(torch.cat(y, 1))

    class SPPF(nn.Module):
        def __init__(self, c1, c2):
            super().__init__()
            self.cv1, self.cv2, self.pool = Conv(c1, c1 // 2), Conv(c1 * 2, c2), nn.MaxPool2d(5, 1, 2)

        def forward(self, x):
            y = [self.cv1(x)]
            for _ in range(3):
                y.append(self.pool(y[-1]))
            return self.cv2(torch.cat(y, 1))

    class Net(nn.Module):
        def __init__(self, nc=80, reg_max=16):
            super().__init__()
            self.b = nn.ModuleList([Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, 1, True), Conv(32, 64, 3, 2),
                                    C2f(64, 64, 2, True), Conv(64, 128, 3, 2), C2f(128, 128, 2, True),
                                    Conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256)])
            self.h1, self.h2 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
            self.d1, self.h3 = Conv(64, 64, 3, 2), C2f(192, 128, 1, False)
            self.d2, self.h4 = Conv(128, 128, 3, 2), C2f(384, 256, 1, False)
            c2, c3 = max(16, 64 // 4, reg_max * 4), max(64, min(nc, 100))
            self.box = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for c in (64, 128, 256))
            self.cls = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in (64, 128, 256))

        def forward(self, x):
            feats = []
            for i, layer in enumerate(self.b):
                x = layer(x)
                feats.append(x)
            p3, p4, p5 = feats[4], feats[6], feats[9]
            up = lambda t: nn.functional.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
            h1 = self.h1(torch.cat([up(p5), p4], 1))
            o3 = self.h2(torch.cat([up(h1), p3], 1))
            o4 = self.h3(torch.cat([self.d1(o3), h1], 1))
            o5 = self.h4(torch.cat([self.d2(o4), p5], 1))
            outs = [torch.cat([b(o), c(o)], 1).flatten(2) for o, b, c in zip((o3, o4, o5), self.box, self.cls)]
            return torch.cat(outs, 2)

    return Net().eval()


def export(path: Path, side: int = 640) -> Path:
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation chatter
        torch.onnx.export(yolov8n(), (torch.zeros(1, 3, side, side),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)
    return path


def check(out_dir: Path | None = None) -> dict:
    from sonoedge.devices.estimate import estimate, graph_layers
    from sonoedge.devices.profiles import load_profile

    folder = Path(out_dir or tempfile.mkdtemp(prefix="latency_check_"))
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = export(folder / "yolov8n_shape.onnx")
    layers = graph_layers(onnx_path, (640, 640))
    gmacs = sum(la.macs for la in layers) / 1e9
    nano = load_profile("jetson-orin-nano-8gb").estimate
    clock = 1020 / 625  # MAXN_SUPER GPU clock over the profile's 625 MHz
    roof = dataclasses.replace(nano, int8_tops=nano.int8_tops * clock, fp16_tflops=nano.fp16_tflops * clock,
                               fp32_tflops=nano.fp32_tflops * clock, memory_gbps=102.0, clock_note="MAXN_SUPER")
    est = estimate(layers, roof, "int8")
    result = {"network": "YOLOv8n 640x640 (layer graph from the published config)",
              "gmacs": gmacs, "published_gflops": PUBLISHED_GFLOPS, "gflops_error": 2 * gmacs / PUBLISHED_GFLOPS - 1,
              "estimate_ms": est.ms, "published_ms": PUBLISHED_MS, "error": est.ms / PUBLISHED_MS - 1,
              "compute_ms": est.compute_ms, "memory_ms": est.memory_ms, "overhead_ms": est.overhead_ms,
              "layers": est.layers, "roofline": dataclasses.asdict(roof)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the ONNX graph (default: a temporary folder)")
    args = parser.parse_args()
    print(json.dumps(check(args.out), indent=2))


if __name__ == "__main__":
    main()
