"""The demo's narration: each tutorial section's heading and explanation, the pauses of --step, and the
Markdown transcript of --transcript."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import InputError, visible
from .model import Lab
from .ui import console

SECTIONS = {
    "logical": (
        "4-5. Logical switch with DHCP, logical ports (on central)",
        "{switch} is a logical switch: it exists only in the Northbound database, ovn-northd turns it into "
        "flows for every chassis. The DHCP_Options row makes OVN itself answer DHCP for ports that "
        "reference it; 'MAC dynamic' lets OVN pick each port's IP from the subnet, past the excluded range.",
    ),
    "trace": (
        "6. Trace a DHCP request (on central)",
        "ovn-trace runs a packet through the logical pipeline without sending anything: a DHCP request from "
        "{port} hits put_dhcp_opts, which builds the offer, and the reply goes back out of {port}.",
    ),
    "bind": (
        "7. Attach the ports on the hypervisors",
        "An OVS internal port with external_ids:iface-id=portN tells ovn-controller on that host to claim "
        "the logical port: the Port_Binding then shows the chassis. Each port moves into a namespace, our "
        "'VM'.",
    ),
    "dhcp": (
        "8. A VM per port: DHCP in each namespace",
        "dhclient in each namespace broadcasts a DISCOVER; ovn-controller answers locally with the offer "
        "built from the DHCP options, so no DHCP server runs anywhere.",
    ),
    "ping": (
        "Checks: vm to vm, on the same host and across the geneve tunnel",
        "From the first port of each switch to the others on it: a VM on the same host is reached inside that "
        "host, one on another host through the geneve tunnel between the two.",
    ),
}


class Narrator:
    """Section headings, optional pauses (--step) and a Markdown transcript (--transcript)."""

    def __init__(self, lab: Lab, backend: str, *, step: bool = False, transcript: Path | None = None):
        self.step, self.path = step, transcript
        if transcript:
            self.save_to(transcript, "")  # a path it cannot write fails now, not after the demo
        self.switch = lab.switches[0].name if lab.switches else "a logical switch"  # the tutorial's net0
        self.port = lab.ports[0].name if lab.ports else "a port"  # and its port1
        self.md: list[str] = [
            f"# OVN DHCP lab: transcript\n\nlab `{lab.name}`, backend `{backend}`, {time.strftime('%Y-%m-%d %H:%M')}\n"
        ]
        self.open = False

    @property
    def explains(self) -> bool:
        """Stepping through or writing a handout: what OVN made of each step is shown in full."""
        return self.step or self.path is not None

    def section(self, key: str) -> None:
        title, text = SECTIONS[key]
        text = text.format(switch=self.switch, port=self.port)
        console.print(f"\n[bold cyan]## {title}[/]")
        if self.step:
            console.print(text, style="italic", soft_wrap=False)  # prose wraps at words; commands never wrap
            try:
                input("press Enter to run it ")
            except EOFError:
                raise InputError("demo --step waits for Enter, and there is no terminal", "run it in one") from None
        self._close()
        self.md.append(f"## {title}\n\n{text}\n")

    def line(self, text: str) -> None:
        if not self.open:
            self.md.append("```")
            self.open = True
        self.md.append(text)

    def _close(self) -> None:
        if self.open:
            self.md.append("```\n")
            self.open = False

    @staticmethod
    def save_to(path: Path, text: str) -> None:
        try:
            path.write_text(text)
        except OSError as e:
            raise InputError(
                f"cannot write the transcript {path}: {e.strerror}", "give --transcript a writable path"
            ) from None

    def save(self) -> None:
        if self.path:
            self._close()
            self.save_to(self.path, "\n".join(self.md) + "\n")
            console.print(f"transcript: {visible(str(self.path))}", markup=False)
