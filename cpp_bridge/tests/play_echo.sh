#!/bin/sh
# The C example against the C echo peer: 200 phantom frames go out and come back, none lost.
set -eu
play=$1
echo_peer=$2
name="sbtest-play-$$"
"$echo_peer" --channel "$name" --idle-exit-ms 5000 &
echo_pid=$!
summary=$("$play" --channel "$name" --phantom 200 --width 256 --height 192 --quiet --eos)
wait "$echo_pid"
echo "$summary"
case "$summary" in
  *"sent 200 received 200 enhanced 0 passthrough 200 dropped 0 "*) exit 0 ;;
  *) echo "play_echo: expected 200 frames back, passed through" >&2; exit 1 ;;
esac
