#!/bin/sh
# Round-trip cost of the bridge per frame, null enhancer, in one run:
#   1. play (C) <-> echo_peer (C): the bridge alone, lockstep (latency) and 4 frames in flight (rate)
#   2. play (C) <-> a Python echo through shm:// (runtime/shm.py): the daemon's I/O path, no model
# usage: cpp_bridge/tools/bench.sh [FRAMES] [WIDTH] [HEIGHT]   (from the repository root)
set -eu
frames=${1:-3000}
width=${2:-512}
height=${3:-512}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/cpp_bridge/build-bench"
python=${PYTHON:-python3}
cmake -S "$root/cpp_bridge" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSONOEDGE_BRIDGE_TESTS=OFF >/dev/null
cmake --build "$build" -j 2 >/dev/null

run_c_echo() {  # $1: frames in flight
    name="bench-c-$$-$1"
    "$build/echo_peer" --channel "$name" --idle-exit-ms 5000 &
    pid=$!
    "$build/play" --channel "$name" --phantom "$frames" --width "$width" --height "$height" \
        --inflight "$1" --quiet --eos | sed "s/^summary/c-echo inflight=$1/"
    wait "$pid"
}

run_py_echo() {  # $1: frames in flight
    name="bench-py-$$-$1"
    "$python" - "$name" <<'PY' &
import sys
import sonoedge.runtime.stream.shm  # registers shm://
from sonoedge.runtime.stream.base import open_sink, open_source
uri = f"shm://{sys.argv[1]}"
with open_source(uri) as source, open_sink(uri) as sink:
    for frame in source:  # ends at the client's end of stream; the sink then acknowledges it
        frame.passthrough = True
        sink.write(frame)
PY
    pid=$!
    "$build/play" --channel "$name" --phantom "$frames" --width "$width" --height "$height" \
        --inflight "$1" --quiet --eos | sed "s/^summary/py-echo inflight=$1/"
    wait "$pid"
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores); frames $frames of ${width}x${height} grey"
run_c_echo 1
run_c_echo 4
run_py_echo 1
run_py_echo 4
