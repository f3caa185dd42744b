"""The harness's memory does not grow with an output's size beyond a bounded slice."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CAPPED = """
import resource, sys
import torch
from kernelwright.tools.correctness import accuracy, compare
r = torch.randn(1 << 24)  # a 64 MiB fp32 output
x = r + 1e-7
exact = r.double() if sys.argv[2] == "accuracy" else None  # the float64 evaluation
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
cap = vm + 3 * r.nbytes
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
if exact is None:
    print(compare([x], [r], 1e-4, chunk=int(sys.argv[1])))
else:
    print(accuracy([x], [r], [exact], chunk=int(sys.argv[1])))
"""


def compare_under_a_cap(chunk: int, what: str = "compare") -> subprocess.CompletedProcess:
    """Compare two 64 MiB outputs (`accuracy`: and a float64 one) in a process whose address
    space may grow by 3 such outputs (the old comparison made float64 copies of both: 4
    outputs' worth, and masks besides)."""
    # one thread and few malloc arenas: each extra thread's arena reserves 64 MiB of address
    # space, which under a loaded machine's scheduling made the cap fail on noise
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    return subprocess.run([sys.executable, "-c", CAPPED, str(chunk), what], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=env)


def test_outputs_are_compared_in_slices_within_a_memory_cap():
    sliced = compare_under_a_cap(1 << 20)
    assert sliced.returncode == 0 and "max_rel" in sliced.stdout, sliced.stderr[-600:]


def test_the_cap_is_real_a_whole_output_at_once_exceeds_it():
    whole = compare_under_a_cap(1 << 30)
    assert whole.returncode != 0 and "allocate" in whole.stderr, whole.stdout + whole.stderr[-600:]


def test_accuracy_parity_sums_in_slices_within_the_same_cap():
    """Both errors against the float64 evaluation, a slice at a time: within the cap; the same
    sums over a whole output at once are not."""
    sliced = compare_under_a_cap(1 << 20, "accuracy")
    assert sliced.returncode == 0 and "Parity(candidate=" in sliced.stdout, sliced.stderr[-600:]
    whole = compare_under_a_cap(1 << 30, "accuracy")
    assert whole.returncode != 0 and "allocate" in whole.stderr, whole.stdout + whole.stderr[-600:]


def test_a_mismatch_report_says_where_and_how_large():
    """What the fixer reads of a wrong answer: the output, how many elements, how far off, and
    the first failing elements by index with their values (across slices)."""
    import pytest
    import torch

    from kernelwright.tools.correctness import Mismatch, compare

    ref = torch.zeros(4, 5, 6)
    got = ref.clone()
    got[1, 2, 3], got[3, 4, 5] = 0.5, -2.0
    with pytest.raises(Mismatch) as wrong:
        compare([got], [ref], 1e-4, chunk=64)
    assert "output 0 [4, 5, 6]: 2 of 120 elements exceed the tolerance" in str(wrong.value)
    assert "first at [1, 2, 3] got 0.5, expected 0; [3, 4, 5] got -2, expected 0" in str(wrong.value)
    got = ref.clone().long()
    got[0, 0, 1] = 7
    with pytest.raises(Mismatch, match=r"1 of 120 elements differ; first at \[0, 0, 1\] got 7"):
        compare([got], [ref.long()], 1e-4)
