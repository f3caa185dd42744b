"""Command line: `kernelwright eval PROBLEM CANDIDATE`."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernelwright.errors import CandidateFileError, KernelwrightError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Agents that write fast, verified GPU kernels for PyTorch modules.")
console = Console()
STATUS_STYLE = {"correct": "bold green", "incorrect": "bold red", "rejected": "bold red",
                "build_error": "bold yellow", "runtime_error": "bold yellow",
                "timeout": "bold magenta", "crashed": "bold magenta"}


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False
          ) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command("eval")
def eval_command(
    problem: Annotated[Path, typer.Argument(help="KernelBench-format problem file")],
    candidate: Annotated[Path, typer.Argument(help="candidate source defining ModelNew")],
    precision: Annotated[str, typer.Option(help="fp32 | tf32 | bf16 | fp16, for both sides")]
    = "fp32",
    guard: Annotated[str, typer.Option(help="strict (no torch compute) | library (GEMM/conv)")]
    = "strict",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (Triton interpreter)")] = "auto",
    timeout: Annotated[float, typer.Option(help="wall-clock limit in seconds")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Check a candidate against its reference and time it (on a GPU) against eager and compile."""
    from pydantic import ValidationError

    from kernelwright.problem import load_problem
    from kernelwright.tools.evaluate import evaluate
    from kernelwright.tools.results import EvalSettings

    try:
        settings = EvalSettings(precision=precision, guard=guard, device=device,
                                timeout_s=timeout)
    except ValidationError as exc:
        bad = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid option: {bad}") from None
    try:
        loaded = load_problem(problem)
        source = _read_candidate(candidate)
        with console.status(f"evaluating {candidate.name} against {problem.name}",
                            spinner="dots") if not as_json else nullcontext():
            result = evaluate(loaded, source, settings)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _show(result)
    raise typer.Exit(0 if result.ok else 1)


def _read_candidate(path: Path) -> str:
    if not path.is_file():
        raise CandidateFileError(f"{path}: candidate file not found. Fix: check the path.")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateFileError(f"{path}: cannot read the candidate ({exc}).") from None


def _show(result) -> None:
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
            ("max abs / rel error", f"{_fmt(result.max_abs_err)} / {_fmt(result.max_rel_err)}"),
            ("tolerance (rel)", _fmt(result.tolerance)),
            ("candidate", _fmt(result.runtime_us, " us")),
            ("eager", _fmt(result.eager_us, " us")),
            ("torch.compile", _fmt(result.compile_us, " us")),
            ("speedup vs eager / compile",
             f"{_fmt(result.speedup_eager, 'x')} / {_fmt(result.speedup_compile, 'x')}")]
    if result.own_kernel_fraction is not None:
        rows.append(("GPU time in own kernels", f"{result.own_kernel_fraction:.0%}"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.size_overrides:
        sizes = ", ".join(f"{k}={v}" for k, v in result.size_overrides.items())
        console.print(f"sizes shrunk for the interpreter: {sizes}")
    if result.timing_note:
        console.print(f"[dim]{result.timing_note}[/]")
    console.print(f"[dim]torch {result.torch_version}, triton {result.triton_version}, "
                  f"{result.wall_s:.1f} s[/]")
    if result.status.value in {"crashed", "timeout"} and result.log_tail:
        console.print(f"[dim]worker log:\n{result.log_tail}[/]")


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.4g}{unit}"


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
