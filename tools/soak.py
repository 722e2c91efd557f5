"""Soak test of the enhancer daemon (not run in CI): hours of serving with reloads, sampled.

    python tools/soak.py --minutes 60 --out soak-out              # the soak: a real clip at 10 fps
    python tools/soak.py --reloads 40 --out reload-mem            # RSS over 40 back-to-back good reloads

The soak starts ``sonoedge serve`` on a looping real clip (``replay://`` from ../shared/data/realus,
or ``--clip``; without one it says so and exits 0), SIGHUPs a good bundle every ``--good-every``
seconds and a hash-valid bad one (a rotating set of faults) every ``--bad-every`` seconds, samples
/metrics every ``--sample-every`` seconds (frames in/out/dropped, RSS, fps, end-to-end latency,
load average) and stops the daemon with SIGTERM at the end. It writes ``soak.json`` (the command,
the machine, every sample, every reload with its outcome, the final accounting and the exit code)
and ``soak.png`` when matplotlib is installed.

The bundle is the embedded default (``--bundle`` for another), copied into the output folder; the
bad bundles are copies with one fault each, re-hashed so bundle.sha256 vouches for them.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "realus" / "clips" / "itkpocus" / "sonosite-anon-eye1-video.mp4"
WAIT_S = 300.0  # longest wait for one reload's outcome on a loaded machine


# -- bundles ---------------------------------------------------------------------------------------
def rehash(root: Path, data: dict) -> None:
    """Write ``data`` as manifest.json and a bundle.sha256 that vouches for it and every listed file."""
    from sonoedge.runtime.bundle.manifest import CHECKSUMS, MANIFEST, checksum_text
    from sonoedge.runtime.digest import sha256_file

    data["files"] = {rel: sha256_file(root / rel) for rel in data["files"] if (root / rel).is_file()}
    raw = (json.dumps(data, indent=2) + "\n").encode()
    (root / MANIFEST).write_bytes(raw)
    (root / CHECKSUMS).write_text(checksum_text({**data["files"], MANIFEST: hashlib.sha256(raw).hexdigest()}))


def bad_bundles(good: Path, out: Path) -> list[Path]:
    """Copies of ``good`` with one fault each, all passing their hashes (but the first)."""
    made = []

    def variant(name: str, edit) -> None:
        root = out / f"bad-{name}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(good, root)
        data = json.loads((root / "manifest.json").read_text())
        edit(root, data)
        if name != "hash":
            rehash(root, data)
        made.append(root)

    def corrupt(root: Path, data: dict) -> None:
        with open(root / data["precisions"]["fp32"]["file"], "r+b") as handle:
            handle.seek(200)
            handle.write(b"garbage")

    variant("hash", corrupt)
    variant("channels", lambda root, d: d["model"].update(channels=3))
    variant("stride", lambda root, d: d["model"].update(stride=1))
    variant("typed", lambda root, d: d["model"].update(stride="64"))
    variant("warmup", lambda root, d: d["model"].update(size_range={"min": [64, 64], "opt": [100000, 100000],
                                                                      "max": [100000, 100000]}))
    variant("not-onnx", lambda root, d: (root / d["precisions"]["fp32"]["file"]).write_bytes(b"not an onnx model" * 64))
    made.append(out / "bad-missing")  # a folder that does not exist
    return made


# -- the daemon --------------------------------------------------------------------------------------
class Daemon:
    """``sonoedge serve`` as a subprocess with its JSON log lines collected."""

    def __init__(self, config: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "sonoedge", "serve", "--config", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict] = queue.Queue()
        self.counts: dict[str, int] = {}
        self.last: dict[str, dict] = {}
        self.non_json: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self.wait_for("health_listening")["port"]

    def _read(self) -> None:
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.non_json.append(line.rstrip())
                continue
            name = event.get("event", "log")
            self.counts[name] = self.counts.get(name, 0) + 1
            self.last[name] = event
            self.events.put(event)

    def wait_for(self, *names: str, timeout: float = WAIT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if event.get("event") in names:
                return event
        raise RuntimeError(f"no {'/'.join(names)} event (rc={self.proc.poll()})")

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        out = {}
        for key, pattern in (("frames_in", r"^sonoedge_frames_in_total (\S+)"),
                             ("frames_out", r"^sonoedge_frames_out_total (\S+)"),
                             ("passthrough", r"^sonoedge_frames_passthrough_total (\S+)"),
                             ("rss_bytes", r"^sonoedge_resident_memory_bytes (\S+)"),
                             ("fps", r"^sonoedge_fps (\S+)"),
                             ("e2e_p50_s", r'^sonoedge_latency_seconds\{stage="end_to_end",quantile="0.50"\} (\S+)'),
                             ("e2e_p99_s", r'^sonoedge_latency_seconds\{stage="end_to_end",quantile="0.99"\} (\S+)')):
            match = re.search(pattern, text, re.M)
            out[key] = float(match.group(1)) if match else float("nan")
        out["frames_dropped"] = sum(float(v) for v in re.findall(r"^sonoedge_frames_dropped_total\{[^}]*\} (\S+)", text, re.M))
        return out

    def reload(self) -> dict:
        """SIGHUP and the outcome: the ``reloaded`` or ``reload_failed`` event."""
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_for("reloaded", "reload_failed")

    def stop(self, timeout: float = 30.0) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - t0


def write_config(path: Path, clip: Path, fps: float, bundle: Path) -> None:
    path.write_text(f'[source]\nuri = "replay://{clip}?fps={fps:g}&loop=1"\n[sink]\nuri = "null://"\n'
                    f'[enhancer]\nbundle = "{bundle}"\nregion = "auto"\n'
                    '[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "onnxruntime": onnxruntime.__version__}


# -- the two runs ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    minutes: float
    fps: float
    good_every: float
    bad_every: float
    sample_every: float


def soak(daemon: Daemon, plan: Plan, config: Path, clip: Path, good: Path, bads: list[Path], log: dict) -> None:
    t0 = time.monotonic()
    end = t0 + plan.minutes * 60
    next_sample, next_good, next_bad = t0, t0 + plan.good_every, t0 + plan.bad_every
    n_bad = 0
    while time.monotonic() < end and daemon.proc.poll() is None:
        now = time.monotonic()
        if now >= next_sample:
            row = {"t_s": round(now - t0, 1), **daemon.metrics(), "loadavg_1m": os.getloadavg()[0]}
            log["samples"].append(row)
            next_sample += plan.sample_every
        if now >= next_good:
            log["reloads"].append(_reload(daemon, config, clip, plan.fps, good, "good", t0))
            next_good = time.monotonic() + plan.good_every
        if now >= next_bad:
            bad = bads[n_bad % len(bads)]
            n_bad += 1
            log["reloads"].append(_reload(daemon, config, clip, plan.fps, bad, "bad", t0))
            write_config(config, clip, plan.fps, good)
            next_bad = time.monotonic() + plan.bad_every
        time.sleep(0.2)


def _reload(daemon: Daemon, config: Path, clip: Path, fps: float, bundle: Path, kind: str, t0: float) -> dict:
    write_config(config, clip, fps, bundle)
    started = time.monotonic()
    event = daemon.reload()
    return {"t_s": round(started - t0, 1), "kind": kind, "bundle": bundle.name, "result": event["event"],
            "error": event.get("error", ""), "s": round(time.monotonic() - started, 2)}


def reloads_only(daemon: Daemon, n: int, log: dict) -> None:
    time.sleep(2.0)
    log["samples"].append({"reload": 0, **daemon.metrics()})
    for i in range(1, n + 1):
        event = daemon.reload()
        log["reloads"].append({"n": i, "result": event["event"], "error": event.get("error", "")})
        time.sleep(0.5)
        log["samples"].append({"reload": i, **daemon.metrics()})
        print(f"reload {i}: {event['event']}, RSS {log['samples'][-1]['rss_bytes'] / 2**20:.1f} MiB", flush=True)


def plot(log: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = log["samples"]
    x = [r.get("t_s", r.get("reload")) for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(x, [r["rss_bytes"] / 2**20 for r in rows])
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(x, [r["frames_in"] for r in rows], label="in")
    axes[1].plot(x, [r["frames_out"] for r in rows], label="out")
    axes[1].plot(x, [r["frames_dropped"] for r in rows], label="dropped")
    axes[1].set_ylabel("frames")
    axes[1].legend()
    axes[2].plot(x, [r["e2e_p50_s"] * 1000 for r in rows], label="p50")
    axes[2].plot(x, [r["e2e_p99_s"] * 1000 for r in rows], label="p99")
    axes[2].set_ylabel("end-to-end latency (ms)")
    axes[2].legend()
    axes[2].set_xlabel("reload" if "reload" in rows[0] else "seconds")
    for r in log["reloads"]:
        if "t_s" in r:
            axes[0].axvline(r["t_s"], color="g" if r["result"] == "reloaded" else "r", alpha=0.2, lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--reloads", type=int, default=0, help="instead of the soak: N good reloads back to back")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--bundle", type=Path, default=None, help="default: the embedded default bundle")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--good-every", type=float, default=60.0)
    parser.add_argument("--bad-every", type=float, default=150.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("soak-out"))
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        print(f"soak: skipped, no clip at {args.clip} (real data is in ../shared/data/realus; or pass --clip)")
        return 0
    from sonoedge.runtime.bundle import default_bundle_path

    args.out.mkdir(parents=True, exist_ok=True)
    good = args.out / "bundle-good"
    shutil.rmtree(good, ignore_errors=True)
    shutil.copytree(args.bundle or default_bundle_path(), good)
    bads = bad_bundles(good, args.out)
    config = args.out / "enhancer.toml"
    write_config(config, args.clip.resolve(), args.fps, good.resolve())
    log: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
                 "clip": str(args.clip), "fps": args.fps, "samples": [], "reloads": []}
    daemon = Daemon(config)
    started = time.monotonic()
    try:
        daemon.wait_for("first_frame")
        if args.reloads:
            reloads_only(daemon, args.reloads, log)
        else:
            soak(daemon, Plan(args.minutes, args.fps, args.good_every, args.bad_every, args.sample_every),
                 config, args.clip.resolve(), good.resolve(), [b.resolve() for b in bads], log)
            log["samples"].append({"t_s": round(time.monotonic() - started, 1), **daemon.metrics(),
                                   "loadavg_1m": os.getloadavg()[0]})
        alive = daemon.proc.poll() is None
        rc, stop_s = daemon.stop() if alive else (daemon.proc.returncode, 0.0)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    time.sleep(0.5)
    stopped = daemon.last.get("stopped", {})
    log.update({
        "duration_s": round(time.monotonic() - started, 1), "alive_until_stop": alive, "exit_code": rc,
        "stop_s": round(stop_s, 3), "stopped": {k: stopped.get(k) for k in ("frames_in", "frames_out", "frames_dropped",
                                                                              "dropped", "drained")},
        "reloads_ok": sum(r["result"] == "reloaded" for r in log["reloads"]),
        "reloads_refused": sum(r["result"] == "reload_failed" for r in log["reloads"]),
        "non_json_stderr_lines": daemon.non_json[:20], "loadavg_end": os.getloadavg(),
    })
    if stopped:
        log["accounting_holds"] = stopped["frames_in"] == stopped["frames_out"] + stopped["frames_dropped"]
    (args.out / "soak.json").write_text(json.dumps(log, indent=1) + "\n")
    plotted = plot(log, args.out / "soak.png") if log["samples"] else False
    rss = [r["rss_bytes"] / 2**20 for r in log["samples"]]
    print(json.dumps({k: log.get(k) for k in ("duration_s", "exit_code", "stop_s", "reloads_ok", "reloads_refused",
                                              "accounting_holds", "stopped")}))
    if rss:
        print(f"RSS start {rss[0]:.1f} MiB, end {rss[-1]:.1f} MiB, max {max(rss):.1f} MiB; "
              f"{args.out / 'soak.json'}{' and soak.png' if plotted else ''}")
    return 0 if rc == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
