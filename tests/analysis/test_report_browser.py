"""Open report.html in headless Chromium: every image loads and the console has no errors.

Chromium comes from Debian's ``chromium`` package, which ``make test`` installs when it can
(root or passwordless sudo); without it this test is skipped and says why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from test_analysis_report import random_sweep

from analysis.report import write_report

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (make test installs Debian's chromium package when it "
    "runs as root or with passwordless sudo)",
)

# A page next to the report that frames it and writes what it finds into the DOM, which
# --dump-dom prints. --allow-file-access-from-files lets it read the framed file:// page.
HARNESS = """<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="report.html" width="1200" height="900"></iframe><script>
document.getElementById("f").addEventListener("load", () => {
  const doc = document.getElementById("f").contentDocument;
  const images = Array.from(doc.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  document.getElementById("out").textContent = JSON.stringify(
    {images: images.length, broken: broken, title: doc.title});
});
</script></body></html>"""


def open_in_chromium(folder):
    """Frame ``folder/report.html``; returns (what the frame found, console lines)."""
    (folder / "harness.html").write_text(HARNESS)
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--allow-file-access-from-files",
            f"--user-data-dir={folder / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            (folder / "harness.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"')), console


def test_report_opens_in_chromium_with_every_image_and_no_console_error(tmp_path):
    write_report(random_sweep(), tmp_path)
    result, console = open_in_chromium(tmp_path)
    assert result["title"].startswith("Frontier report")
    assert result["images"] == 5 and result["broken"] == []
    assert console == []


def test_the_check_sees_a_broken_image_and_a_console_error(tmp_path):
    write_report(random_sweep(), tmp_path)
    page = tmp_path / "report.html"
    broken = '<img alt="gone" src="gone.png"><script>console.error("probe")</script></body>'
    page.write_text(page.read_text().replace("</body>", broken))
    result, console = open_in_chromium(tmp_path)
    assert result["broken"] == ["gone"]
    assert any('"probe"' in line for line in console)
