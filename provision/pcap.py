"""`python3 -m provision pcap IFACE SECONDS [UDP_PORT]`: a pcap of IFACE on stdout for SECONDS, only UDP
to or from UDP_PORT when given (geneve: 6081). What `tcpdump -w -` would write, with the standard library
only: tcpdump, run as root, switches to its own user, which a rootless lab's user namespace cannot map."""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003  # host order: Python's AF_PACKET address converts it
SNAPLEN = 65535


def udp_port(frame: bytes) -> tuple[int, int] | None:
    """(source, destination) ports of an IPv4 UDP frame, None otherwise (VLAN tags not followed; a fragment
    other than the first carries no ports)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if struct.unpack_from("!H", frame, 20)[0] & 0x1FFF or len(frame) < 14 + ihl + 4:
        return None
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    return sport, dport


def capture(iface: str, seconds: float, port: int | None, out) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # no protocol yet: nothing queues before the bind
    s.bind((iface, ETH_P_ALL))
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))  # pcap header, Ethernet
    out.flush()
    count, deadline = 0, time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            continue
        frame = s.recv(SNAPLEN)  # whole: a lab's frames are at most its MTU (9000)
        ports = udp_port(frame)
        if port is not None and (ports is None or port not in ports):
            continue
        now = time.time()
        out.write(struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(frame), len(frame)) + frame)
        out.flush()  # each packet as it comes, as tcpdump -U
        count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit() or (len(argv) == 3 and not argv[2].isdigit()):
        print(__doc__, file=sys.stderr)
        return 2
    n = capture(argv[0], int(argv[1]), int(argv[2]) if len(argv) == 3 else None, sys.stdout.buffer)
    print(f"{n} packets captured", file=sys.stderr)
    return 0
