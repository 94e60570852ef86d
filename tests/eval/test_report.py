"""Reports over several runs: PNG, Markdown/JSON table with stated parameters, and the HTML page, which is
opened in headless Chromium (Debian's `chromium`; skipped with the reason where it is not installed)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from moalign.eval.family import SharedModelFamily
from moalign.eval.harness import evaluate
from moalign.eval.report import report_command, write_report
from moalign.models.load import load_tokenizer
from moalign.pipeline import Run
from moalign.plot import COLORS, preference_label

from .conftest import KnownFrontFamily, make_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_lm_dir):
    """Two evaluated runs on the same objectives: a family with a spread front and the base model alone."""
    from .conftest import GOLDEN, PROMPTS, CharCount

    root = tmp_path_factory.mktemp("report_runs")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "golden": g}) + "\n" for p, g in zip(PROMPTS, GOLDEN)))
    rewards = [CharCount("letters_e", "e"), CharCount("spaces", " ")]
    # "ee  x x x x x x x x" is repetitive, "eeeeeeeeee " short: 4 of the 5 points are degenerate (not w=(.75,.25):
    # "eeeeeeee  x x"); the run keeps them in its indicators
    known = make_config(root / "spread", tiny_lm_dir, str(prompts), grid="simplex:4", include_degenerate=True)
    evaluate(known, KnownFrontFamily(load_tokenizer(tiny_lm_dir), ("e", " x")), Run(known.run_dir, echo=None), rewards)
    base = make_config(root / "base", tiny_lm_dir, str(prompts), grid="simplex:4")
    evaluate(base, SharedModelFamily("base", tiny_lm_dir), Run(base.run_dir, echo=None), rewards)
    return [root / "spread", root / "base"]


def test_report_files_tables_and_comparison_metrics(two_runs, tmp_path):
    from moalign.pareto import hypervolume

    out = write_report(two_runs, tmp_path / "rep")
    for name in ("fronts.png", "metrics.md", "metrics.json", "index.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    summary = json.loads((out / "metrics.json").read_text())
    assert [r["label"] for r in summary["runs"]] == ["spread", "base"]
    shared = np.array(summary["comparison"]["hv_shared"]["reference"])
    refs = [np.array(r["metrics"]["hypervolume"]["reference"]) for r in summary["runs"]]
    np.testing.assert_allclose(shared, np.minimum(*refs))
    for run in summary["runs"]:
        points = np.array([p["mean"] for p in run["points"]])
        assert summary["comparison"]["hv_shared"]["value"][run["label"]] == pytest.approx(hypervolume(points, shared))
    assert set(summary["comparison"]["igd_union"]["value"]) == {"spread", "base"}
    table = (out / "metrics.md").read_text()
    assert table.splitlines()[0].startswith("| run | hv (own ref) |") and "| spread |" in table and "| base |" in table
    assert "Parameters:" in table and "hv reference" in table
    assert "| ⚠ 4/5 included |" in table and "| 0/5 |" in table  # spread keeps its degenerate points; base has none
    assert "**Warning** spread: 4/5 preference points are degenerate" in table and "**Warning** base" not in table
    page = (out / "index.html").read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert page.count('class="pt"') == 10 and preference_label([0.25, 0.75]) in page


def test_mismatched_objectives_and_default_output(two_runs, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(two_runs[1], other)
    path = other / "eval/metrics/metrics.json"
    result = json.loads(path.read_text())
    result["objectives"] = ["x", "y"]
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="same objectives"):
        write_report([two_runs[0], other], tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="evaluate it first"):
        write_report([tmp_path], tmp_path / "bad")
    assert report_command([str(two_runs[1])], None) == 0
    assert "base/report/index.html" in capsys.readouterr().out



def test_report_out_never_replaces_an_existing_folder_without_overwrite(two_runs, tmp_path):
    from moalign.cli import main

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["report", str(two_runs[0]), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # untouched
    assert main(["report", str(two_runs[0]), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fronts.png", "index.html", "metrics.json", "metrics.md"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left beside it

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args, timeout=120):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
def test_html_report_draws_in_chromium_and_a_click_shows_generations(two_runs, tmp_path):
    import matplotlib.image as mpimg

    out = write_report(two_runs, tmp_path / "rep")
    url = (out / "index.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1300,1100", url)
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.std() > 0.05, "the screenshot is blank"
    for index in (0, 1):  # both series are drawn in their colours
        rgb = np.array([int(COLORS[index][k : k + 2], 16) / 255 for k in (1, 3, 5)])
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.04).sum() > 100, f"no pixels of series {index}'s colour"
    # "#run=0&point=P" selects a point exactly as a click does; the generations of w=(1, 0) appear
    points = json.loads((two_runs[0] / "eval/metrics/metrics.json").read_text())["points"]
    index = [p["w"] for p in points].index([1.0, 0.0])
    dom = _chromium("--dump-dom", "--virtual-time-budget=3000", url + f"#run=0&point={index}").stdout
    details = dom[dom.index('id="details"') :]
    assert "spread  w = (1,0)" in details and "eeeeeeeeee" in details and "No point selected" not in details


def test_html_embeds_hostile_generations_as_json_the_page_parser_cannot_break():
    from moalign.eval.html import page_data, render_html
    from moalign.eval.report import RunResult

    hostile = ["<!--<script>", "</script><script>alert(1)</script>", "a & b > c <b>", "line\u2028sep\u2029", "é ✓"]
    points = [{"key": f"w{i}", "w": [i / 2, 1 - i / 2], "mean": [float(i), 1.0 - i], "se": [0.0, 0.0], "n": 2,
               "collapse_rate": 0.0} for i in range(3)]
    samples = {p["key"]: [{"index": j, "prompt": text, "response": text + "!", "scores": {"a": 1.0, "b": 2.0},
                           "collapsed": False} for j, text in enumerate(hostile)] for p in points}
    run = RunResult("<run>", None, {"objectives": ["a", "b"], "points": points}, samples)
    page = render_html([run], ["run"], [["x"]])
    open_tag = '<script type="application/json" id="data">'
    start = page.index(open_tag) + len(open_tag)
    embedded = page[start : page.index("</script>", start)]
    assert json.loads(embedded) == json.loads(json.dumps(page_data([run])))  # every byte of every generation back
    for sequence in ("<!--", "<script", "</script", "\u2028", "\u2029", "<", ">", "&"):
        assert sequence not in embedded
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data element and the page's script
