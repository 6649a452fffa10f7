"""The build report (issue 19): ``codegen build --report`` and ``codegen report``.

Two groups:

- the page's structure, read with Python's HTML parser (always run): self-contained, one row per
  layer, every code link landing on the line that defines the op's function and linking back, the
  memory peak and the flash breakdown, ``codegen report`` rendering the same page again, the
  Graphviz and plain graph layouts, CUDA and int8 pages;
- the page in a real browser (Debian's chromium, headless): it loads with no console error and its
  script runs to the end, the DOM has one row per layer, following a layer's link scrolls its C
  function's definition into view, and a screenshot (written under pytest's tmp_path) is not blank.
  Without chromium these skip, saying so (fail under CI: CODEGEN_CI=1).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import LayerError
from codegen.emit import render_files
from codegen.netfile import load
from codegen.output import MARKER
from codegen.plan import make_plan
from codegen.quant.verify import int8_per_layer, verify_int8
from codegen.report import build_page, gather, write_report
from codegen.report.graph import dot_source, plain_svg
from codegen.report.plots import occupancy, peak
from codegen.report.sources import elide_values, locate, weight_arrays
from conftest import require_tool
from netgen import random_chain, random_dag
from test_cli import invoke
from test_embedded import require_device

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LENET = EXAMPLES / "lenet.py"
BROWSER_TIMEOUT = 120


class Page(HTMLParser):
    """The elements of a page: ids, layer rows (id, their code link), links, scripts, text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict] = {}
        self.rows: list[str] = []
        self.row_links: dict[str, str] = {}
        self.links: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self._row = None
        self._capture: list | None = None
        self._depth = 0
        self.texts: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href", "xlink:href"):
            value = a.get(key) or ""
            if re.match(r"^(https?:)?//", value) or (tag == "link" and value):
                self.external.append(f"<{tag} {key}={value}>")
        if tag == "script":
            self.scripts += 1
            if a.get("src"):
                self.external.append(f"<script src={a['src']}>")
        if "id" in a:
            self.ids[a["id"]] = a
            if self._capture is None and a["id"].startswith("src-"):
                self._capture, self._capture_id, self._depth = [], a["id"], 0
        if self._capture is not None:
            self._depth += 1
        if tag == "tr" and "layer-row" in (a.get("class") or ""):
            self._row = a["id"][len("layer-"):]
            self.rows.append(self._row)
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
            if self._row is not None and "fn-link" in (a.get("class") or ""):
                self.row_links[self._row] = a["href"][1:]

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if self._capture is not None:
            self._depth -= 1
            if self._depth == 0:
                self.texts[self._capture_id] = "".join(self._capture)
                self._capture = None

    def handle_data(self, data):
        if self._capture is not None:
            self._capture.append(data)


@pytest.fixture(scope="module")
def lenet_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "lenet"
    result = invoke("build", LENET, "--out", out, "--report", "--per-layer")
    assert result.exit_code == 0, result.output
    assert re.search(r"report .*report\.html \([\d,]+ bytes, written in [\d.]+ s\)", result.output), result.output
    return out


def test_the_page_is_one_self_contained_file(lenet_report):
    text = (lenet_report / "report.html").read_text()
    page = Page(text)
    assert page.external == [], page.external
    assert "@import" not in text and "url(http" not in text
    assert page.scripts == 1 and "<svg" in text
    assert "{%" not in text and "{{ " not in text          # nothing left of the template


def test_one_row_per_layer_with_its_op_and_arena_place(lenet_report):
    net = load(LENET)
    page = Page((lenet_report / "report.html").read_text())
    assert page.rows == [layer.Name for layer in net.layers]
    facts = json.loads((lenet_report / "report.json").read_text())
    assert [layer["name"] for layer in facts["layers"]] == page.rows
    text = (lenet_report / "report.html").read_text()
    conv_row = text[text.index('id="layer-conv_1"'): text.index('id="layer-relu_1"')]
    # op 0 (convolution + ReLU + max pooling in one op), its pooled output at arena [0, 11520)
    assert "0 convpool" in conv_row and "0 + 11,520" in conv_row and "520" in conv_row
    assert "no code" in text[text.index('id="layer-classoutput_1"'):]
    # --per-layer: each op's relative error, in the row of the op's last layer
    errors = facts["per_layer"]["per_layer"]
    assert set(errors) == {"conv_1+relu_1", "maxpool_1", "fc_1", "softmax_1"}
    relu_row = text[text.index('id="layer-relu_1"'): text.index('id="layer-maxpool_1"')]
    assert f'<td class="n">{errors["conv_1+relu_1"]:.2e}</td>' in relu_row
    assert "<th>relative error</th>" in text


