"""Shape-generic kernels against the size-baked kernels they replace, on the GPU.

    python benchmarks/generic_sizes.py OLD_TREE [--out results.jsonl] [--only 03_softmax ...]

For each bundled level-1 problem (examples/problems/level1) at its real size: the writer's
kernel with sizes as arguments (this tree) and the same problem written by OLD_TREE's writer
(a checkout from before, sizes baked in as constants), each checked against the reference and
timed with Triton's do_bench (median), beside eager. Then the generic kernel written at the
CPU's shrunk size (2^14 elements) is run at the real size and checked: the kernel verified
small is the kernel that runs big. One JSON line per problem, printed as it finishes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import triton.testing

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = sorted((ROOT / "examples/problems/level1").glob("*.py"))
WRITE = ("import sys; from kernelwright.core.problem import load_problem; "
         "from kernelwright.writer.write import plan; p = load_problem(sys.argv[1]); "
         "p = p.shrink(int(sys.argv[2])) if int(sys.argv[2]) else p; print(plan(p).source())")


def write(tree: Path, path: Path, shrink: int) -> str:
    """The default source for `path` from the writer of the kernelwright package under `tree`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", WRITE, str(path), str(shrink)], cwd=tree,
                          text=True, capture_output=True, env=env, timeout=300)
    if done.returncode:
        raise RuntimeError(done.stderr[-600:])
    return done.stdout


def load(source: str, name: str) -> Any:
    file = Path(tempfile.mkdtemp()) / f"{name}.py"  # Triton reads a kernel's source from its file
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(path: Path, old: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"problem": path.stem}
    ref_module = load(path.read_text(), f"ref_{path.stem}")
    init = ref_module.get_init_inputs()
    torch.manual_seed(0)
    with torch.device("cuda"):
        ref = ref_module.Model(*init)
        xs = ref_module.get_inputs()
    with torch.no_grad():
        expected = ref(*xs)
        row["eager_us"] = 1e3 * triton.testing.do_bench(lambda: ref(*xs))
        for label, tree, shrink in [("generic", ROOT, 0), ("baked", old, 0),
                                    ("generic_written_small", ROOT, 1 << 14)]:
            try:
                cand = load(write(tree, path, shrink), f"{label}_{path.stem}")
                model = cand.ModelNew(*init).cuda()
                model.load_state_dict(ref.state_dict())
                out = model(*xs)
                row[f"{label}_err"] = (out.float() - expected.float()).abs().max().item()
                if shrink == 0:
                    row[f"{label}_us"] = 1e3 * triton.testing.do_bench(lambda m=model: m(*xs))
            except Exception as exc:  # noqa: BLE001  (a row records the failure and goes on)
                row[f"{label}_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old", type=Path)
    parser.add_argument("--out", type=Path, default=Path("generic_sizes.jsonl"))
    parser.add_argument("--only", nargs="*", default=None, help="problem names (file stems)")
    args = parser.parse_args()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "triton": triton.__version__}), flush=True)
    with args.out.open("a") as out:
        for path in [p for p in PROBLEMS if args.only is None or p.stem in args.only]:
            row = measure(path, args.old.resolve())
            print(json.dumps(row), flush=True)
            out.write(json.dumps(row) + "\n")
            out.flush()
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
