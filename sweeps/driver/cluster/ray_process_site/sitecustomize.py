"""Run at start-up by every Python process the sweep's own Ray starts (ray_cluster.connect_ray
puts this folder on their PYTHONPATH): it keeps Ray's dashboard, should one start, from
asking cloud metadata servers which cloud it is on, a network request no Ray setting turns
off (see sweeps/driver/cluster/ray_cluster.py). Any other sitecustomize on the path still runs."""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_other = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [entry for entry in sys.path if os.path.abspath(entry or ".") != _here]
)
if _other is not None and _other.loader is not None:
    _module = importlib.util.module_from_spec(_other)
    _other.loader.exec_module(_module)

try:
    from sweeps.driver.cluster.ray_cluster import silence_cloud_probe
except ImportError:  # sweep was uninstalled under a running Ray: nothing to silence with
    pass
else:
    silence_cloud_probe()
