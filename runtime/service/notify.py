"""systemd's notify protocol (sd_notify(3)), written out: one datagram to ``$NOTIFY_SOCKET``.

    notify("READY=1")                 # Type=notify: the first model is loaded, frames are flowing
    notify("WATCHDOG=1")              # WatchdogSec=: "still alive", at least every watchdog_interval()
    notify("STOPPING=1", "STATUS=draining")

Outside systemd ``NOTIFY_SOCKET`` is unset and every call is a no-op that returns False. The socket
is a unix datagram socket: a path, or an abstract name written with a leading '@'.
"""
from __future__ import annotations

import os
import socket


def notify(*lines: str) -> bool:
    """Send ``lines`` (``KEY=value``) to the service manager; False when there is none or it fails."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec=), or None when no watchdog is set
    for this process (``WATCHDOG_USEC`` unset, or ``WATCHDOG_PID`` names another process)."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


__all__ = ["notify", "watchdog_interval"]
