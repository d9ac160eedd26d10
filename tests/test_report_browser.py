"""The HTML report and comparison pages in real headless Chromium (Debian's ``chromium``).

The pages a user gets carry no script. The test loads a copy of each page with a probe script
(:data:`PROBE`) put first in its ``<head>``: on ``load`` it writes into ``<body>``'s data
attributes how many images the page has and how many decoded (``complete`` and
``naturalWidth > 0``), how many tables, and how many uncaught errors and ``console.error`` calls
happened. The test dumps the DOM after load (``--dump-dom``) and reads them, scans Chromium's log
(``--enable-logging=stderr``) for any console message, and takes a screenshot (of the page itself)
that must not be blank. A deliberately broken page checks that the probes do catch a failed image,
a script error and a console error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lifelong.experiments.config import from_dict
from lifelong.report import compare_runs, html_report
from lifelong.experiments.run import execute

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(apt-get install chromium; .ci/run installs it)"),
]
# Records, in data attributes on <body>, how the page loaded (read back from the dumped DOM).
PROBE = """<script>
window.__jsErrors = 0;
window.__consoleErrors = 0;
window.addEventListener("error", function () { window.__jsErrors += 1; });
(function () {
  var original = console.error;
  console.error = function () { window.__consoleErrors += 1; return original.apply(console, arguments); };
})();
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  var d = document.body.dataset;
  d.imagesTotal = String(images.length);
  d.imagesLoaded = String(loaded.length);
  d.tables = String(document.querySelectorAll("table").length);
  d.jsErrors = String(window.__jsErrors);
  d.consoleErrors = String(window.__consoleErrors);
  d.ready = "1";
});
</script>"""
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True)  # a fresh profile per run: no state shared between runs
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra,
           page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def with_probe(page: Path, out: Path) -> Path:
    """A copy of ``page`` (in ``out``) with :data:`PROBE` first in its ``<head>``."""
    text = page.read_text(encoding="utf-8")
    assert text.count("<head>") == 1, "the page has no single <head> to put the probe in"
    probed = out / f"probed-{page.name}"
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    return probed


def page_status(page: Path, tmp_path: Path) -> tuple[dict[str, str], str, list[str]]:
    """The page's load probes (``<body>`` data attributes), its dumped DOM, and its console lines."""
    probed = with_probe(page, tmp_path)
    res = chromium(probed, tmp_path / f"profile-dom-{page.stem}", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body is not None, res.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return attrs, res.stdout, console


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = []
    for learner in ("naive", "er"):
        cfg = from_dict({
            "name": learner, "seeds": [0, 1],
            "dataset": {"name": "blobs", "n_classes": 4, "n_per_class": 30, "n_test_per_class": 10},
            "scenario": {"name": "class_incremental", "n_chunks": 2},
            "model": {"kind": "mlp", "hidden": [16]}, "train": {"batch_size": 8, "lr": 0.1, "eval_every": 4},
            "learner": {"name": learner, **({"mem_size": 20} if learner == "er" else {})},
        })
        execute(cfg, root / learner)
        runs.append(root / learner)
    report = html_report(runs[1])
    compare = compare_runs(runs, root / "compare").html_path
    return {"report": report, "compare": compare, "root": root}


@pytest.mark.parametrize("which, tables", [("report", ("classic-metrics", "l2m-metrics")),
                                           ("compare", ("compare-classic", "compare-l2m"))])
def test_page_loads_without_errors_with_images_and_tables(pages, tmp_path, which, tables):
    attrs, dom, console = page_status(pages[which], tmp_path)
    assert attrs.get("ready") == "1", attrs  # the load handler ran
    assert console == [], console
    assert attrs["js-errors"] == "0" and attrs["console-errors"] == "0"
    assert attrs["images-total"] == "2" and attrs["images-loaded"] == "2"
    assert int(attrs["tables"]) >= len(tables)
    for table_id in tables:
        table = dom.split(f'id="{table_id}"')[1].split("</table>")[0]
        assert table.count("<tr>") >= 3  # a header and a row per run / metric


def test_screenshot_shows_the_rendered_page(pages, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    res = chromium(pages["report"], tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400",
                   "--hide-scrollbars")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = imread(shot)  # (H, W, 3 or 4) floats in [0, 1]
    assert pixels.shape[:2] == (2400, 1280)
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean()  # share of non-white pixels: text, tables, plots
    assert ink > 0.03, f"the screenshot is almost blank ({ink:.3%} ink)"
    colour = np.ptp(pixels[..., :3], axis=2) > 0.2  # saturated pixels: the heatmap and the curves
    assert colour.mean() > 0.01
    shutil.copy(shot, pages["root"] / "report-screenshot.png")  # kept beside the runs for a look


def test_the_probes_catch_a_broken_page(pages, tmp_path):
    broken = tmp_path / "broken.html"
    page = pages["report"].read_text()
    broken.write_text(page.replace("</body>", '<img src="missing.png"><script>console.error("boom");'
                                              "notAFunction();</script></body>"))
    attrs, _, console = page_status(broken, tmp_path)
    assert attrs["images-loaded"] == "2" and attrs["images-total"] == "3"
    assert attrs["js-errors"] == "1" and attrs["console-errors"] == "1"
    assert any("boom" in line for line in console) and any("notAFunction" in line for line in console)
