"""The README's picture of the build report: docs/report_mobilenetv2.png.

Builds examples/mobilenetv2.py for the Cortex-M4 with --profile and --report into a temporary folder,
opens report.html in headless chromium (a copy whose code box is scrolled to the first op's function,
and which records where each section is), takes one tall screenshot and stacks the summary, the top
of the layer table, the memory plot, the flash breakdown and that piece of linked source into one
small PNG.

    python bench/report_screenshot.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "report_mobilenetv2.png"
WIDTH = 1280
PROBE = """<script>
window.addEventListener('load', function () {
  var first = document.querySelector('a.fn-link');
  var target = document.getElementById(first.getAttribute('href').slice(1));
  var box = target.closest('.code');
  box.scrollTop = target.offsetTop - box.offsetTop - 40;
  var where = {};
  ['summary', 'layers', 'memory', 'flash', 'sources'].forEach(function (id) {
    var r = document.getElementById(id).getBoundingClientRect();
    where[id] = [r.top + window.scrollY, r.bottom + window.scrollY];
  });
  var f = document.querySelector('#flash .figure').getBoundingClientRect();
  where.flashfig = [f.top + window.scrollY, f.bottom + window.scrollY];
  var r = box.getBoundingClientRect();
  where.code = [r.top + window.scrollY, r.bottom + window.scrollY];
  where.height = document.documentElement.scrollHeight;
  document.body.setAttribute('data-where', JSON.stringify(where));
});
</script></body>"""


def chromium(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={WIDTH},{args[0]}", *args[1:]], capture_output=True, text=True,
                          timeout=300)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mobilenetv2"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        subprocess.run([sys.executable, "-m", "codegen.cli", "build", str(ROOT / "examples" / "mobilenetv2.py"),
                        "--device", "cortex-m4", "--profile", "--out", str(out), "--report"], check=True, env=env,
                       capture_output=True)
        page = Path(tmp) / "page.html"
        page.write_text((out / "report.html").read_text().replace("</body>", PROBE))
        dom = chromium(1000, "--virtual-time-budget=3000", "--dump-dom", page.as_uri()).stdout
        start = dom.index('data-where="') + len('data-where="')
        where = json.loads(dom[start: dom.index('"', start)].replace("&quot;", '"'))
        shot = Path(tmp) / "shot.png"
        chromium(int(where["height"]) + 10, f"--screenshot={shot}", page.as_uri())
        image = Image.open(shot).convert("RGB")

        def piece(top, bottom):
            return image.crop((0, int(top), WIDTH, int(bottom)))

        layers = where["layers"]
        parts = [piece(0, where["summary"][1]), piece(layers[0], layers[0] + 520),
                 piece(*where["memory"]), piece(where["flash"][0], where["flashfig"][1]), piece(where["code"][0] - 30, where["code"][0] + 300)]
        height = sum(p.height for p in parts) + 12 * (len(parts) - 1)
        sheet = Image.new("RGB", (WIDTH, height), "#94a3b8")
        y = 0
        for p in parts:
            sheet.paste(p, (0, y))
            y += p.height + 12
        scale = 900 / WIDTH
        sheet = sheet.resize((900, int(height * scale)), Image.LANCZOS)
        sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
