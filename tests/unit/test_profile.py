"""The profiler's kernel table, coverage and diagnosis, from recorded trace events."""

from kernelwright.hardware.profiles import DATASHEETS
from kernelwright.tools.profile import diagnose, summarize_kernels
from kernelwright.tools.sol import SolCounts, floor


def kernel(name, dur, stream=7, ts=0):
    return {"name": name, "dur": dur, "ts": ts, "ph": "X", "cat": "kernel",
            "args": {"stream": stream}}


def test_kernel_table_coverage_and_side_streams():
    events = [kernel("marker_fill", 1), kernel("softmax_kernel_0d1d", 60),
              kernel("at::native::vectorized_elementwise_kernel", 30),
              kernel("softmax_kernel_0d1d", 10), kernel("hidden_work", 5, stream=9)]
    report = summarize_kernels(events, {"softmax_kernel"})
    assert report.launches == 4
    assert report.kernels[0].name == "softmax_kernel_0d1d" and report.kernels[0].calls == 2
    assert report.own_kernel_fraction == 70 / 105
    assert report.side_streams == ["hidden_work on stream 9"]


def test_library_mode_accepts_vendor_streams_only_when_joined_back():
    def trace(side_name, side_ts):
        return [kernel("marker_fill", 1, ts=0), kernel("epilogue_kernel", 10, ts=100),
                kernel(side_name, 50, stream=13, ts=side_ts)]

    vendor_joined = trace("cudnn::fft_conv", 20)  # runs between the marker and the epilogue
    assert summarize_kernels(vendor_joined, {"epilogue_kernel"}, vendor_streams_ok=True
                             ).side_streams == []
    assert summarize_kernels(vendor_joined, {"epilogue_kernel"}).side_streams  # strict mode
    overlapping = trace("cudnn::fft_conv", 80)  # still running when the epilogue starts
    assert summarize_kernels(overlapping, {"epilogue_kernel"}, vendor_streams_ok=True).side_streams
    trailing = trace("cudnn::fft_conv", 200)  # nothing on the calling stream waits for it
    assert summarize_kernels(trailing, {"epilogue_kernel"}, vendor_streams_ok=True).side_streams
    own = trace("my_own_kernel", 20)  # the candidate's own kernel: never exempt
    assert summarize_kernels(own, {"epilogue_kernel", "my_own_kernel"},
                             vendor_streams_ok=True).side_streams


def test_diagnosis_names_bound_fraction_and_extra_launches():
    counts = SolCounts(tensor_flops=0, vector_flops=10**6, bytes=3 * 10**8)
    sol = floor(counts, DATASHEETS["h100-sxm"], "fp32")  # about 89.6 us at 3350 GB/s
    events = [kernel("marker", 1)] + [kernel("my_kernel", 40) for _ in range(3)]
    report = diagnose(summarize_kernels(events, {"my_kernel"}), sol, runtime_us=sol.floor_us / 0.62)
    assert report.diagnosis.startswith("memory bound at 62% of peak bandwidth")
    assert "3 launches where 1 would do" in report.diagnosis
    assert report.bandwidth_fraction is not None and abs(report.bandwidth_fraction - 0.62) < 1e-9


def test_diagnosis_reports_library_time_and_idle_gpu():
    counts = SolCounts(tensor_flops=10**12, vector_flops=0, bytes=10**6, tensor_ops=1)
    sol = floor(counts, DATASHEETS["h100-sxm"], "bf16")
    events = [kernel("marker", 1), kernel("sm90_xmma_gemm", 500), kernel("my_epilogue", 100)]
    report = diagnose(summarize_kernels(events, {"my_epilogue"}), sol, runtime_us=1000)
    assert report.diagnosis.startswith("compute bound at")
    assert "83% of GPU time in library kernels" in report.diagnosis
    assert "GPU idle 40% of the call" in report.diagnosis
    assert "launches where" in report.diagnosis  # 2 launches, one GEMM would do
