"""What the CLI prints: rich tables and panels of results, records, profiles and experiences."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


STATUS_STYLE = {"correct": "bold green", "incorrect": "bold red", "rejected": "bold red",
                "build_error": "bold yellow", "runtime_error": "bold yellow",
                "timeout": "bold magenta", "crashed": "bold magenta"}


def bench_table(records: list[Any]) -> Table:
    table = Table(box=box.SIMPLE, pad_edge=False, collapse_padding=True,
                  caption="times in us; speedups of the best correct kernel")
    for name in ["problem", "status", "eager", "compile", "best", "vs eager", "vs compile", "SOL",
                 "evals"]:
        table.add_column(name, justify="left" if name in {"problem", "status"} else "right",
                         no_wrap=name != "status")
    for r in records:
        style = STATUS_STYLE.get(r.status, "bold red")
        table.add_row(r.problem, f"[{style}]{escape(r.verdict())}[/]", num(r.eager_us),
                      num(r.compile_us), num(r.best_us),
                      "no difference" if r.within_noise else fmt(r.speedup_eager, "x"),
                      fmt(r.speedup_compile, "x"), fmt(r.sol_fraction), str(r.evaluations))
    return table


def record_line(record: Any) -> str:
    if record.correct:
        against = record.versus_eager(record.best_us)
        speed = f", {against}" if against else " (not timed)"
        return f"correct{speed}, {record.evaluations} evaluations"
    return record.verdict()


def run_panel(name: str, header: str, lines: list[str]) -> Any:
    from rich.panel import Panel

    return Panel("\n".join(escape(line) for line in lines[-14:]), title=f"kernelwright run: {name}",
                 subtitle=escape(header), border_style="cyan")


def analysis_table(results: list[Any]) -> Table:
    """One row per analysed problem (also used for benchmarks/analyze-*.md)."""
    first = results[0] if results else None
    title = (f"{first.device}, precision {first.precision}, profile "
             f"{first.sol.profile + (' (calibrated)' if first.sol.calibrated else ' (datasheet)')}"
             f", matmul peak {first.sol.tensor_peak_tflops:.4g} TFLOP/s "
             f"({first.sol.tensor_peak_kind})" if first and first.sol else None)
    table = Table(title=title, caption="times in us; headroom = compile / floor", box=box.SIMPLE,
                  pad_edge=False, collapse_padding=True)
    for name in ["problem", "eager", "compile", "GFLOP", "MB", "floor", "bound", "headroom"]:
        table.add_column(name, justify="left" if name in {"problem", "bound"} else "right",
                         no_wrap=True)
    for r in results:
        sol = r.sol
        table.add_row(r.problem, num(r.eager_us), num(r.compile_us), num(r.flops / 1e9),
                      num(r.bytes / 1e6), num(sol.floor_us if sol else None),
                      sol.bound if sol else "-", fmt(r.headroom, "x"))
    return table


def num(value: float | None) -> str:
    """Short numbers for tables: 3 significant digits, no exponent below a million."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def show_profile(profile: Any) -> None:
    table = Table(title=f"{profile.marketing_name} ({profile.name}, "
                        f"{'calibrated' if profile.calibrated else 'datasheet'})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("memory bandwidth", f"{profile.memory_bandwidth_gbps:.0f} GB/s")
    for kind in ("fp32", "tf32", "bf16", "fp16", "fp8"):
        rate = getattr(profile, f"{kind}_tflops")
        table.add_row(f"{kind} peak", _rate(rate))
    table.add_row("3xTF32 GEMM (measured)", _rate(profile.tf32x3_tflops))
    rate, kind = profile.fp32_accurate()
    table.add_row("fp32-accurate matmul peak", f"{_rate(rate)} ({kind})")
    table.add_row("L2", f"{profile.l2_bytes / 2**20:.0f} MiB" if profile.l2_bytes else "-")
    table.add_row("SMs / CUs / cores", str(profile.sm_count))
    console.print(table)
    console.print(f"[dim]source: {escape(profile.source)}[/]")


def _rate(tflops: float | None) -> str:
    """A peak in the unit that shows it: a CPU's is GFLOP/s, a GPU's TFLOP/s."""
    if not tflops:
        return "-"
    return f"{tflops:.1f} TFLOP/s" if tflops >= 1 else f"{tflops * 1e3:.0f} GFLOP/s"


def show_result(result) -> None:
    style = STATUS_STYLE.get(result.status.value, "bold")
    reason = f" ({result.reason})" if result.reason else ""
    console.print(f"[{style}]{result.status.value}[/]{reason}  {result.problem}  "
                  f"guard={result.guard} precision={result.precision} "
                  f"device={result.device or 'not run'}")
    if result.message and not result.findings:
        console.print(result.message)
    for finding in result.findings[:10]:
        where = f"line {finding.line}: " if finding.line else ""
        console.print(escape(f"  - [{finding.rule}] {where}{finding.message}"))
    if not result.device:
        return  # refused before anything ran: no figures to show
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(justify="right")
    rows = [("trials passed", str(result.trials_passed)),
            ("max abs / rel error", f"{fmt(result.max_abs_err)} / {fmt(result.max_rel_err)}"),
            ("tolerance (rel)", fmt(result.tolerance)),
            ("error vs float64, candidate / reference",
             f"{fmt(result.exact_error)} / {fmt(result.reference_exact_error)}"
             + (f" (at most {result.parity_factor:g}x)" if result.parity_factor else "")
             if result.parity_note is None else result.parity_note),
            ("candidate", fmt(result.runtime_us, " us")),
            ("eager", fmt(result.eager_us, " us")),
            ("torch.compile", fmt(result.compile_us, " us")),
            ("speedup vs eager / compile",
             f"{fmt(result.speedup_eager, 'x')} / {fmt(result.speedup_compile, 'x')}"
             if not result.within_noise else "no measurable difference from eager")]
    if result.timing is not None and result.eager_timing is not None:  # the spreads behind it
        rows.append(("p20-p80, candidate / eager",
                     f"{result.timing.p20_us:.4g}-{result.timing.p80_us:.4g} / "
                     f"{result.eager_timing.p20_us:.4g}-{result.eager_timing.p80_us:.4g} us"))
    if result.own_kernel_fraction is not None:
        rows.append(("GPU time in own kernels", f"{result.own_kernel_fraction:.0%}"))
    if result.sol is not None and result.sol_fraction is not None:
        rows.append(("SOL floor / fraction", f"{result.sol.floor_us:.4g} us ({result.sol.bound}"
                     f" bound, {result.sol.profile}) / {result.sol_fraction:.2f}"))
        if result.sol.tensor_flops:
            rows.append(("matmul peak of the floor", f"{result.sol.tensor_peak_tflops:.4g} "
                         f"TFLOP/s, {result.sol.tensor_peak_kind}"))
    if result.profile is not None:
        rows.append(("diagnosis", result.profile.diagnosis))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.faster_than_sol:
        console.print("[bold red]faster than the speed-of-light[/]: the time is under 0.95 x the "
                      "floor, so the kernel skips work or the measurement is wrong; do not trust it")
    if result.size_overrides:
        sizes = ", ".join(f"{k}={v}" for k, v in result.size_overrides.items())
        console.print(f"sizes shrunk for the interpreter: {sizes}")
    if result.timing_note:
        console.print(f"[dim]{result.timing_note}[/]")
    console.print(f"[dim]torch {result.torch_version}, triton {result.triton_version}, "
                  f"{result.wall_s:.1f} s[/]")
    if result.sandbox:
        confined = "; ".join(line.split(":")[0] + ": " + line.split(": ", 1)[1].split(" (")[0]
                             for line in result.sandbox[2:4])
        console.print(f"[dim]sandbox: {escape(confined)} (--explain-sandbox for all)[/]")
    if result.status.value in {"crashed", "timeout"} and result.log_tail:
        console.print(f"[dim]worker log:\n{result.log_tail}[/]")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.4g}{unit}"


def experience_table(title: str, rows: list[Any]) -> None:
    from rich.table import Table

    from kernelwright.memory.store import describe

    table = Table(title=title)
    for column in ("id", "score", "stage", "problem", "outcome", "q_draft", "q_refine", "lesson"):
        table.add_column(column)
    for exp, score in rows:
        table.add_row(*(escape(v) for v in describe(exp, score).values()))
    console.print(table)
