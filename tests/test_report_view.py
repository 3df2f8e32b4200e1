"""`tinyllava-bench view`: the page is built from a real `eval` run and checked in a real headless Chromium
(Debian's chromium + chromedriver, driven by Selenium): it loads, its filters and search give the counts the run
folder holds, a comparison shows the samples that flipped, and hostile model output stays text."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.report.view import _embedded_json, build_view, write_view

ROWS = 12
# what a model could answer to break out of the page: end the data block, run a script, fire an onerror handler
HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><!-- &amp;'
NEEDLE = "zebra-needle-7731"  # a prediction text nothing else in the run contains


def read_samples(run: Path, task: str) -> list[dict]:
    lines = (run / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_samples(run: Path, task: str, records: list[dict]) -> None:
    text = "".join(json.dumps(record) + "\n" for record in records)
    (run / f"samples_{task}.jsonl").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoints) -> dict[str, Path]:
    """A real eval run of POPE and GQA (images embedded in the local data), and a second run folder that is the
    same run with known samples flipped, one hostile prediction, one searchable prediction, one error and one
    judge error."""
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("view")
    data = root / "data"
    for task in ("pope", "gqa"):
        write_task_data(task, data, n=ROWS, seed=3)
    checkpoint = tiny_checkpoints("llama", "siglip")["native"]
    run = root / "run"
    argv = ["eval", "--model", str(checkpoint), "--tasks", "pope,gqa", "--data-root", str(data)]
    argv += ["--output", str(run), "--num-workers", "0", "--batch-size", "4"]
    assert main([*argv, "--task-options", "generation.max_new_tokens=4"]) == 0

    other = root / "other"
    shutil.copytree(run, other)
    pope = read_samples(other, "pope")
    for record in pope[:5]:  # five samples scored the other way round: each one flips
        record["score"] = 1.0 - record["score"]
    write_samples(other, "pope", pope)
    mine = read_samples(run, "pope")
    mine[6]["prediction"] = HOSTILE
    mine[7]["prediction"] = NEEDLE
    mine[8]["prediction"], mine[8]["score"], mine[8]["error"] = None, None, "image: the file is truncated"
    mine[9]["judge_error"] = "the judge gave no score in 3 answer(s)"
    write_samples(run, "pope", mine)
    return {"run": run, "other": other, "data": data}


def find_browser() -> tuple[str, str] | None:
    binary = next(
        (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None
    )
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium. CI installs it (.ci/run), so there a missing browser fails the test; elsewhere it skips."""
    found = find_browser()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        found = None
    if found is None:
        reason = (
            "needs chromium, chromedriver (apt-get install chromium chromium-driver) and selenium (.[dev])"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors for a failure's message
    driver = webdriver.Chrome(options=options, service=Service(found[1]))  # the system driver, no download
    yield driver
    driver.quit()


def open_page(browser, path: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.resolve().as_uri())
    ready = "return [document.readyState, document.body ? document.body.dataset.ready : null]"
    try:  # a wait, not a timing assertion: the page must come up, however slowly the shared machine runs
        WebDriverWait(browser, 120).until(lambda driver: driver.execute_script(ready)[1] == "1")
    except TimeoutException:
        state = browser.execute_script(ready)
        raise AssertionError(
            f"the page's script did not finish: {state}, {browser.get_log('browser')}"
        ) from None


def choose(browser, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", element_id)).select_by_value(value)


def shown_count(browser) -> int:
    return int(browser.find_element("id", "count").get_attribute("data-count"))


def row_samples(browser) -> list[tuple[str, int]]:
    """(task, row index) of each table row on the current page, read from the page's own text."""
    rows = browser.find_elements("css selector", "#rows tr")
    out = []
    for row in rows:
        task, number = (
            row.find_element("css selector", "td div").text,
            row.find_elements("css selector", "td div")[1],
        )
        out.append((task, int(number.text.split()[0].lstrip("#"))))
    return out


def test_page_loads_with_metrics_and_thumbnails(runs, browser):
    page, view = write_view(runs["run"])
    assert page == runs["run"] / "view.html"
    open_page(browser, page)
    assert shown_count(browser) == 2 * ROWS
    results = json.loads((runs["run"] / "results.json").read_text())
    for task in ("pope", "gqa"):
        row = browser.find_element("css selector", f'#metrics tr[data-task="{task}"]')
        entry = results["tasks"][task]
        assert (
            row.find_element("css selector", "td.headline").text
            == f"{entry['metrics'][entry['headline']]:.2f}"
        )
    # every sample's image was found the way the run found it (its --data-root) and drawn
    assert view["n_thumbnailed"] == 2 * ROWS and not view["notes"]
    images = browser.find_elements("css selector", "#rows td.thumb img")
    assert len(images) == 2 * ROWS
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
    # the exact prompt the model saw, and the gold answer from the sample's fields
    first = read_samples(runs["run"], "pope")[0]
    cells = browser.find_elements("css selector", "#rows tr")[0]
    assert cells.find_element("css selector", "td.prompt").text == first["prompt"].strip()
    assert cells.find_element("css selector", "td.gold div").text == first["fields"]["answer"]


def test_filters_and_search_give_the_run_folders_counts(runs, browser):
    page, _ = write_view(runs["run"])
    open_page(browser, page)
    pope, gqa = read_samples(runs["run"], "pope"), read_samples(runs["run"], "gqa")

    choose(browser, "task", "pope")
    assert shown_count(browser) == len(pope)
    assert {task for task, _ in row_samples(browser)} == {"pope"}
    choose(browser, "outcome", "right")
    assert shown_count(browser) == sum(1 for r in pope if r["score"] == 1.0)
    choose(browser, "outcome", "wrong")
    assert shown_count(browser) == sum(1 for r in pope if r["score"] == 0.0)
    choose(browser, "outcome", "unscored")
    assert row_samples(browser) == [("pope", 8)]
    choose(browser, "outcome", "")

    choose(browser, "category", "adversarial")
    assert shown_count(browser) == sum(1 for r in pope if r["fields"]["category"] == "adversarial")
    choose(browser, "category", "")
    choose(browser, "errors", "any")
    assert row_samples(browser) == [("pope", 8), ("pope", 9)]
    problems = [
        row.find_elements("css selector", "td")[-1].text
        for row in browser.find_elements("css selector", "#rows tr")
    ]
    assert problems == [
        "error: image: the file is truncated",
        "judge error: the judge gave no score in 3 answer(s)",
    ]
    choose(browser, "errors", "none")
    assert shown_count(browser) == len(pope) - 2
    choose(browser, "errors", "")

    choose(browser, "task", "gqa")
    assert shown_count(browser) == len(gqa)
    choose(browser, "task", "")
    search = browser.find_element("id", "search")
    search.send_keys(NEEDLE.upper())  # case-insensitive
    assert row_samples(browser) == [("pope", 7)]
    choose(browser, "task", "gqa")
    assert shown_count(browser) == 0


def test_hostile_prediction_is_shown_as_text(runs, browser):
    page, _ = write_view(runs["run"])
    open_page(browser, page)
    browser.find_element("id", "search").send_keys("window.__pwned")
    rows = browser.find_elements("css selector", "#rows tr")
    assert len(rows) == 1
    cell = rows[0].find_element("css selector", "td.mine div.prediction")
    assert browser.execute_script("return arguments[0].textContent", cell) == HOSTILE
    assert cell.find_elements("css selector", "*") == []  # no <img>, no <script> made from it
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    # the raw page never holds the text `</script>` inside the data block
    html = page.read_text(encoding="utf-8")
    data_block = html.split('<script type="application/json" id="view-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data_block)["samples"][6]["y"] == HOSTILE


def test_comparison_shows_the_flipped_samples(runs, browser):
    page, view = write_view(runs["run"], compare=runs["other"])
    assert page == runs["run"] / "view-vs-other.html"
    open_page(browser, page)
    mine, theirs = read_samples(runs["run"], "pope"), read_samples(runs["other"], "pope")
    by_index = {r["index"]: r for r in theirs}
    right_here = [r["index"] for r in mine if r["score"] == 1.0 and by_index[r["index"]]["score"] != 1.0]
    right_there = [r["index"] for r in mine if r["score"] != 1.0 and by_index[r["index"]]["score"] == 1.0]
    assert right_here and right_there  # the fixture flipped both ways

    choose(browser, "flips", "flipped")
    assert sorted(row_samples(browser)) == sorted(("pope", i) for i in right_here + right_there)
    choose(browser, "flips", "a")
    assert sorted(i for _, i in row_samples(browser)) == sorted(right_here)
    choose(browser, "flips", "b")
    assert sorted(i for _, i in row_samples(browser)) == sorted(right_there)
    # side by side: the other run's answer and score in the same row
    row = browser.find_elements("css selector", "#rows tr")[0]
    index = row_samples(browser)[0][1]
    assert row.find_element("css selector", "td.theirs div.prediction").text == by_index[index]["prediction"]
    choose(browser, "flips", "changed")
    assert sorted(i for _, i in row_samples(browser)) == [6, 7, 8]  # the three predictions edited in `run`
    assert sum(1 for s in view["samples"] if s["x"] in "ab" and s["x"]) == len(right_here) + len(right_there)


def test_ten_thousand_samples_are_paginated(tmp_path, browser):
    """A hand-written run folder (docs/run_folder.md) of 12,345 samples: one page of rows in the DOM at a time."""
    run = tmp_path / "big"
    run.mkdir()
    results = {
        "schema_version": 1,
        "model": {"name": "hand-written", "source": "none", "layout": "native", "card": {}},
        "tasks": {"pope": {"metrics": {"f1": 50.0}, "headline": "f1", "n_samples": 12345, "n_errors": 0}},
    }
    (run / "results.json").write_text(json.dumps(results))
    records = [
        {
            "index": i,
            "question_id": str(i),
            "prompt": f"question {i}",
            "prediction": "yes" if i % 3 else "no",
            "parsed": None,
            "score": float(i % 2),
            "error": None,
            "fields": {"answer": "yes", "category": "random"},
        }
        for i in range(12345)
    ]
    write_samples(run, "pope", records)
    page, view = write_view(run, thumbnails=False)
    assert view["notes"] == ["thumbnails were turned off (--no-thumbnails)"]
    open_page(browser, page)
    assert shown_count(browser) == 12345
    assert len(browser.find_elements("css selector", "#rows tr")) == 50
    choose(browser, "outcome", "right")
    assert shown_count(browser) == 12345 // 2
    browser.find_element("id", "next").click()
    assert row_samples(browser)[0] == ("pope", 101)  # the 51st right answer
    choose(browser, "pagesize", "250")
    assert len(browser.find_elements("css selector", "#rows tr")) == 250
    assert browser.find_element("id", "page").text == "page 1 of 25"


def test_moved_data_means_no_thumbnails_and_a_note(runs, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(runs["run"], moved)
    results = json.loads((moved / "results.json").read_text())
    results["config"]["data_root"] = str(tmp_path / "gone")
    (moved / "results.json").write_text(json.dumps(results))
    view = build_view(moved, progress=False)
    assert view["n_thumbnailed"] == 0 and view["thumbs"] == []
    assert [note.split(":")[0] for note in view["notes"]] == ["pope", "gqa"]
    assert all("pass --data-root DIR" in note for note in view["notes"])
    # told where the data went, it finds the images again (checked against the recorded fingerprint)
    assert build_view(moved, data_root=runs["data"], progress=False)["n_thumbnailed"] == 2 * ROWS


def test_other_data_is_refused_for_thumbnails(runs, tmp_path):
    from tinyllava_bench.testing.datasets import write_task_data

    other_data = tmp_path / "other-data"
    for task in ("pope", "gqa"):
        write_task_data(task, other_data, n=ROWS, seed=4)  # same shape, other rows: other fingerprint
    view = build_view(runs["run"], data_root=other_data, progress=False)
    assert view["n_thumbnailed"] == 0
    assert all("is not the data this run read" in note for note in view["notes"])


def test_embedded_json_cannot_close_the_script():
    text = _embedded_json({"y": "</script><!-- <script> & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"y": "</script><!-- <script> & \u2028"}


def test_cli_writes_the_page_and_opens_it(runs, tmp_path, monkeypatch, capsys):
    import webbrowser

    opened = tmp_path / "opened.txt"
    helper = f"import pathlib, sys; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    monkeypatch.setenv("BROWSER", f"{sys.executable} -c {json.dumps(helper)} %s")
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read BROWSER
    out = tmp_path / "page.html"
    argv = ["view", str(runs["run"]), "--compare", str(runs["other"]), "--output", str(out), "--open"]
    assert main([*argv, "--no-thumbnails"]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out}: {2 * ROWS} sample(s) of 2 task(s), 0 with a thumbnail" in err
    assert "flipped" in err
    assert out.is_file() and opened.read_text() == out.resolve().as_uri()


def test_user_errors_are_one_line(runs, tmp_path, capsys):
    assert main(["view", str(tmp_path / "nothing")]) == 2
    assert main(["view", str(runs["run"]), "--compare", str(runs["run"])]) == 2
    assert main(["view", str(runs["run"]), "--data-root", str(tmp_path / "none")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "is the run being viewed" in lines[1] and "--data-root" in lines[2]
