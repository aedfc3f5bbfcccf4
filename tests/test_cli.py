"""The command line, through a real subprocess: output, exit codes, JSON, and that the light
commands never import torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, net_files


@pytest.mark.parametrize("path", net_files(), ids=lambda p: p.name)
def test_check_every_bundled_net(run_cli, path):
    p = run_cli("check", path.relative_to(ROOT))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok: ") and " layers, " in p.stdout and p.stderr == ""


def test_check_line(run_cli):
    p = run_cli("check", "nets/googlenet.net")
    assert p.stdout == "ok: googlenet: 158 layers, 13,378,280 params (6,998,552 deploy)\n"
    p = run_cli("check", "nets/lenet5.net")
    assert p.stdout == "ok: lenet5: 12 layers, 61,706 params\n"


def test_invalid_net_exits_1_with_all_diagnostics(run_cli, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("net bad {\n  input 3x8x8\n  head { cnov }\n  head { conv(8, 3, strid=1) }\n}\n")
    p = run_cli("check", bad)
    assert p.returncode == 1 and p.stdout == ""
    assert f"{bad}:3:10: error[E201]: unknown op `cnov`" in p.stderr
    assert f"{bad}:4:21: error[E301]: `conv` has no argument `strid`" in p.stderr
    assert p.stderr.rstrip().endswith(f"2 errors in {bad}")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [
    ("check", "no/such/file.net"),
    ("check",),
    ("frobnicate", "nets/lenet5.net"),
    ("summary", "nets/lenet5.net", "--depth", "0"),
    ("check", "nets/lenet5.net", "--set", "classes"),
    ("check", "nets/lenet5.net", "--set", "classes=ten ten"),
    ("check", "nets/lenet5.net", "--set", "clases=3"),
    ("check", "nets/lenet5.net", "--set", "classes=3 + x"),
])
def test_usage_errors_exit_2(run_cli, args):
    p = run_cli(*args)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr


def test_set_overrides_a_parameter(run_cli):
    p = run_cli("check", "nets/lenet5.net", "--set", "classes=3")
    assert p.stdout == "ok: lenet5: 12 layers, 61,111 params\n"


def test_summary_table(run_cli):
    p = run_cli("summary", "nets/googlenet.net")
    assert p.returncode == 0
    out = p.stdout
    assert "inception3a   inception(64, 96, 128, 16, 32, 32)" in out
    assert "aux1 [train]" in out and "6,998,552" in out and "13,378,280" in out
    assert "FLOPs = 2 x MACs" in out
    deeper = run_cli("summary", "nets/googlenet.net", "--depth", "3").stdout
    assert "inception3a.branch2.conv2" in deeper and "inception3a " not in deeper
    assert run_cli("summary", "nets/googlenet.net", "--expand").stdout == deeper


def test_summary_json_schema(run_cli):
    p = run_cli("summary", "nets/googlenet.net", "--json", "--batch", "2")
    doc = json.loads(p.stdout)
    assert set(doc) >= {"net", "input", "layers", "blocks", "outputs", "totals"}
    assert doc["net"] == "googlenet" and doc["input"] == [3, 224, 224]
    layer = doc["layers"][0]
    line = next(i for i, t in enumerate((ROOT / "nets/googlenet.net").read_text().splitlines(), 1) if "conv1: " in t)
    assert layer == {"name": "conv1", "op": "conv", "output_shape": [64, 112, 112], "params": 9472,
                     "macs": 118013952, "activation_bytes": 2 * 3211264, "train_only": False, "line": line}
    block = doc["blocks"][0]
    assert block == {"name": "inception3a", "block": "inception", "output_shape": [256, 28, 28],
                     "params": 163696, "macs": 128049152, "train_only": False}
    assert set(doc["totals"]) >= {"params", "macs", "params_deploy", "macs_deploy", "activation_bytes"}
    assert doc["outputs"][1] == {"name": "aux1", "shape": [1000], "train_only": True}


def test_python_m_and_console_script_agree():
    exe = [str(ROOT / ".venv" / "bin" / "netdsl")]
    script = __import__("shutil").which("netdsl") or exe[0]
    a = subprocess.run([script, "check", "nets/vgg16.net"], cwd=ROOT, capture_output=True, text=True)
    b = subprocess.run([sys.executable, "-m", "netdsl", "check", "nets/vgg16.net"], cwd=ROOT,
                       capture_output=True, text=True)
    assert a.stdout == b.stdout == "ok: vgg16: 39 layers, 138,357,544 params\n"


@pytest.mark.parametrize("argv", [["check", "nets/googlenet.net"], ["summary", "nets/googlenet.net", "--json"],
                                  ["--help"], ["summary", "--help"], ["render", "--help"],
                                  ["render", "nets/googlenet.net", "--expand", "-o", "{tmp}/g.svg"],
                                  ["compile", "--help"], ["explain", "E402"], ["fmt", "--check", "nets/googlenet.net"],
                                  ["diff", "nets/googlenet.net", "nets/torchvision/googlenet.net"], ["diff", "--help"]])
def test_light_commands_never_import_torch(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = ("import sys\nfrom netdsl.cli import main\n"
            "try:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'networkx'))\n"
            "print('IMPORTED', bad)") % (argv,)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.stdout.strip().endswith("IMPORTED []"), p.stdout[-300:] + p.stderr
    assert "-o" not in argv or (tmp_path / "g.svg").stat().st_size > 0  # the diagram was drawn


def test_check_reads_standard_input():
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "-"], input="net s { input 4 linear(2) }",
                       cwd=ROOT, capture_output=True, text=True)
    assert p.stdout == "ok: s: 1 layer, 10 params\n"
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "-"], input="net s { input 4 lnear(2) }",
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.startswith("<stdin>:1:17: error[E201]")


def test_set_accepts_a_word(run_cli, tmp_path):
    f = tmp_path / "p.net"
    f.write_text("net n(p = same) { input 3x8x8 conv(8, 3, pad=p) }")
    p = run_cli("summary", f, "--set", "p=valid", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["layers"][0]["output_shape"] == [8, 6, 6]
    assert json.loads(run_cli("summary", f, "--json").stdout)["layers"][0]["output_shape"] == [8, 8, 8]


def test_non_utf8_standard_input():
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "-"], input=b"net n { input 3x8x8 \xff relu }",
                       cwd=ROOT, capture_output=True)
    assert p.returncode == 1 and b"<stdin>:1:21: error[E103]" in p.stderr