def test_every_layer_with_code_links_to_the_line_defining_its_function_and_back(lenet_report):
    page = Page((lenet_report / "report.html").read_text())
    source = (lenet_report / "lenet.c").read_text().splitlines()
    expected = {"conv_1": "lenet_conv_1", "relu_1": "lenet_conv_1", "maxpool_1": "lenet_conv_1",
                "fc_1": "lenet_fc_1", "softmax_1": "lenet_softmax_1"}
    assert set(page.row_links) == set(expected)
    for layer, fn in expected.items():
        target = page.row_links[layer]
        assert target in page.ids, f"{layer}: no element with id {target}"
        line = int(target.rsplit("-L", 1)[1])
        assert source[line - 1].startswith(f"static void {fn}("), source[line - 1]
        assert page.texts[target].startswith(f"static void {fn}(")
    # the definition of lenet_conv_1 points back at both layers it implements
    text = (lenet_report / "report.html").read_text()
    at = text.index(f'id="{page.row_links["conv_1"]}"')
    back = text[at: text.index("\n", at)]
    assert 'href="#layer-conv_1"' in back and 'href="#layer-relu_1"' in back
    # every in-page link has its target
    missing = [link for link in page.links if link not in page.ids]
    assert not missing, missing[:5]


def test_the_memory_section_names_the_peak_op_and_the_flash_lists_each_ops_weights(lenet_report):
    text = (lenet_report / "report.html").read_text()
    # by hand: while fc_1 runs, the pooled 12x12x20 floats (11,520 B) and its own 10 (40 B) are live
    assert "11,560 bytes live while op 1 (fc_1) runs" in text
    assert "peak 11,560 B at op 1: fc_1" in text        # in the plot's SVG, as text
    weights = weight_arrays((lenet_report / "lenet_weights.c").read_text())
    fc = sum(n for sym, n in weights.items() if sym.startswith("lenet_fc_1_"))
    assert fc >= 4 * 2880 * 10
    assert re.search(rf"<td>op 1 fc_1</td><td class=\"n\">{fc:,}</td>", text)


def test_codegen_report_renders_the_same_page_again_and_a_plain_build_replaces_the_report(lenet_report, tmp_path):
    folder = tmp_path / "lenet"
    shutil.copytree(lenet_report, folder)
    first = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    result = invoke("report", folder)
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").read_text() == first
    assert {"report.html", "report.json"} <= set((folder / MARKER).read_text().splitlines())
    result = invoke("build", LENET, "--out", folder, "--no-verify")       # the marker lists them: replaceable
    assert result.exit_code == 0, result.output
    assert not (folder / "report.html").exists() and not (folder / "report.json").exists()
    result = invoke("report", folder)
    assert result.exit_code == 2 and "has no report.json: build with --report first" in result.output


def test_codegen_report_refuses_a_report_json_it_cannot_read(lenet_report, tmp_path):
    folder = tmp_path / "lenet"
    shutil.copytree(lenet_report, folder)
    facts = json.loads((folder / "report.json").read_text())
    for text, message in ((json.dumps(dict(facts, format=0)), "is not a report of this codegen (format 0"),
                          ("[1, 2]", "is not a codegen report"), ("{", "cannot read")):
        (folder / "report.json").write_text(text)
        result = invoke("report", folder)
        assert result.exit_code == 2 and message in result.output, result.output
    (folder / "report.json").write_text(json.dumps(facts))
    (folder / "lenet.c").unlink()
    result = invoke("report", folder)
    assert result.exit_code == 2 and "lacks the generated files the report shows: lenet.c" in result.output


def test_the_graph_marks_fused_groups_in_both_layouts(lenet_report):
    facts = json.loads((lenet_report / "report.json").read_text())
    dot = dot_source(facts)
    assert "subgraph cluster_op0" in dot and dot.count("subgraph") == 1       # conv_1+relu_1+maxpool_1 only
    plain = plain_svg(facts)
    assert plain.count('<a href="#layer-') == len(facts["layers"])
    assert plain.count('stroke-dasharray') == 3                               # the three fused layers
    files = {n: (lenet_report / n).read_text() for n in ("lenet.c", "lenet.h", "lenet_weights.c")}
    assert "plain layered layout" in build_page(facts, files, use_dot=False)
    if shutil.which("dot"):
        page = build_page(facts, files)
        assert "Laid out by Graphviz" in page and page.count('href="#layer-') >= 2 * len(facts["layers"]) - 2


def test_weight_values_are_left_out_of_the_page_but_counted():
    text = "/* a */\nconst float w[6] = {\n 0x1p+0f, 0x1p+1f,\n 0x1p+0f, 0x1p+1f,\n 0x1p+0f, 0x1p+1f,\n 0x1p+0f,\n};\n"
    shown = elide_values(text)
    assert shown[:4] == [(1, "/* a */"), (2, "const float w[6] = {"), (3, " 0x1p+0f, 0x1p+1f,"),
                         (4, " 0x1p+0f, 0x1p+1f,")]
    assert shown[4] == (None, 2) and shown[5] == (7, "};")


