"""Summaries in other formats and columns (netdsl/formats.py), notebook reprs, and the text of
compile's report."""

from __future__ import annotations

import csv
import io
import json

import pytest

import netdsl
from conftest import ROOT
from netdsl import cli, formats

GOOGLENET = ROOT / "nets" / "googlenet.net"


@pytest.fixture(scope="module")
def summary():
    return netdsl.load(GOOGLENET).summary()


def test_cli_lists_equal_the_modules():
    assert cli.SUMMARY_FORMATS == formats.FORMATS
    assert set(cli.SUMMARY_COLUMNS) == set(formats.COLUMNS)


def test_default_table_is_summary_table(summary):
    assert formats.table(summary, 1, formats.DEFAULT_COLUMNS, "float32") == summary.table(1)


def test_markdown_rows_and_alignment(summary):
    text = summary.to_markdown()
    lines = text.splitlines()
    assert lines[0] == "| Layer | Op | Output | Params | MACs | Memory |"
    assert lines[1] == "|:---|:---|---:|---:|---:|---:|"
    assert ("| inception3a | inception(64, 96, 128, 16, 32, 32) | 256x28x28 | 163,696 | 128,049,152 | 3,626 KiB |"
            in lines)
    assert "| aux1 [train] |" in text
    assert len([x for x in lines if x.startswith("| ")]) == len(summary.rows(1)) + 1


def test_csv_has_bare_numbers_and_every_row(summary):
    rows = list(csv.DictReader(io.StringIO(summary.to_csv(depth=None, columns=formats.COLUMNS))))
    assert len(rows) == len(summary.layers)
    conv1 = rows[0]
    assert conv1["name"] == "conv1" and conv1["params"] == "9472" and conv1["memory"] == "3211264"
    assert conv1["kernel"] == "7x7" and conv1["stride"] == "2x2" and conv1["input"] == "3x224x224"
    assert abs(sum(float(r["share"]) for r in rows) - 1) < 1e-3
    concat = next(r for r in rows if r["name"] == "inception3a.concat1")
    assert concat["input"].count("|") == 3  # four branches


def test_latex_is_escaped_booktabs(summary):
    text = summary.to_latex(columns=("name", "op", "kernel"))
    assert text.startswith("\\begin{tabular}{llr}\n\\toprule")
    assert "conv2\\_reduce & conv(64, 1) & 1 \\\\" in text and "ceil\\_mode" in text
    assert "\\bottomrule\n\\end{tabular}" in text


def test_dtype_scales_memory(summary):
    half = list(csv.DictReader(io.StringIO(summary.to_csv(dtype="float16"))))
    full = list(csv.DictReader(io.StringIO(summary.to_csv())))
    assert all(2 * int(h["memory"]) == int(f["memory"]) for h, f in zip(half, full))
    assert summary.memory("float64").params == 2 * summary.memory("float32").params


def test_html_repr_escapes():
    s = netdsl.loads("net a_b { input 3x8x8  conv(4, 3) }").summary()
    page = s._repr_html_()
    assert page.startswith('<table class="netdsl-summary">') and "<td" in page
    assert "conv(4, 3)" in page and s._repr_markdown_().startswith("| Layer |")


def test_error_reprs():
    with pytest.raises(netdsl.NetDSLError) as info:
        netdsl.loads("net n { input 3x8x8  a: conv(8, 3) <b> }", filename="<x&y>")
    e = info.value
    page = e._repr_html_()
    assert page.startswith('<pre class="netdsl-diagnostics">') and page.endswith("</pre>")
    assert "&lt;x&amp;y&gt;" in page and "<x&y>" not in page and "^" in page
    assert "\\n" not in repr(e) and repr(e).startswith("<NetDSLError: ")
    assert e._repr_markdown_().startswith("```text\n")


@pytest.mark.parametrize("args, want", [
    (["--format", "markdown"], "| Layer | Op |"),
    (["--format", "csv", "--columns", "name,kernel"], "name,kernel,train_only\nconv1,7x7,false"),
    (["--format", "latex"], "\\toprule"),
    (["--columns", "name,share", "--dtype", "float16"], "of outputs in float16"),
    (["--memory"], "inference peak      9,408 KiB"),
])
def test_cli_formats(run_cli, args, want):
    r = run_cli("summary", GOOGLENET, *args)
    assert r.returncode == 0, r.stderr
    assert want in r.stdout


def test_cli_json_memory(run_cli):
    r = run_cli("summary", GOOGLENET, "--format", "json", "--memory", "--dtype", "bfloat16")
    doc = json.loads(r.stdout)
    assert doc["memory"]["dtype"] == "bfloat16" and doc["memory"]["peak"] == 9408 * 1024 // 2
    plain = run_cli("summary", GOOGLENET, "--json").stdout
    assert "memory" not in json.loads(plain)  # the documented default document is unchanged


def test_cli_memory_in_markdown_and_not_in_csv(run_cli):
    r = run_cli("summary", GOOGLENET, "--format", "markdown", "--memory")
    assert "| inference peak | 9633792 | 9,408 KiB |" in r.stdout
    r = run_cli("summary", GOOGLENET, "--format", "csv", "--memory")
    assert r.returncode == 2 and "--format json" in r.stderr


def test_cli_bad_column(run_cli):
    r = run_cli("summary", GOOGLENET, "--columns", "name,kernal")
    assert r.returncode == 2 and "did you mean `kernel`?" in r.stderr and "Traceback" not in r.stderr


def test_compile_text_plain_milliseconds():
    report = {"net": "n", "device": "cpu", "device_name": "CPU, 2 threads", "dtype": "float32", "init": "default",
              "batch": 8, "params": {"train": 10, "deploy": 10}, "layers_checked": 3, "forward_runs": 5,
              "macs": {"train": 1000, "deploy": 1000, "per": "example"},
              "weights": {"tensors": 4, "values": 10, "by_name": 3, "by_order": 1, "source": "w.pt"},
              "outputs": [{"name": "fc", "shape": [8, 10], "train_only": False}],
              "seconds": {"build": 1.0523, "checked_pass": 0.0123, "forward": 0.000042}}
    text = cli._compile_text(report)
    assert "1,052 ms" in text and "12.3 ms" in text and "0.042 ms" in text and "e+" not in text and "e-" not in text
    assert "median of 5 warm runs" in text
    assert "4 tensors (10 values) from w.pt, matched 3 by name, 1 by order, every shape checked" in text
    report["weights"].update(by_name=0, by_order=4, per_shape=1)
    assert "matched 4 by order (per shape: 1 out of place), every shape checked" in cli._compile_text(report)
    assert "per example 1,000; the batch of 8: 8,000" in text
    assert "output:   fc 10 per example, batch 8" in text


def test_compile_reports_weights(tmp_path, run_cli):
    pytest.importorskip("torch")
    net = ROOT / "nets" / "lenet5.net"
    saved = tmp_path / "w.safetensors"
    assert run_cli("compile", net, "--save", saved).returncode == 0
    r = run_cli("compile", net, "--weights", saved, "--json")
    w = json.loads(r.stdout)["weights"]
    assert (w["tensors"], w["by_name"], w["by_order"], w["values"]) == (10, 10, 0, 61706)
