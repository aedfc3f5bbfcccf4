"""The README's tables that mirror code, generated from it: the op table from the registry
(netdsl/ops/), the error-code table from netdsl/codes.py and the table of nets/torchvision/
(counts from netdsl; lengths against torchvision's installed source, which is read, not imported),
and the output of `netdsl diff` shown under "Comparing two nets".

    .venv/bin/python docs/readme_tables.py          # print them
    .venv/bin/python docs/readme_tables.py --write  # write them into README.md

Each table sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in README.md;
tests/test_readme.py fails when they differ from this script's output.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from netdsl.codes import MEANINGS  # noqa: E402
from netdsl.ops import REGISTRY, REQUIRED, Attr, OpSpec, fmt_value  # noqa: E402
from torchvision_models import MODELS, NETS, net_names  # noqa: E402

README = ROOT / "README.md"


def _attr(a: Attr) -> str:
    if a.default is REQUIRED:
        text = f"●`{a.name}`" + (f" ({a.doc})" if a.doc else "")
    elif callable(a.default) or a.default is None:  # None: left out unless given (`upsample`'s size)
        text = f"`{a.name}`" + (f" ({a.doc})" if a.doc else "")
    else:
        default = a.default if not isinstance(a.default, float) else f"{a.default:g}"
        text = f"`{a.name}={fmt_value(default)}`" + (f" ({a.doc})" if a.doc else "")
    symbols = getattr(a.type, "symbols", ())
    if symbols and not a.doc:  # a doc says what the words mean
        text += " or " + ", ".join(f"`{s}`" for s in symbols)
    return text


def _arguments(spec: OpSpec) -> str:
    if spec.source:
        return "the shape, e.g. `3x224x224`"
    by_position = [_attr(a) for a in spec.attrs if a.positional]
    by_name = [_attr(a) for a in spec.attrs if not a.positional]
    return ", ".join(by_position) + ("; " if by_position and by_name else "") + \
        ("keyword: " + ", ".join(by_name) if by_name else "")


def _written(spec: OpSpec) -> str:
    if spec.source:
        return f"`{spec.name} C×H×W`"
    if spec.join:
        return f"`{spec.name} {{ … \\| … }}`"
    return f"`{spec.name}`"


def op_table() -> str:
    rows = ["| op | arguments | shape | params | what it is |", "|---|---|---|---|---|"]
    for spec in REGISTRY.values():
        doc = spec.doc.replace("|", "\\|")
        rows.append(f"| {_written(spec)} | {_arguments(spec)} | {spec.shape_doc} | {spec.params_doc} | {doc} |")
    return "\n".join(rows)


def error_table() -> str:
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| [{code}](docs/errors.md#{code.lower()}) | {meaning} |" for code, meaning in MEANINGS.items()]
    return "\n".join(rows)


def code_lines(path: Path) -> int:
    """Lines that are neither blank nor only a comment (`#`); docstrings count, as code does."""
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.strip().startswith("#"))


def torchvision_nets_table() -> str:
    """nets/torchvision/: the counts (equal to torchvision's: tests/test_torchvision_nets.py) and
    the length of each .net against the torchvision files its model is made of."""
    import netdsl

    package = Path(importlib.util.find_spec("torchvision").submodule_search_locations[0])
    rows = ["| net | torchvision.models | deploy params | training params | MACs (deploy) | lines: .net | "
            "lines: torchvision's files |", "|---|---|---:|---:|---:|---:|---|"]
    for name in net_names():
        net, model = netdsl.load(NETS / f"{name}.net"), MODELS[name]
        files = ", ".join(f"{code_lines(package / f)} `{f.removeprefix('models/')}`" for f in model.sources)
        rows.append(f"| `{name}.net` | `{model.constructor}` | {net.total_params(False):,} | "
                    f"{net.total_params(True):,} | {net.total_macs(False) / 1e6:,.1f} M | "
                    f"{code_lines(NETS / f'{name}.net')} | {files} |")
    return "\n".join(rows)


def diff_example() -> str:
    """`netdsl diff` of the paper's GoogLeNet against torchvision's, as the command prints it."""
    import subprocess

    argv = ["diff", "nets/googlenet.net", "nets/torchvision/googlenet.net"]
    out = subprocess.run([sys.executable, "-m", "netdsl", *argv], cwd=ROOT, capture_output=True, text=True).stdout
    return f"```\n$ netdsl {' '.join(argv)}\n{out}```"


TABLES = {"ops": op_table, "error-codes": error_table, "torchvision-nets": torchvision_nets_table,
          "diff-example": diff_example}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def current(text: str, name: str) -> str:
    begin, end = markers(name)
    return text[text.index(begin) + len(begin):text.index(end)].strip()


def write(text: str) -> str:
    for name, make in TABLES.items():
        begin, end = markers(name)
        text = text[:text.index(begin) + len(begin)] + "\n" + make() + "\n" + text[text.index(end):]
    return text


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        README.write_text(write(README.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote the tables {', '.join(TABLES)} into README.md")
    else:
        print("\n\n".join(make() for make in TABLES.values()))
