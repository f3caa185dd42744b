"""The report pages in a real browser: Debian's Chromium, headless, driven by Selenium through
the system's chromedriver (scripts/test.sh installs both). The tree and the table render, a
click on a node shows that candidate's source, and a screenshot of each page is saved
(KERNELWRIGHT_SCREENSHOTS=DIR copies them there: how the README's pictures were made)."""

import os
import shutil
from pathlib import Path

import pytest

from kernelwright.core.records import Result
from kernelwright.report.html import write_report

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium and chromedriver on this machine (scripts/test.sh "
    "installs Debian's packages chromium and chromium-driver where it runs as root with apt-get)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def copied(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "reports")
    return tmp_path / "reports"


def keep(shot: Path) -> None:
    where = os.environ.get("KERNELWRIGHT_SCREENSHOTS")
    if where:
        shutil.copy(shot, Path(where) / shot.name)


def test_a_run_page_draws_the_tree_and_a_click_shows_the_source(browser, tmp_path):
    from selenium.webdriver.common.by import By

    folder = copied(tmp_path) / "cpu-run"  # 6 candidates over 3 rounds, the cpu backend's times
    result = Result.model_validate_json((folder / "summary.json").read_text())
    page = write_report(folder)[0]
    browser.get(page.as_uri())
    tree = browser.find_element(By.ID, "tree")
    nodes = tree.find_elements(By.CSS_SELECTOR, "button.node")
    assert len(nodes) == len(result.tree) and all(n.is_displayed() for n in nodes)
    refined = next(c for c in result.tree if c.parent is not None and c.source)
    node = browser.find_element(By.ID, f"node-{refined.id}")
    assert node in tree.find_element(By.ID, f"node-{refined.parent}").find_elements(
        By.XPATH, "./following-sibling::ul//button")  # drawn under its parent
    detail = browser.find_element(By.ID, f"detail-{refined.id}")
    assert not detail.is_displayed()  # only the best's details show at first
    node.click()
    assert detail.is_displayed() and "selected" in node.get_attribute("class")
    shown = detail.find_element(By.CSS_SELECTOR, "pre.source").text
    assert shown.splitlines()[:5] == refined.source.splitlines()[:5]
    assert "diff to #" in detail.text  # and its change against its parent
    assert browser.find_element(By.CSS_SELECTOR, "svg").is_displayed()  # the rounds chart
    shot = tmp_path / "report-run.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep(shot)


def test_a_suite_page_shows_the_table_with_failures_and_links(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page = write_report(copied(tmp_path) / "bench")[0]
    browser.get(page.as_uri())
    rows = browser.find_element(By.ID, "problems").find_elements(By.CSS_SELECTOR, "tr")[1:]
    assert len(rows) >= 3
    failed = [r for r in rows if "failed-row" in r.get_attribute("class")]
    assert failed and all("uncovered" in r.text or ":" in r.text for r in failed)
    browser.find_element(By.LINK_TEXT, "level2/06_matmul_sum_rows").click()
    assert browser.find_element(By.ID, "tree").is_displayed()  # the problem's own run page
    # the H100 bench's table (times, speedups, failures) is the README's picture
    browser.get(write_report(copied(tmp_path / "h100") / "h100-bench")[0].as_uri())
    assert len(browser.find_element(By.ID, "problems").find_elements(By.CSS_SELECTOR, "tr")) > 10
    shot = tmp_path / "report-suite.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep(shot)
