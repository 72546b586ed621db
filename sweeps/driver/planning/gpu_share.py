"""`resources.gpus_per_trial: auto`: each Ray Tune trial's share of a GPU, from a short probe of one
group on one GPU.

The rule. A probe (sweeps.trial.fused.gpu_probe) trains the sweep's first group (or its
first trial, unfused) for 25 steps on a whole GPU and measures its peak memory and step
time. Then k trials share each GPU (gpus_per_trial = 1/k), k the largest of 8, 4, 2, 1
that both
- fits: k x (peak memory + a CUDA context of CONTEXT_BYTES) within 90% of the GPU's memory, and
- pays: the step is short enough that the GPU idles between its kernels. Measured on an
  H200 (issue 16): a digits MLP's step (a few ms, launch-bound) ran 7.9x the images/s with
  8 processes a GPU; resnet-small's ran 2.6x with 4 and only 1.84x with 8. So: 8 under
  STEP_MS[0] a step, 4 under STEP_MS[1], 2 under STEP_MS[2], else 1.
With no GPU in the cluster the share is 0 and nothing is probed. bench/gpu.sh prints the
probe's figures and the share next to measured throughputs, to check the thresholds.
"""

from __future__ import annotations

import math
from typing import Any

from sweeps.driver.planning.plan import SweepPlan
from sweeps.trial.data import SplitData

CONTEXT_BYTES = 600 * 2**20  # a CUDA context and PyTorch's allocator slack, per process
MEMORY_FRACTION = 0.9
PROCESSES = (8, 4, 2, 1)
STEP_MS = (5.0, 20.0, 50.0)  # the step times under which 8, 4 and 2 processes a GPU pay


def gpus_per_trial(plan: SweepPlan, data: SplitData) -> float:
    """The sweep's `resources.gpus_per_trial`, with `auto` resolved (Ray must be up)."""
    setting = plan.config.resources.gpus_per_trial
    if setting != "auto":
        return float(setting)
    import ray

    if ray.cluster_resources().get("GPU", 0) < 1:
        return 0.0
    return share_from_probe(**probe(plan, data))


def gpus_for_one_task(setting: float | str) -> float:
    """The GPUs a one-off task of the sweep asks for (computing frozen features): the setting,
    or with `auto` one whole GPU where the cluster has one (no probe: the task runs alone)."""
    if setting != "auto":
        return float(setting)
    import ray

    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def share_from_probe(*, step_ms: float, peak_bytes: float, total_bytes: float, **_: Any) -> float:
    """1/k for the k trials that fit on one GPU and still gain from sharing it (the module's
    rule)."""
    fits = math.floor(MEMORY_FRACTION * total_bytes / (peak_bytes + CONTEXT_BYTES))
    pays = next(
        (count for count, limit in zip(PROCESSES, STEP_MS, strict=False) if step_ms < limit), 1
    )
    return 1 / next(count for count in PROCESSES if count <= max(1, min(fits, pays)))


def probe(plan: SweepPlan, data: SplitData) -> dict[str, float]:
    """Run the probe as a Ray task on one whole GPU."""
    import ray

    from sweeps.driver.sweep_file.distributions import preview_trial_configs
    from sweeps.trial.fused.trainable import probe_gpu

    if plan.fusion is not None:
        group = plan.fusion.groups[0]
    else:
        group = list(
            enumerate(
                preview_trial_configs(
                    plan.config.params, seed=plan.config.search.seed, num_samples=1
                )
            )
        )
    task = ray.remote(num_gpus=1, num_cpus=plan.config.resources.cpus_per_trial)(probe_gpu)
    return ray.get(task.remote(group, plan.trial_settings, data))
