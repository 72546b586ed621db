"""`resources.gpus_per_trial: auto`: the share of a GPU from a probe's peak memory and step time."""

from __future__ import annotations

import pytest

from sweeps.driver.planning.gpu_share import CONTEXT_BYTES, share_from_probe

GIB = 2**30
H200 = 139 * GIB


@pytest.mark.parametrize(
    ("step_ms", "peak_bytes", "share"),
    [
        (2.0, 0.1 * GIB, 1 / 8),  # a launch-bound MLP: 8 a GPU (7.9x the images/s on the H200)
        (10.0, 1 * GIB, 1 / 4),  # resnet-small's kind: 4 a GPU (2.6x; 8 was slower)
        (30.0, 2 * GIB, 1 / 2),
        (100.0, 2 * GIB, 1.0),  # the GPU is busy: one at a time
        (2.0, 40 * GIB, 1 / 2),  # short steps but 3 do not fit: the largest of 8, 4, 2, 1 that does
        (2.0, 200 * GIB, 1.0),  # not even one fits by the rule: one anyway, as the probe itself ran
    ],
)
def test_the_share_is_the_most_trials_that_fit_and_still_pay(step_ms, peak_bytes, share):
    assert share_from_probe(step_ms=step_ms, peak_bytes=peak_bytes, total_bytes=H200) == share


def test_memory_counts_a_cuda_context_per_process():
    # 90% of the H200 is 125.1 GiB: 8 x (15 GiB + a context) fit, 8 x (15.1 GiB + a context) do not,
    # though 8 x 15.1 GiB alone would.
    assert CONTEXT_BYTES == 600 * 2**20
    assert share_from_probe(step_ms=1.0, peak_bytes=15 * GIB, total_bytes=H200) == 1 / 8
    assert share_from_probe(step_ms=1.0, peak_bytes=15.1 * GIB, total_bytes=H200) == 1 / 4
