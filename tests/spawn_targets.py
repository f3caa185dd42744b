"""Functions for tools/process.py's `spawn` to run in a fresh process, in tests."""

import json
import os


def visible_gpu(job_json: str) -> str:
    return json.dumps(os.environ.get("CUDA_VISIBLE_DEVICES"))
