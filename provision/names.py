"""Every interface name the lab itself has on a node, on either backend, declared once: lab.toml's checker
refuses them as port names and as underlay.nic_name, and the code that makes them names them from here.
(The provisioner runs on the nodes with the standard library only, so this lives in its package.)"""

from __future__ import annotations

LOOPBACK = "lo"
MGMT_NIC = "eth0"  # VMs: Vagrant's management NIC (the box boots with net.ifnames=0: NICs are ethN in order)
VM_UNDERLAY_NIC = "eth1"  # VMs: the underlay NIC (found by its address or MAC, never by this name)
NETNS_UNDERLAY_NIC = "eth0"  # netns: the node's end of its veth to the underlay bridge
BR_INT = "br-int"  # the integration bridge
BR_PHY = "br-phy"  # netdev datapath: the OVS bridge that holds the underlay address
OVS_NETDEV = "ovs-netdev"  # netdev datapath: its own internal port
OVS_SYSTEM = "ovs-system"  # kernel datapath: its own internal port
GENEVE_SYSTEM = "genev_sys_6081"  # kernel datapath: the geneve device
TUNNEL_PREFIX = "ovn-"  # ovn-controller's tunnel ports, ovn-<chassis>-0

NODE_IFNAMES = tuple(
    dict.fromkeys(
        (LOOPBACK, MGMT_NIC, VM_UNDERLAY_NIC, NETNS_UNDERLAY_NIC, BR_INT, BR_PHY, OVS_NETDEV, OVS_SYSTEM, GENEVE_SYSTEM)
    )
)

# netns backend, in the underlay's own namespace (no node's): the bridge and each node's veth end
UNDERLAY_BRIDGE = "br-lab"


def underlay_veth(index: int, node: str) -> str:
    return f"v{index}-{node}"[:15]
