"""The command line, driven as a user drives it: ``codegen summary``, ``build``, ``verify`` and
``export`` on the host, for devices, for CUDA and with ONNX files; what a user's mistake gets
(one line on stderr, exit status 2); concurrent builds of one output folder.

Two ways in, one helper each:

- ``run_cli``: the installed console script in a subprocess (what a shell sees: exit status,
  stdout, stderr), importing the package of this checkout (its root goes first on PYTHONPATH);
- ``invoke``: ``codegen.cli.main`` in this process with click's ``CliRunner`` (faster).

Tests that need a tool (a cross compiler, nvcc) skip without it (fail under CI: CODEGEN_CI=1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

import codegen
from codegen.cli import main as cli_main
from codegen.devices import get_device
from codegen.emit import render_files
from codegen.emit.dialect import DIALECTS
from codegen.netfile import load
from codegen.output import MARKER
from codegen.plan import make_plan
from codegen.verify import rel_error
from conftest import require_tool
from test_cuda_nvcc import no_warnings
from test_embedded import require_device
from test_network import assert_loaded, expected_learnables

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LENET = EXAMPLES / "lenet.py"


def codegen_exe() -> str:
    exe = shutil.which("codegen")
    assert exe, "the console script is installed by `pip install -e .`"
    return exe


def cli_env(env=None) -> dict:
    """``env`` (default: this process's) with this checkout first on PYTHONPATH, so the console
    script runs the code under test even where another checkout is pip-installed."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(*args, env=None, cwd=None, timeout=600):
    """``codegen *args`` in a subprocess."""
    return subprocess.run([codegen_exe(), *map(str, args)], capture_output=True, text=True, env=cli_env(env),
                          cwd=cwd, timeout=timeout)


def invoke(*args):
    """``codegen *args`` in this process (click's CliRunner); the result has exit_code, stdout,
    stderr and output."""
    return CliRunner().invoke(cli_main, list(map(str, args)), obj={})


def assert_user_error(proc, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("codegen: error: ") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def error_line(result):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("codegen: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- codegen summary

LENET_FILE = """\
layers = [
    imageInputLayer([28, 28, 1]),
    convolution2dLayer(5, 20),
    reluLayer(),
    maxPooling2dLayer(2, 'Stride', 2),
    fullyConnectedLayer(10),
    softmaxLayer(),
    classificationLayer(),
]
seed = 0
"""


def test_cli_summary(tmp_path):
    path = tmp_path / "lenet.py"
    path.write_text(LENET_FILE)
    result = invoke("summary", str(path))
    assert result.exit_code == 0, result.output
    assert "  7x1 Layer array with layers:" in result.stdout
    assert "'conv_1'          2-D Convolution         20 5x5x1 convolutions" in result.stdout
    assert "Network 'lenet': 7 layers, input 28x28x1, output 1x1x10" in result.stdout
    assert re.search(r"conv_1\s+2-D Convolution\s+24x24x20\s+520\s+288,000", result.stdout)
    assert result.stderr == ""


def test_cli_summary_with_weights_relative_to_the_file(tmp_path):
    given = expected_learnables(np.random.default_rng(18))
    scipy.io.savemat(tmp_path / "w.mat", given)
    (tmp_path / "small.py").write_text(
        "layers = [imageInputLayer([6, 5, 2]), convolution2dLayer([3, 2], 4), reluLayer(), fullyConnectedLayer(3)]\n"
        "weights = 'w.mat'\nname = 'small'\n")
    result = invoke("summary", str(tmp_path / "small.py"))
    assert result.exit_code == 0, result.output
    assert "Network 'small': 4 layers" in result.stdout
    net = codegen.netfile.load(tmp_path / "small.py")
    assert_loaded(net, given)


def test_cli_file_without_layers(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    line = error_line(invoke("summary", str(path)))
    assert "empty.py defines neither 'layers'" in line and "'lgraph'" in line


def test_cli_syntax_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("layers = [\n    imageInputLayer([28, 28, 1]),\n    reluLayer(\n")
    line = error_line(invoke("summary", str(path)))
    assert re.search(r"broken\.py:\d+: syntax error", line), line


def test_cli_layer_error_names_the_file(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("layers = [imageInputLayer([28, 28, 1]), convolution2dLayer(3, 8, 'Strid', 2)]\n")
    line = error_line(invoke("summary", str(path)))
    assert "bad.py" in line and "did you mean 'Stride'?" in line


def test_cli_python_error_names_the_line(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("layers = [imageInputLayer([28, 28, 1]),\n          reluLayr()]\n")
    line = error_line(invoke("summary", str(path)))
    assert "typo.py:2" in line and "NameError" in line and "reluLayr" in line


def test_cli_missing_file(tmp_path):
    line = error_line(invoke("summary", str(tmp_path / "nowhere.py")))
    assert "nowhere.py" in line and "no such file" in line


def test_console_script_exit_status_and_one_line_on_stderr(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("layers = [imageInputLayer([28, 28, 1]]\n")
    proc = run_cli("summary", path, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "syntax error" in proc.stderr


# ----------------------------------------------------------------------------- codegen build / verify

def test_cli_build_prints_files_sizes_and_passing_verification(tmp_path):
    proc = run_cli("build", EXAMPLES / "lenet.py", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    for text in ("lenet.c", "lenet_weights.c", "lenet.h", "arena", "weights", "MACs", "verification: PASS"):
        assert text in proc.stdout


def test_cli_verify_per_layer_names_every_layer(tmp_path):
    proc = run_cli("verify", EXAMPLES / "conv_options.py", "--per-layer", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "conv_asym+batchnorm_1+leakyrelu_1" in proc.stdout and "verification: PASS" in proc.stdout


@pytest.mark.parametrize("example", ["resnet_graph", "mobilenetv2"])
def test_graph_examples_end_to_end_from_one_command(example, tmp_path):
    proc = run_cli("build", EXAMPLES / f"{example}.py", "--out", tmp_path / example)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification: PASS" in proc.stdout and "one buffer per op" in proc.stdout


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("source, fragments", [
    ("layers = [imageInputLayer([28, 28, 1])\n", ["net.py:1: syntax error"]),
    ("x = 1\n", ["defines neither 'layers'", "nor 'lgraph'"]),
    ("layers = [imageInputLayer([8, 8, 1]), reluLayer]\n", ["element 2 of the layer list is function, not a layer",
                                                            "did you forget the parentheses"]),
    ("layers = [imageInputLayer([8, 8, 1]), 'relu']\n", ["element 2 of the layer list is str"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4)]\nweights = 'missing.npz'\n",
     ["cannot read weights file", "missing.npz"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4, Strid=2)]\n",
     ["net.py: convolution2dLayer", "did you mean 'Stride'"]),
    ("import nothing_here\nlayers = []\n", ["net.py:1: ModuleNotFoundError"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(9, 4)]\n",
     ["convolution2dLayer 'conv_1': property 'FilterSize'", "larger than the padded input"]),
    ("layers = [convolution2dLayer(3, 4)]\n", ["no input layer"]),
])
def test_bad_net_files_give_one_line_and_exit_code_2(tmp_path, source, fragments):
    path = tmp_path / "net.py"
    path.write_text(source)
    for command in ("summary", "build"):
        assert_user_error(run_cli(command, path, cwd=tmp_path), *fragments)


def test_missing_net_file(tmp_path):
    assert_user_error(run_cli("build", tmp_path / "nope.py"), "no such file")


def test_unreadable_weights_file(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"not a zip file")
    path = tmp_path / "net.py"
    path.write_text("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4)]\nweights = 'w.npz'\n")
    assert_user_error(run_cli("build", path, cwd=tmp_path), "cannot read weights file", "w.npz")


@pytest.mark.parametrize("out", ["/proc/codegen_out", "file_not_dir/sub"])
def test_output_folder_that_cannot_be_written(tmp_path, out):
    (tmp_path / "file_not_dir").write_text("a file")
    assert_user_error(run_cli("build", LENET, "--out", out, cwd=tmp_path), "output folder")


def test_output_folder_not_made_by_codegen_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert_user_error(run_cli("build", LENET, "--out", tmp_path / "mine"), "was not made by codegen")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_missing_compiler(tmp_path):
    env = dict(os.environ, CC="/nonexistent/bin/cc", CODEGEN_CACHE=str(tmp_path / "cache"))
    assert_user_error(run_cli("build", LENET, "--out", tmp_path / "o", env=env), "compiler", "not found")


def test_debug_flag_shows_the_traceback(tmp_path):
    (tmp_path / "net.py").write_text("x = 1\n")
    proc = run_cli("--debug", "build", tmp_path / "net.py")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "codegen: error:" in proc.stderr


# ----------------------------------------------------------------------------- one output folder, two builds

def test_two_concurrent_builds_of_the_same_output_end_complete_and_correct(tmp_path):
    out = tmp_path / "shared"
    env = cli_env(dict(os.environ, CODEGEN_CACHE=str(tmp_path / "cache")))
    exe = codegen_exe()
    procs = [subprocess.Popen([exe, "build", str(EXAMPLES / name), "--out", str(out), "--no-verify"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("lenet.py", "lenet.py", "grouped.py")]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    present = {p.name for p in out.iterdir()} - {MARKER}
    for candidate in ("lenet", "grouped"):
        net = load(EXAMPLES / f"{candidate}.py")
        files = render_files(net, make_plan(net, smallest_arena=False, **DIALECTS["c"].plan_options()),
                             options={"source": str(EXAMPLES / f"{candidate}.py")})     # as the host build plans
        if present == set(files):
            assert all((out / n).read_text() == t for n, t in files.items())
            break
    else:
        pytest.fail(f"the folder holds a mix: {sorted(present)}")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# ----------------------------------------------------------------------------- --device

def test_cli_build_for_cortex_m4_prints_flash_and_ram(tmp_path):
    require_device("cortex-m4")
    out = tmp_path / "lenet"
    proc = run_cli("build", str(EXAMPLES / "lenet.py"), "--device", "cortex-m4", "--out", str(out), cwd=tmp_path)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"flash\s+[\d,]+ bytes = code [\d,]+ \+ weights and constants [\d,]+", proc.stdout)
    assert re.search(r"RAM\s+[\d,]+ bytes = arena 11,584 \+ stack [\d,]+ \(measured", proc.stdout)
    assert "verification: PASS" in proc.stdout
    assert proc.stdout.count("PASS  ") == 3                   # the three checks
    makefile = (out / "Makefile").read_text()
    assert "arm-none-eabi-gcc" in makefile and "-mfpu=fpv4-sp-d16" in makefile
    cmake = (out / "CMakeLists.txt").read_text()
    assert "CMAKE_SYSTEM_NAME Generic" in cmake and "arm-none-eabi-gcc" in cmake


def test_cli_budgets_exit_2_with_the_figures(tmp_path):
    require_device("cortex-m4")
    lenet = str(EXAMPLES / "lenet.py")
    proc = run_cli("build", lenet, "--device", "cortex-m4", "--out", str(tmp_path / "a"), "--no-verify",
                   "--max-ram", "12K", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    # the arena (11,584: convolution + pooling fused) fits the goal, arena + stack + static data does not
    assert re.search(r"RAM [\d,]+ bytes exceeds the budget of 12,288 bytes \(--max-ram\): arena 11,584 \+ stack", err)
    assert "flash" in proc.stdout                              # the figures were printed before
    proc = run_cli("build", lenet, "--device", "cortex-m4", "--out", str(tmp_path / "a"), "--no-verify",
                   "--max-ram", "8K", cwd=tmp_path)          # the planner's goal: refused before building
    assert proc.returncode == 2 and "needs an arena of 11,584 bytes, over the RAM goal of 8,192" in proc.stderr
    proc = run_cli("verify", lenet, "--device", "cortex-m4", "--max-flash", "100000", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(r"flash [\d,]+ bytes exceeds the budget of 100,000 bytes \(--max-flash\): code", proc.stderr)
    proc = run_cli("verify", str(EXAMPLES / "grouped.py"), "--device", "cortex-m55", "--max-flash", "1M",
                   "--max-ram", "256K", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification: PASS" in proc.stdout and "budget: flash" in proc.stdout
    proc = run_cli("build", lenet, "--device", "cortex-m4", "--max-ram", "lots", cwd=tmp_path)
    assert proc.returncode == 2 and "is not a size in bytes" in proc.stderr


def test_device_errors_are_one_line(tmp_path):
    with pytest.raises(Exception, match="unknown device 'cortex-m99'"):
        get_device("cortex-m99")
    lenet = str(EXAMPLES / "lenet.py")
    proc = run_cli("verify", lenet, "--device", "cortex-m4", "--per-layer", cwd=tmp_path)
    assert proc.returncode == 2 and "--per-layer runs on the host only" in proc.stderr
    proc = run_cli("build", lenet, "--device", "cortex-m4", "--target", "cuda", cwd=tmp_path)
    assert proc.returncode == 2 and "needs --target c" in proc.stderr
    proc = run_cli("build", lenet, "--device", "riscv", cwd=tmp_path)
    assert proc.returncode == 2 and "riscv" in proc.stderr


# ----------------------------------------------------------------------------- --target cuda

def test_cli_build_emulate_passes(tmp_path):
    out = tmp_path / "lenet"
    proc = run_cli("build", EXAMPLES / "lenet.py", "--target", "cuda", "--emulate", "--out", out, "--per-layer",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification: PASS" in proc.stdout and "conv_1+relu_1" in proc.stdout
    assert (out / "lenet.cu").exists() and (out / "lenet.h").exists()


def test_cli_precision_choices(tmp_path):
    """--precision: the tensor-core input type (default tf32) in the report and the verification's tolerance."""
    result = invoke("verify", EXAMPLES / "lenet.py", "--target", "cuda", "--emulate", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert "precision bf16: 2 of 4 ops on the tensor cores" in result.output
    assert "and 2 tensor-core ops" in result.output and "verification: PASS" in result.output
    result = invoke("verify", EXAMPLES / "lenet.py", "--target", "cuda", "--emulate", "--precision", "fp32")
    assert result.exit_code == 0 and "strict float32" in result.output and "tolerance 1.0e-05" in result.output
    result = invoke("verify", EXAMPLES / "lenet.py", "--precision", "fp64")
    assert result.exit_code != 0 and "fp64" in result.output


def test_lenet_cli_builds_for_sm80_and_sm90_without_warnings(tmp_path):
    require_tool("nvcc")
    out = tmp_path / "lenet"
    proc = run_cli("build", EXAMPLES / "lenet.py", "--target", "cuda", "--out", out, "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("lenet.cu", "lenet.h", "lenet_weights.c", "Makefile"):
        assert (out / name).is_file(), name
    assert "arch=compute_80,code=sm_80" in proc.stdout and "arch=compute_90,code=sm_90" in proc.stdout
    assert "arch=compute_90,code=compute_90" in proc.stdout          # PTX for newer GPUs
    no_warnings(proc.stdout + proc.stderr)
    # the per-kernel table: every kernel of the plan, for both architectures
    for kernel in ("lenet_conv_1", "lenet_maxpool_1", "lenet_fc_1", "lenet_softmax_1"):
        for arch in ("sm_80", "sm_90"):
            assert any(kernel in line and arch in line for line in proc.stdout.splitlines()), (kernel, arch)
    assert "verification: PASS" in proc.stdout                        # on the GPU, or in the CPU mode here


# ----------------------------------------------------------------------------- ONNX files

def test_cli_builds_and_verifies_an_onnx_file(tmp_path):
    from test_onnx_import import Classifier, export_torch       # skips without torch, onnx, onnxruntime
    path = tmp_path / "small.onnx"
    path.write_bytes(export_torch(Classifier("flatten"), (1, 3, 10, 8)))
    result = invoke("verify", path)
    assert result.exit_code == 0, result.output
    assert "verification: PASS" in result.output


def test_refusal_is_a_codegen_error_for_the_cli(tmp_path):
    from test_onnx_import import _single                       # skips without torch, onnx, onnxruntime
    path = tmp_path / "bad.onnx"
    path.write_bytes(_single("Cos").SerializeToString())
    result = invoke("build", path)
    assert result.exit_code == 2
    assert "operator Cos is not supported" in result.output


def test_cli_export(tmp_path):
    onnx = pytest.importorskip("onnx")
    from test_onnx_export import TOL, ort_predict              # skips without onnxruntime
    from codegen.onnx import to_onnx_layout
    out = tmp_path / "lenet.onnx"
    result = invoke("export", os.path.join(ROOT, "examples", "lenet.py"), out)
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    net = load(os.path.join(ROOT, "examples", "lenet.py"))
    x = np.random.default_rng(3).standard_normal((2, 28, 28, 1)).astype(np.float32)
    assert rel_error(ort_predict(model, x), to_onnx_layout(net.predict(x.astype(np.float64)), 2)) < TOL
