"""Runtime guard pieces, exercised directly (the corpus tests exercise them through evaluate)."""

import threading

import pytest
import torch

from kernelwright.tools.runtime_guard import GuardViolation, RuntimeGuard, classify_ops, watched_modules


def test_classify_ops_by_mode():
    ops = {"aten.empty_like.default", "aten.view.default", "aten.mm.default", "aten.relu.default"}
    strict = {f.message.split(" ")[0] for f in classify_ops(ops, "strict")}
    library = {f.message.split(" ")[0] for f in classify_ops(ops, "library")}
    assert strict == {"aten.mm.default", "aten.relu.default"}
    assert library == {"aten.relu.default"}


def guard():
    return RuntimeGuard("strict", "fp32", "/nonexistent/candidate.py", watched_modules())


def test_dispatch_record_catches_compute_hidden_from_static_checks():
    g = guard()
    x = torch.randn(8)
    with pytest.raises(GuardViolation) as info:
        with g.watching():
            eval("torch.re" + "lu")(x)
    assert info.value.findings[0].rule == "torch_compute"


def test_allocation_and_views_pass():
    g = guard()
    with g.watching():
        torch.empty(4, 4).t().contiguous().view(-1)


def test_patched_function_is_detected_and_restored_state_passes():
    g = guard()
    original = torch.cuda.synchronize
    try:
        with pytest.raises(GuardViolation, match="torch.cuda.synchronize"):
            with g.watching(record_ops=False):
                torch.cuda.synchronize = lambda *a: None
    finally:
        torch.cuda.synchronize = original


def test_new_thread_is_detected():
    g = guard()
    stop = threading.Event()
    try:
        with pytest.raises(GuardViolation, match="thread count"):
            with g.watching(record_ops=False):
                threading.Thread(target=stop.wait, daemon=True).start()
    finally:
        stop.set()


def test_low_precision_cast_is_recorded():
    g = guard()
    with pytest.raises(GuardViolation) as info:
        with g.watching():
            torch.ones(3).to(torch.float16)
    assert "precision_downgrade" in {f.rule for f in info.value.findings}
