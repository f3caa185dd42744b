"""The HTML reports, rendered from recorded trees (tests/data/reports: a `kernelwright bench`
of three problems with the offline policy on the CPU, each problem's run kept; a run with the
cpu backend, timed, over three rounds; a run and a bench's table recorded on an H100): every
candidate present with its verdict, failures with their reasons, the figures as the summaries
hold them."""

import json
import shutil
from pathlib import Path

import pytest
from markupsafe import escape
from typer.testing import CliRunner

from kernelwright.cli.app import app
from kernelwright.core.records import Result
from kernelwright.report.html import write_report
from kernelwright.suite.records import ProblemRecord, SuiteSummary
from kernelwright.suite.report import summary_lines

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"


def esc(text: str) -> str:
    """Text as the page holds it (escaped as Jinja2 escapes it)."""
    return str(escape(text))


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "reports")
    return tmp_path / "reports"


def runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("summary.json"))


def test_a_run_page_holds_every_candidate_its_verdict_source_and_the_reference(reports):
    for folder in [*runs(reports / "bench" / "runs"), reports / "cpu-run", reports / "h100-run"]:
        result = Result.model_validate_json((folder / "summary.json").read_text())
        page = write_report(folder)[0].read_text()
        assert page.startswith("<!doctype html>") and "http" not in page.split("<body>")[0]
        for c in result.tree:
            assert f'id="node-{c.id}"' in page and f'id="detail-{c.id}"' in page
            assert esc(c.change) in page and c.status.value in page
            if c.reason:
                assert esc(c.reason) in page
            if c.source:
                assert esc(c.source) in page
            if c.lesson:
                assert esc(c.lesson) in page
            for item in c.memory:
                assert item in page
        if result.best is not None:
            assert f'id="best"><code>{esc(result.best.source or "")}' in page
            assert esc(result.reference) in page or not result.reference  # (an older recording)
        else:
            assert "No correct candidate." in page
        assert page.count("<svg") == 1  # the rounds chart, inline


def test_every_round_is_held_to_the_first_eager_figure(reports):
    """The cpu-backend run's candidates each timed eager anew (8.0 to 12.1 ms): the rounds chart
    and table use the first figure for every round, so a faster kernel never looks slower."""
    folder = reports / "cpu-run"
    result = Result.model_validate_json((folder / "summary.json").read_text())
    eagers = [c.eager_us for c in result.tree if c.eager_us]
    assert len(set(eagers)) > 1  # the recording has several
    rounds = write_report(folder)[0].read_text().split('id="rounds"')[1].split("</table>")[0]
    assert rounds.count(f"{eagers[0]:.4g}") == len({c.round for c in result.tree})
    assert not any(f"{e:.4g}" in rounds for e in eagers[1:])


def test_a_run_page_shows_the_rounds_against_one_set_of_baselines(reports):
    """The recorded H100 run has timings: each round's best time, and one eager, compile and
    floor figure for the whole run, as its summary holds them."""
    folder = reports / "h100-run"
    result = Result.model_validate_json((folder / "summary.json").read_text())
    page = write_report(folder)[0].read_text()
    rounds = page.split('id="rounds"')[1].split("</table>")[0]
    timed = [c for c in result.tree if c.correct and c.runtime_us]
    assert f"{min(c.runtime_us for c in timed):.4g}" in rounds
    floor = next(c.runtime_us * c.sol_fraction for c in timed if c.sol_fraction)
    assert f"{floor:.4g}" in rounds  # the floor of the first measured candidate, every round
    for key in ("eager_us", "compile_us"):  # this recording predates per-candidate baselines
        first = next((getattr(c, key) for c in result.tree if getattr(c, key)), None)
        assert rounds.count(f"{first:.4g}" if first else "-") >= rounds.count("<tr") - 1
    assert f"#{result.best.id}" in page and f"{result.best.runtime_us:.4g} us" in page
    for c in result.tree:  # every node with its time and SOL fraction
        node = page.split(f'id="node-{c.id}"')[1].split("</button>")[0]
        assert f"{c.runtime_us:.4g} us" in node and f"SOL {c.sol_fraction:.2f}" in node


