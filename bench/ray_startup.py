"""Ray's start-up as `sweep run` pays it, for bench/run.py: the work before Ray, ray.init(),
ray.shutdown().

    python bench/ray_startup.py bench/digits.yaml

`sweep run` prints no timings, so bench/run.py runs this in a fresh process beside the
sweeps: it does what `sweep run` does before its first trial can start (read the sweep
file, load and split the data, import Ray, start it in-process with the same arguments
as `sweep run`) and stops Ray again. `ray_up_at` is the wall-clock time Ray was up,
so the caller, who knows when it started this process, gets the whole time to Ray
ready, interpreter start and imports included.

Prints one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file")
    args = parser.parse_args()

    started = time.perf_counter()
    from sweeps.driver.cluster.ray_cluster import connect_ray, stop_own_ray
    from sweeps.driver.planning.plan import load_sweep_data
    from sweeps.driver.sweep_file.reading import load_sweep

    config = load_sweep(args.sweep_file)
    load_sweep_data(config)
    import ray  # noqa: F401  (before the clock: ray_init_s is ray.init alone)

    before_ray = time.perf_counter()
    # As `sweep run` starts Ray when it is not given --address.
    connect_ray(None, verbose=False)
    ray_up, ray_up_at = time.perf_counter(), time.time()
    stop_own_ray()
    print(
        json.dumps(
            {
                "figure": "ray_startup",
                "before_ray_s": round(before_ray - started, 3),
                "ray_init_s": round(ray_up - before_ray, 3),
                "ray_shutdown_s": round(time.perf_counter() - ray_up, 3),
                "ray_up_at": ray_up_at,
            }
        )
    )


if __name__ == "__main__":
    main()
