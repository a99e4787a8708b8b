"""Workshop tasks around a running lab: check, break-fix exercises, capture, snapshot, graph."""
