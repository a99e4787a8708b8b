"""Host side of the OVN lab: model, rendering, backends and orchestration."""
