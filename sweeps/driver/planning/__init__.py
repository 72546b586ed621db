"""Planning a sweep: what a run needs from a valid sweep file (settings, data, fused groups, frozen
features, GPU shares)."""