def test_cuda_sources_link_each_op_to_its_kernel():
    net = load(LENET)
    plan = make_plan(net)
    files = render_files(net, plan, "cuda")
    code = locate(files["lenet.cu"], "lenet", len(plan.ops), weight_arrays(files["lenet_weights.c"]))
    lines = files["lenet.cu"].splitlines()
    assert [c.fn for c in code] == ["lenet_conv_1", "lenet_maxpool_1", "lenet_fc_1", "lenet_softmax_1"]
    for c in code:
        assert "__global__" in lines[c.definition - 1] and c.fn in lines[c.definition - 1]
        assert "_LAUNCH(" + c.fn in lines[c.call - 1]


@pytest.mark.parametrize("seed", range(12))
def test_every_op_of_random_networks_is_traced_to_its_function_call_and_weights(seed):
    """Chains and DAGs (concatenations, copies), float and int8, C and CUDA: every op's function, definition,
    call, and every emitted weight array owned by exactly one op."""
    rng = np.random.default_rng(seed)
    try:
        net = (random_dag if seed % 2 else random_chain)(rng, f"n{seed}")
    except LayerError:
        pytest.skip("netgen drew an invalid network")
    cal = codegen.quantize(net, rng.random((4, *net.input_shape)).astype(np.float32)) if seed % 3 == 0 else None
    for target in ("c", "cuda"):
        plan = make_plan(net, calibration=cal)
        files = render_files(net, plan, target)
        source = files[f"{net.name}.c" if target == "c" else f"{net.name}.cu"]
        weights = weight_arrays(files[f"{net.name}_weights.c"])
        code = locate(source, net.name, len(plan.ops), weights)
        lines = source.splitlines()
        for op, c in zip(plan.ops, code):
            assert c.fn and c.definition and c.call, (target, op.kind, c)
            assert c.fn in lines[c.definition - 1] and c.fn in lines[c.call - 1]
        owned = [sym for c in code for sym in c.weights]
        assert sorted(owned) == sorted(weights), (target, set(weights) - set(owned))


def test_a_cuda_page_links_each_layer_to_its_kernel(tmp_path):
    out = tmp_path / "lenet"
    result = invoke("build", LENET, "--target", "cuda", "--emulate", "--out", out, "--report", "--count", "1")
    assert result.exit_code == 0, result.output
    text = (out / "report.html").read_text()
    page = Page(text)
    source = (out / "lenet.cu").read_text().splitlines()
    assert set(page.row_links) == {"conv_1", "relu_1", "maxpool_1", "fc_1", "softmax_1"}
    for layer, target in page.row_links.items():
        line = source[int(target.rsplit("-L", 1)[1]) - 1]
        assert "__global__" in line and target in page.ids, (layer, line)
    assert "CUDA kernels compiled for CPU execution" in text          # the build's notes


def test_an_int8_page_shows_sqnr_per_layer(tmp_path):
    net = load(LENET)
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype(np.float32)
    cal = codegen.quantize(net, images)
    lib = codegen.build(net, calibration=cal, out_dir=tmp_path / "q")
    result = verify_int8(net, lib, images=images[:2])
    debug = codegen.build(net, calibration=cal, reuse=False, write=False)
    detail = int8_per_layer(net, debug, images=images[:1])
    facts = gather(net, lib, verification=result, per_layer=detail)
    path, _ = write_report(facts, lib.out_dir)
    text = path.read_text()
    assert "<th>SQNR dB</th>" in text
    worst = min(detail.per_layer, key=lambda item: item[1])
    assert f"lowest SQNR {worst[1]:.1f} dB at {worst[0]}" in text
    fc_row = text[text.index('id="layer-fc_1"'): text.index('id="layer-softmax_1"')]
    assert re.search(r"<td class=\"n\">\d+\.\d dB</td>", fc_row), fc_row
    assert Page(text).rows == [layer.Name for layer in net.layers]


