"""The netns backend (rootless namespaces on this host): backend.py the Backend; keeper.py the lab's user
namespace and its PID 1; host.py what it needs of this host (probes)."""