def test_a_suite_page_lists_every_problem_with_failures_and_the_summary(reports):
    folder = reports / "bench"
    data = json.loads((folder / "results.json").read_text())
    records = [ProblemRecord.model_validate(r) for r in data["problems"]]
    summary = SuiteSummary.model_validate(data["summary"])
    pages = write_report(folder)
    page = pages[0].read_text()
    assert len(pages) == 1 + len(runs(folder / "runs"))  # every problem's run page beside it
    table = page.split('id="problems"')[1].split("</table>")[0]
    assert table.count("<tr") == len(records) + 1
    for r in records:
        assert esc(r.verdict()) in table
        if (folder / "runs" / r.problem / "summary.json").is_file():
            assert f'href="runs/{r.problem}/report.html"' in table
    assert any(not r.correct and r.reason for r in records)  # the fixture has a failure
    for line in summary_lines(summary):
        assert esc(line) in page


def test_the_h100_suite_table_shows_the_recorded_figures(reports):
    folder = reports / "h100-bench"
    data = json.loads((folder / "results.json").read_text())
    page = write_report(folder)[0].read_text()
    table = page.split('id="problems"')[1].split("</table>")[0]
    rows = table.split("<tr")[2:]
    assert len(rows) == len(data["problems"])
    for row, r in zip(rows, data["problems"], strict=True):
        assert r["problem"] in row
        for key in ("eager_us", "compile_us", "best_us"):
            assert (f"{r[key]:.1f}" if r[key] is not None else "-") in row
        if r["speedup_eager"] is not None and not r.get("within_noise"):
            assert f"{r['speedup_eager']:.2f}x" in row
        if r["status"] != "correct":
            assert "failed-row" in row.split(">")[0] and esc(r["status"]) in row
    geomean = data["summary"]["geomean_speedup_eager"]
    assert f"{geomean:.2f}x vs eager" in page


def test_report_command_writes_the_page_and_refuses_a_wrong_folder(reports, tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["report", str(reports / "bench")])
    assert done.exit_code == 0, done.output
    assert (reports / "bench" / "report.html").is_file() and "report:" in done.output
    wrong = runner.invoke(app, ["report", str(tmp_path)])
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output  # _fail: a user mistake
    assert "holds neither summary.json" in wrong.output and "Fix:" in wrong.output


def test_the_bench_plot_marks_a_failed_problem_with_its_reason(reports):
    from kernelwright.suite.report import figure

    data = json.loads((reports / "h100-bench" / "results.json").read_text())
    records = [ProblemRecord.model_validate(r) for r in data["problems"]]
    texts = [t.get_text() for ax in figure(records, "t").axes for t in ax.texts]
    failed = [r for r in records if not r.correct]
    assert failed and all(any(r.verdict()[:30] in t for t in texts) for r in failed)


def test_report_command_logs_the_page_to_the_runs_mlflow_run(reports, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("reports")).info.run_id
    folder = reports / "cpu-run"
    data = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**data, "mlflow_run_id": run_id}))
    config = tmp_path / "tracking.yaml"
    config.write_text(f"tracking: {{enabled: true, uri: '{uri}'}}\n")
    done = CliRunner().invoke(app, ["report", str(folder), "--config", str(config)])
    assert done.exit_code == 0, done.output
    logged = Path(client.download_artifacts(run_id, "report.html", str(tmp_path)))
    assert logged.read_text() == (folder / "report.html").read_text()


def test_mlflow_round_speedups_use_the_runs_first_eager_figure():
    """Each candidate times eager anew; the per-round speedup divides by the first figure, so
    a faster kernel in a later round never charts as a fall."""
    from kernelwright.core.records import Candidate
    from kernelwright.tracking import round_metrics

    first = Candidate(id=0, stage="draft", change="a", status="correct", runtime_us=100.0,
                      eager_us=200.0, round=1)
    later = Candidate(id=1, parent=0, stage="refine", change="b", status="correct",
                      runtime_us=80.0, eager_us=120.0, round=2)  # a slower eager measurement
    assert round_metrics([first], 0)["best_speedup_eager"] == 2.0
    assert round_metrics([first, later], 0)["best_speedup_eager"] == 2.5  # 200 / 80, not 1.5