def test_mobilenetv2_on_cortex_m4_shows_the_peak_op_the_flash_breakdown_and_the_links(tmp_path):
    require_device("cortex-m4")
    out = tmp_path / "mobilenetv2"
    result = invoke("build", EXAMPLES / "mobilenetv2.py", "--device", "cortex-m4", "--profile", "--out", out,
                    "--report")
    assert result.exit_code == 0, result.output
    text = (out / "report.html").read_text()
    facts = json.loads((out / "report.json").read_text())
    i, nbytes = peak(facts)
    assert max(occupancy(facts)) == nbytes <= facts["plan"]["arena_bytes"]
    label = facts["ops"][i]["label"]
    assert f"{nbytes:,} bytes live while op {i} ({label}) runs" in text
    for part in ("code (the network&#39;s functions)", "library members", "initial values of static data"):
        assert part in text, part
    fp = facts["target"]["footprint"]
    assert f"<b>{fp['flash']:,} bytes</b>" in text and f"<b>{fp['ram']:,} bytes</b>" in text
    page = Page(text)
    assert len(page.rows) == 78 and len(page.row_links) == 77         # the concatenation has no code
    assert all(link in page.ids for link in page.row_links.values())
    assert facts["target"]["per_op"] and sum(1 for op in facts["ops"] if op["instructions"]) == len(facts["ops"])


def test_a_host_profiling_build_times_each_op_and_the_page_shows_it(tmp_path):
    out = tmp_path / "lenet"
    result = invoke("build", LENET, "--profile", "--out", out, "--report", "--count", "1")
    assert result.exit_code == 0, result.output
    assert "time per op on this machine" in result.output
    facts = json.loads((out / "report.json").read_text())
    seconds = {op["label"]: op["seconds"] for op in facts["ops"]}
    assert list(seconds) == ["conv_1+relu_1+maxpool_1", "fc_1", "softmax_1"]
    assert all(t > 0 for t in seconds.values())
    assert seconds["conv_1+relu_1+maxpool_1"] > seconds["softmax_1"]    # 288,000 MACs against 10 exponentials
    text = (out / "report.html").read_text()
    assert "<th>time (&micro;s)</th>" in text
    pool_row = text[text.index('id="layer-maxpool_1"'): text.index('id="layer-fc_1"')]   # the op's last layer
    assert f'<td class="n">{seconds["conv_1+relu_1+maxpool_1"] * 1e6:.1f}</td>' in pool_row
    # the generated C calls the hooks; the library's own clock is not in the output folder
    assert "lenet_profile_op(0);" in (out / "lenet.c").read_text() and not (out / "lenet_profile.c").exists()


# ----------------------------------------------------------------------------- in a browser

def chromium(*args, timeout=BROWSER_TIMEOUT) -> subprocess.CompletedProcess:
    require_tool("chromium")
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--enable-logging=stderr", "--v=0", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """The page's console messages at error level and uncaught exceptions, from chromium's log."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and
            re.search(r"Uncaught|Error|error|ERROR:CONSOLE", line)]


def test_the_browser_log_shows_a_script_error(tmp_path):
    """The check below can fail: a page with a broken script is seen."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    proc = chromium("--dump-dom", page.as_uri())
    assert console_errors(proc.stderr), proc.stderr[-2000:]


def test_the_page_loads_in_chromium_without_errors_and_has_a_row_per_layer(lenet_report, tmp_path):
    proc = chromium("--virtual-time-budget=3000", "--dump-dom", (lenet_report / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not console_errors(proc.stderr), console_errors(proc.stderr)
    net = load(LENET)
    dom = Page(proc.stdout)
    assert dom.rows == [layer.Name for layer in net.layers]
    assert f'data-report-ready="{len(net.layers)}"' in proc.stdout           # the script ran to its end


def test_following_a_layers_link_scrolls_its_function_into_view(lenet_report, tmp_path):
    page = Page((lenet_report / "report.html").read_text())
    target = page.row_links["conv_1"]
    probe = ("<script>window.addEventListener('load', function () { setTimeout(function () {"
             "var e = document.getElementById(location.hash.slice(1)); var r = e.getBoundingClientRect();"
             "document.body.setAttribute('data-probe', JSON.stringify({top: r.top, bottom: r.bottom,"
             "height: window.innerHeight, text: e.textContent.slice(0, 60), lit: e.classList.contains('lit')}));"
             "}, 100); });</script></body>")
    copy = tmp_path / "report.html"
    copy.write_text((lenet_report / "report.html").read_text().replace("</body>", probe))
    proc = chromium("--virtual-time-budget=3000", "--window-size=1280,900", "--dump-dom", copy.as_uri() + "#" + target)
    m = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert m, proc.stderr[-2000:]
    probe = json.loads(m.group(1).replace("&quot;", '"'))
    assert probe["text"].startswith("static void lenet_conv_1("), probe
    assert -2 <= probe["top"] and probe["bottom"] <= probe["height"] and probe["lit"], probe    # in view (sub-pixel)


def test_a_screenshot_of_the_page_is_not_blank(lenet_report, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium("--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}",
                    (lenet_report / "report.html").as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    from PIL import Image                # matplotlib's dependency
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280) and pixels.std() > 20
    print(f"screenshot: {shot}")
