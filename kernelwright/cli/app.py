"""Command line: `kernelwright run`, `bench`, `compare`, `eval`, `analyze`, `hw` and `memory`."""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernelwright.cli.render import (
    analysis_table,
    bench_table,
    console,
    experience_table,
    record_line,
    run_panel,
    show_profile,
    show_result,
)
from kernelwright.core.errors import CandidateFileError, KernelwrightError
from kernelwright.tools.process import Interrupted, stop_on_interrupt

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Agents that write fast, verified GPU kernels for PyTorch modules.")


hw_app = typer.Typer(no_args_is_help=True, help="Device profiles: datasheets and calibration.")
app.add_typer(hw_app, name="hw")
memory_app = typer.Typer(no_args_is_help=True, help="The experience memory (Qdrant).")
app.add_typer(memory_app, name="memory")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False
          ) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command("run")
def run_command(
    problem: Annotated[Path, typer.Argument(help="KernelBench-format problem file")],
    config: Annotated[Path | None, typer.Option(help="RunConfig YAML (see mlflow/configs/)")]
    = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | tf32 | bf16 | fp16")] = None,
    guard: Annotated[str | None, typer.Option(help="strict | library (GEMM/conv stay vendor)")]
    = None,
    iterations: Annotated[int | None, typer.Option(help="rounds of plan, code, evaluate")] = None,
    candidates: Annotated[int | None, typer.Option(help="candidates coded per round")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cuda | cpu (Triton interpreter)")]
    = None,
    backend: Annotated[str | None, typer.Option(
        help="triton | cuda (CUDA C++, GPU) | cpu (C++ timed on the CPU)")] = None,
    model: Annotated[str | None, typer.Option(
        help="put every role on the LLM policy with this model")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint for --model (default: OPENAI_BASE_URL)")] = None,
    out: Annotated[Path, typer.Option(help="folder for the best kernel and the run summary")]
    = Path("runs"),
    checkpoint: Annotated[Path, typer.Option(help="SQLite file holding resumable runs")]
    = Path("runs/checkpoints.sqlite"),
    resume: Annotated[str | None, typer.Option(help="thread id of an interrupted run")] = None,
) -> None:
    """Optimise a problem with the agent graph; writes the best kernel and a summary."""
    from pydantic import ValidationError
    from rich.live import Live

    from kernelwright.api import optimize
    from kernelwright.config import RunConfig
    from kernelwright.core.problem import load_problem

    overrides = {k: v for k, v in dict(iterations=iterations, candidates=candidates,
                                       device=device, backend=backend, precision=precision,
                                       guard=guard).items() if v is not None}
    try:
        load_problem(problem)  # a clear error now rather than inside the graph
        base = RunConfig.from_yaml(config) if config else RunConfig()
        settings = RunConfig(**{**base.model_dump(), **overrides}).with_model(model, base_url)
    except ValidationError as exc:
        bad = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid option: {bad}") from None
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    header = [""]
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        def progress(line: str) -> None:
            lines.append(line)
            live.update(run_panel(problem.stem, header[0], lines))

        def status(line: str) -> None:
            header[0] = line
            live.update(run_panel(problem.stem, header[0], lines))

        thread = [resume or ""]

        def started(thread_id: str) -> None:
            thread[0] = thread_id
            verb = "resuming" if resume else "started"
            live.console.print(f"{verb} thread {thread_id} (if interrupted: --resume {thread_id})")

        stop_on_interrupt()
        try:
            result = optimize(problem, settings, checkpoint=checkpoint, thread_id=resume,
                              resume=resume is not None, progress=progress, status=status,
                              started=started)
        except KernelwrightError as exc:
            raise _fail(str(exc)) from None
        except Interrupted:
            live.stop()
            raise _interrupted(f"resume with: kernelwright run {problem} --checkpoint "
                               f"{checkpoint} --resume {thread[0]}") from None
    console.print()
    folder = out / f"{problem.stem}-{result.thread_id}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(result.model_dump_json(indent=2))
    if result.best is not None and result.best.source:
        (folder / "best.py").write_text(result.best.source)
        console.print(f"best: #{result.best.id} ({result.best.change}) -> {folder / 'best.py'}")
    page = _report(folder, settings, result.mlflow_run_id)[0]
    console.print(f"report: {page}")
    if result.size_overrides:
        console.print("[yellow]shrunk for the CPU:[/] the candidates were checked at "
                      + ", ".join(f"{k}={v}" for k, v in sorted(result.size_overrides.items()))
                      + f", not at {problem.name}'s sizes (run on a GPU for those)")
    console.print(f"stopped: {result.stop}\nthread {result.thread_id} (resume with "
                  f"--resume {result.thread_id}); summary in {folder / 'summary.json'}")
    if result.mlflow_run_id:
        from kernelwright.tracking import tracking_uri

        uri = tracking_uri(settings)
        see = f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
        console.print(f"tracked: MLflow run {result.mlflow_run_id} in {uri} (see it: {see})")
    raise typer.Exit(0 if result.best is not None else 1)


@app.command("bench")
def bench_command(
    suite: Annotated[Path, typer.Argument(help="folder of KernelBench-format problems "
                                               "(a KernelBench checkout's level folder works)")],
    config: Annotated[Path | None, typer.Option(help="RunConfig YAML (see mlflow/configs/)")]
    = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | tf32 | bf16 | fp16")] = None,
    guard: Annotated[str | None, typer.Option(help="strict | library (GEMM/conv stay vendor)")]
    = None,
    iterations: Annotated[int | None, typer.Option(help="rounds per problem")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cuda | cpu (Triton interpreter)")]
    = None,
    backend: Annotated[str | None, typer.Option(
        help="triton | cuda (CUDA C++, GPU) | cpu (C++ timed on the CPU)")] = None,
    out: Annotated[Path | None, typer.Option(help="results folder (default runs/bench/SUITE)")]
    = None,
    eval_only: Annotated[Path | None, typer.Option(
        "--eval-only", help="only evaluate the candidates in this folder (same paths, .py)")]
    = None,
    problem_limit: Annotated[float, typer.Option(
        help="seconds of coding and evaluating per problem; past it the problem's run stops "
             "and is recorded as such", min=1.0)] = 900.0,
) -> None:
    """Optimise (or evaluate) every problem of a suite; JSON, CSV, Markdown and a plot."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from kernelwright.config import RunConfig
    from kernelwright.suite import records as suite_records
    from kernelwright.suite import report, runner
    from kernelwright.tracking import MlflowRun, flatten

    if not suite.is_dir():
        raise _fail(f"{suite}: not a folder; bench takes a folder of problem files")
    if eval_only is not None and not eval_only.is_dir():
        raise _fail(f"--eval-only {eval_only}: not a folder of candidate files")
    problems = runner.find_problems(suite)
    if not problems:
        raise _fail(f"{suite}: no KernelBench-format problem (a .py file with `class Model` "
                    "and `get_inputs`) under this folder")
    overrides = {k: v for k, v in dict(precision=precision, guard=guard, iterations=iterations,
                                       device=device, backend=backend).items() if v is not None}
    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        settings = RunConfig(**{**base.model_dump(), **overrides})
        out = out or Path("runs/bench") / suite.resolve().name
        runner.claim(out, {**flatten(settings), "eval_only": str(eval_only or "")})
    except ValidationError as exc:
        bad = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid option: {bad}") from None
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    title = f"kernelwright bench: {suite}"
    group = MlflowRun(settings, say=lambda line: console.print(f"[yellow]{escape(line)}[/]"))
    if eval_only is None:
        group.open(f"bench {suite.resolve().name}", {"kind": "bench", "suite": str(suite)},
                   flatten(settings))
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("bench", total=len(problems))

        def on_problem(problem: str, record: Any) -> None:
            if record is None:
                bar.update(task, description=problem)
            else:
                bar.advance(task)
                bar.console.print(f"  {problem}: {record_line(record)}")

        stop_on_interrupt()
        try:
            if eval_only is not None:
                from kernelwright.tools.evaluate import resolve_device

                records = runner.evaluate_suite(
                    problems, suite, eval_only,
                    settings.eval_settings(resolve_device(settings.device, settings.backend),
                                          settings.compile_baseline),
                    out, on_problem=on_problem)
            else:
                records = runner.run_suite(problems, suite, settings, out,
                                          parent_run_id=group.run_id,
                                          problem_limit_s=problem_limit, on_problem=on_problem)
        except Interrupted:
            bar.stop()
            group.close({}, {}, "KILLED")
            raise _interrupted(f"finished problems are kept in {out}; resume by running the "
                               "same command again") from None
    summary = suite_records.summarize(records)
    files = report.write_report(out, records, summary, title)
    if group.run_id:
        (out / "mlflow_run_id").write_text(group.run_id)  # where `kernelwright report` logs to
    pages = _report(out, settings, None)
    group.close(suite_records.summary_metrics(summary), {"results.md": files[2].read_text(),
                                                         "report.html": pages[0].read_text()},
                "FINISHED")
    files.append(pages[0])
    console.print(bench_table(records))
    for line in report.summary_lines(summary):
        console.print(escape(line))
    console.print(f"results: {', '.join(str(f) for f in files)}")




@app.command("report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="a run folder (kernelwright run) or a bench "
                                                "folder (kernelwright bench --out)")],
    config: Annotated[Path | None, typer.Option(help="RunConfig YAML: where MLflow is")] = None,
) -> None:
    """Write report.html (one self-contained page) for a run or a bench, and log it to MLflow."""
    from kernelwright.config import RunConfig
    from kernelwright.core.records import Result

    try:
        settings = RunConfig.from_yaml(config) if config else RunConfig()
        run_id = None
        if (folder / "mlflow_run_id").is_file():
            run_id = (folder / "mlflow_run_id").read_text().strip()
        elif (folder / "summary.json").is_file() and not (folder / "results.json").is_file():
            run_id = Result.model_validate_json((folder / "summary.json").read_text()).mlflow_run_id
        pages = _report(folder, settings, run_id)
    except (KernelwrightError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"report: {pages[0]}" + (f" (and {len(pages) - 1} run pages)" if pages[1:] else ""))


def _report(folder: Path, settings: Any, run_id: str | None) -> list[Path]:
    """The report page(s) of a run or bench folder; the first logged to MLflow when tracked."""
    from kernelwright.report.html import write_report
    from kernelwright.tracking import log_file

    pages = write_report(folder)
    if run_id and settings.tracking.enabled:
        log_file(settings, run_id, pages[0], say=lambda line: console.print(f"[yellow]{escape(line)}[/]"))
    return pages


@app.command("compare")
def compare_command(
    configs: Annotated[list[Path], typer.Argument(help="RunConfig YAML files (see mlflow/configs/)")],
    suite: Annotated[Path, typer.Option(help="folder of KernelBench-format problems")],
    out: Annotated[Path, typer.Option(help="folder for each configuration's records")]
    = Path("runs/compare"),
    iterations: Annotated[int | None, typer.Option(help="override every config's rounds")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | tf32 | bf16 | fp16")] = None,
    guard: Annotated[str | None, typer.Option(help="strict | library (GEMM/conv stay vendor)")]
    = None,
    device: Annotated[str | None, typer.Option(help="auto | cuda | cpu (Triton interpreter)")]
    = None,
    backend: Annotated[str | None, typer.Option(
        help="triton | cuda (CUDA C++, GPU) | cpu (C++ timed on the CPU)")] = None,
) -> None:
    """Run a suite once per configuration; MLflow gets a parent run, one child per config.
    --precision, --guard, --device and --backend override every configuration's."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from kernelwright.suite.compare import compare, load_configs, markdown, rows

    if not suite.is_dir():
        raise _fail(f"--suite {suite}: not a folder of problems")
    try:
        settings = load_configs(configs)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    overrides = {k: v for k, v in dict(iterations=iterations, precision=precision, guard=guard,
                                       device=device, backend=backend).items() if v is not None}
    try:
        from kernelwright.config import RunConfig

        settings = {k: RunConfig(**{**v.model_dump(), **overrides}) for k, v in settings.items()}
    except ValidationError as exc:
        bad = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid option: {bad}") from None
    from kernelwright.suite.runner import find_problems

    total = len(find_problems(suite)) * len(settings)
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("compare", total=total)

        def on_problem(config: str, problem: str, record: Any) -> None:
            if record is None:
                bar.update(task, description=f"{config}: {problem}")
            else:
                bar.advance(task)
                bar.console.print(f"  {config}: {problem}: {record_line(record)}")

        def say(line: str) -> None:  # tracking that failed: the comparison goes on
            if "tracking is off" in line:
                bar.console.print(f"[yellow]{escape(line)}[/]")

        try:
            result = compare(settings, suite, out, on_problem=on_problem, say=say)
        except KernelwrightError as exc:
            raise _fail(str(exc)) from None
    table = Table(title=f"{suite}: {len(result.problems)} problems", box=box.SIMPLE)
    table.add_column("metric")
    for name in settings:
        table.add_column(name, justify="right")
    for label, values in rows(result):
        table.add_row(label, *values)
    console.print(table)
    (out / "comparison.md").write_text(markdown(result))
    where = f"MLflow parent run {result.parent_run_id}" if result.parent_run_id else "not tracked"
    console.print(f"{where}; table in {out / 'comparison.md'}")






@app.command("eval")
def eval_command(
    problem: Annotated[Path | None, typer.Argument(help="KernelBench-format problem file")]
    = None,
    candidate: Annotated[Path | None, typer.Argument(help="candidate source defining ModelNew")]
    = None,
    precision: Annotated[str, typer.Option(help="fp32 | tf32 | bf16 | fp16, for both sides")]
    = "fp32",
    guard: Annotated[str, typer.Option(help="strict (no torch compute) | library (GEMM/conv)")]
    = "strict",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (Triton interpreter)")] = "auto",
    backend: Annotated[str, typer.Option(
        help="triton | cuda (CUDA C++, GPU) | cpu (C++ timed on the CPU)")] = "triton",
    timeout: Annotated[float, typer.Option(help="wall-clock limit in seconds")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    no_sandbox: Annotated[bool, typer.Option(
        "--no-sandbox", help="run the candidate unconfined (trusted code only)")] = False,
    explain_sandbox: Annotated[bool, typer.Option(
        "--explain-sandbox", help="say which confinements a worker gets here, then exit")]
    = False,
) -> None:
    """Check a candidate against its reference and time it (on a GPU) against eager and compile."""
    from pydantic import ValidationError

    from kernelwright.core.problem import load_problem
    from kernelwright.core.results import EvalSettings
    from kernelwright.tools.evaluate import evaluate

    if explain_sandbox:
        _explain_sandbox(device)
        return
    if problem is None or candidate is None:
        raise _fail("give a PROBLEM file and a CANDIDATE file (or --explain-sandbox)")

    try:
        settings = EvalSettings(precision=precision, guard=guard, device=device, backend=backend,
                                timeout_s=timeout, sandbox=not no_sandbox)
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
    if result.status in {"problem_error", "too_large"}:  # the user's file or machine, not the candidate
        if as_json:
            print(result.model_dump_json(indent=2))
        raise _fail(result.message)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        show_result(result)
    raise typer.Exit(0 if result.ok else 1)


def _explain_sandbox(device: str) -> None:
    """Start an empty worker with the confinement a candidate on `device` gets; show it."""
    from kernelwright.core.results import EvalSettings
    from kernelwright.tools.evaluate import resolve_device, sandbox_for
    from kernelwright.tools.process import spawn

    on = resolve_device(device)
    done = spawn("kernelwright.tools.sandbox:probe", "{}", 120, "kernelwright-probe",
                 sandbox_for(EvalSettings(device=device), cuda=on == "cuda"))
    table = Table(title=f"what a candidate's worker ({on}) gets on this machine", box=box.SIMPLE,
                  show_header=False)
    for line in done.confinement.lines():
        what, _, how = line.partition(": ")
        table.add_row(what, how)
    console.print(table)


@app.command("analyze")
def analyze_command(
    problems: Annotated[list[Path], typer.Argument(help="problem files or folders of them")],
    precision: Annotated[str, typer.Option(help="fp32 | tf32 | bf16 | fp16, for both sides")]
    = "fp32",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (no timings on the CPU)")]
    = "auto",
    backend: Annotated[str, typer.Option(
        help="triton | cuda | cpu (the baselines timed on the CPU, as the cpu backend is)")]
    = "triton",
    hardware: Annotated[str | None, typer.Option(
        help="datasheet profile to use instead of this device's (see `kernelwright hw show`)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the analyses as JSON")] = False,
) -> None:
    """Baselines (eager, torch.compile), FLOPs, bytes, the SOL floor and the headroom; then
    what the offline writer does not cover, op by op, over all the problems given."""
    from kernelwright.core.problem import load_problem
    from kernelwright.hardware.profiles import DATASHEETS
    from kernelwright.tools.analyze import analyze

    if precision not in {"fp32", "tf32", "bf16", "fp16"}:
        raise _fail(f"--precision {precision!r}: use fp32, tf32, bf16 or fp16")
    if device not in {"auto", "cuda", "cpu"}:
        raise _fail(f"--device {device!r}: use auto, cuda or cpu")
    if backend not in {"triton", "cuda", "cpu"}:
        raise _fail(f"--backend {backend!r}: use triton, cuda or cpu")
    if hardware is not None and hardware not in DATASHEETS:
        raise _fail(f"--hardware {hardware!r}: unknown profile; choose from "
                    f"{', '.join(sorted(DATASHEETS))}")
    files = _problem_files(problems)
    results = []
    missing: dict[str, list[str]] = {}
    try:
        with console.status("", spinner="dots") if not as_json else nullcontext() as status:
            for i, (file, label) in enumerate(files, 1):
                if status is not None:
                    status.update(f"analysing {label} ({i}/{len(files)})")
                problem = load_problem(file)
                analysis = analyze(problem, precision, device,  # type: ignore[arg-type]
                                   hardware, backend=backend)  # type: ignore[arg-type]
                results.append(analysis.model_copy(update={"problem": label}))
                missing[label] = uncovered(problem, precision, backend)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps([{**r.model_dump(mode="json"), "uncovered_ops": missing[r.problem]}
                          for r in results], indent=2))
        return
    console.print(analysis_table(results))
    notes = sorted({r.note for r in results if r.note})
    for note in notes:
        console.print(f"[dim]{escape(note)}[/]")
    for line in coverage_lines(missing):
        console.print(escape(line))


def uncovered(problem: Any, precision: str, backend: str) -> list[str]:
    """The aten ops of `problem` the offline writer has no rule for (strict mode): [] if none."""
    from kernelwright.writer.ir import Unsupported
    from kernelwright.writer.write import plan

    try:
        plan(problem, precision, "strict", backend)  # type: ignore[arg-type]
    except Unsupported as exc:
        return exc.ops
    return []


def coverage_lines(missing: dict[str, list[str]]) -> list[str]:
    """The offline writer's coverage over the problems: how many, and each missing op with the
    problems that use it (most used first)."""
    by_op: dict[str, list[str]] = {}
    for problem, ops in missing.items():
        for op in ops:
            by_op.setdefault(op, []).append(problem)
    covered = sum(1 for ops in missing.values() if not ops)
    lines = [f"offline writer: {covered} of {len(missing)} problems covered"]
    for op, problems in sorted(by_op.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  uncovered {op}: {len(problems)} problem(s): {', '.join(problems[:8])}"
                     + (", ..." if len(problems) > 8 else ""))
    return lines






@hw_app.command("calibrate")
def hw_calibrate(
    device: Annotated[str, typer.Option(help="auto | cuda | cpu")] = "auto",
) -> None:
    """Measure this machine's bandwidth and matmul rates; the result wins over the datasheet."""
    from kernelwright.hardware.calibrate import calibrate, profile_path
    from kernelwright.tools.evaluate import resolve_device

    try:
        target = resolve_device(device)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    with console.status("calibrating", spinner="dots") as status:
        profile = calibrate(target, progress=lambda step: status.update(f"calibrating: {step}"))
    show_profile(profile)
    console.print(f"saved to {profile_path(profile.marketing_name)}")


@hw_app.command("show")
def hw_show(
    device: Annotated[str, typer.Option(help="auto | cuda | cpu")] = "auto",
) -> None:
    """Show the profile in use on this machine and list the datasheet profiles."""
    from kernelwright.hardware.calibrate import resolve_profile
    from kernelwright.hardware.profiles import DATASHEETS
    from kernelwright.tools.evaluate import resolve_device

    try:
        profile = resolve_profile(resolve_device(device))
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    if profile is None:
        console.print("this GPU matches no datasheet and was never calibrated: run "
                      "`kernelwright hw calibrate`")
    else:
        show_profile(profile)
    console.print(f"datasheet profiles: {', '.join(sorted(DATASHEETS))}")




def _problem_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """Files named, and files inside folders named, each with a label (path in its folder)."""
    files: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.py"))
            if not found:
                raise _fail(f"{path}: folder holds no .py problem files")
            files += [(f, str(f.relative_to(path).with_suffix(""))) for f in found]
        else:
            files.append((path, path.stem))
    return files


def _read_candidate(path: Path) -> str:
    if not path.is_file():
        raise CandidateFileError(f"{path}: candidate file not found. Fix: check the path.")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateFileError(f"{path}: cannot read the candidate ({exc}).") from None






def _store() -> Any:
    """The memory of the current config (KERNELWRIGHT_MEMORY__PATH / __URL, else the default)."""
    from kernelwright.config import RunConfig
    from kernelwright.memory.store import open_store

    try:
        return open_store(RunConfig().memory)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None




@memory_app.command("stats")
def memory_stats() -> None:
    """How many experiences, per stage and outcome, and where they live."""
    from collections import Counter

    store = _store()
    experiences = store.all()
    console.print(f"{store.where} ({store.collection}): {len(experiences)} experience(s), "
                  f"embedder {store.embedder.name}")
    for (stage, status), n in sorted(Counter((e.stage, e.outcome.status)
                                             for e in experiences).items()):
        console.print(f"  {stage:7} {status:14} {n}")


@memory_app.command("search")
def memory_search(query: Annotated[str, typer.Argument(help="text to match")],
                  n: Annotated[int, typer.Option(help="how many")] = 10) -> None:
    """Experiences most similar to QUERY."""
    experience_table(f"memory: {query}", _store().search(query, n))


@memory_app.command("show")
def memory_show(exp_id: Annotated[str, typer.Argument(help="an id, or its first characters")]
                ) -> None:
    """One experience in full (JSON)."""
    store = _store()
    found = [e for e in store.all() if e.id.startswith(exp_id)]
    if len(found) != 1:
        raise _fail(f"{len(found)} experiences have an id starting with '{exp_id}'. Fix: give "
                    "more characters (see `kernelwright memory search`).")
    console.print_json(found[0].model_dump_json())


@memory_app.command("export")
def memory_export(file: Annotated[Path, typer.Argument(help="JSON lines file to write")]) -> None:
    """Write every experience to FILE (one JSON object per line)."""
    console.print(f"exported {_store().export(file)} experience(s) to {file}")


@memory_app.command("import")
def memory_import(file: Annotated[Path, typer.Argument(help="a file from `memory export`")]
                  ) -> None:
    """Add the experiences of FILE (re-embedded; same ids are replaced)."""
    try:
        n = _store().import_(file)
    except KernelwrightError as exc:
        raise _fail(str(exc)) from None
    console.print(f"imported {n} experience(s) from {file}")


@memory_app.command("reset")
def memory_reset(yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete every experience."""
    store = _store()
    if not yes and not typer.confirm(f"delete all {store.count()} experiences in {store.where}?"):
        raise typer.Exit(1)
    store.reset()
    console.print(f"{store.where}: memory reset")


def _interrupted(how: str) -> typer.Exit:
    """Ctrl-C: every evaluation this command started is ended; say how to go on."""
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]interrupted:[/] every process this "
                                               f"command started is ended; {escape(how)}",
                                               highlight=False)
    return typer.Exit(130)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
