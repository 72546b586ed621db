"""Where a sweep runs: Ray (the one door to its internals), storage every node reaches, Kubernetes
manifests."""
