"""The harness's memory does not grow with an output's size beyond a bounded slice."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CAPPED = """
import resource, sys
import torch
from kernelwright.tools.correctness import compare
r = torch.randn(1 << 24)  # a 64 MiB fp32 output
x = r + 1e-7
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
cap = vm + 3 * r.nbytes
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
print(compare([x], [r], 1e-4, chunk=int(sys.argv[1])))
"""


def compare_under_a_cap(chunk: int) -> subprocess.CompletedProcess:
    """Compare two 64 MiB outputs in a process whose address space may grow by 3 such outputs
    (the old comparison made float64 copies of both: 4 outputs' worth, and masks besides)."""
    return subprocess.run([sys.executable, "-c", CAPPED, str(chunk)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_outputs_are_compared_in_slices_within_a_memory_cap():
    sliced = compare_under_a_cap(1 << 20)
    assert sliced.returncode == 0 and "max_rel" in sliced.stdout, sliced.stderr[-600:]


def test_the_cap_is_real_a_whole_output_at_once_exceeds_it():
    whole = compare_under_a_cap(1 << 30)
    assert whole.returncode != 0 and "allocate" in whole.stderr, whole.stdout + whole.stderr[-600:]
