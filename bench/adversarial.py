"""The budgets, measured on hostile input: for any file within the default limits (512 KiB, 100,000
layers), `netdsl check` finishes within 5 s and 1 GiB, and `summary` and `render` likewise.

Each case is a generated file (see CASES) made to cost as much as it can: blocks that multiply
with different arguments, errors repeated by a repeat, deep nesting, wide joins, long names,
many parameters, huge repeat counts, many distinct errors, dense expressions, labels that grow
with the file (folded runs, block titles), a full file of each kind of text.
Every case runs as a fresh `python -m netdsl COMMAND FILE` process under a CPU-time and an
address-space limit (resource.setrlimit); the table gives its outcome, wall and CPU time and
peak resident memory (Graphviz's `dot` included, for render), then the worst case of each
command against the budget. The exit
status is 1 when any case passes the budget, crashes (a traceback, a signal), fails with
Graphviz, or does not give its expected outcome; a refusal in one line (render's bound on what
it gives Graphviz: exit 2, "over the limit") is an outcome within the budget.

The verdict uses CPU time (user + system): the development machine is shared, and wall time
there measures the neighbours as much as netdsl; both are printed.

    .venv/bin/python bench/adversarial.py                  # every case, check only
    .venv/bin/python bench/adversarial.py --commands check,summary,render
    .venv/bin/python bench/adversarial.py --only concat --runs 3

tests/test_budgets.py runs every case at a small scale, in-process (`texts(scale)`).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from netdsl.limits import DEFAULT_MAX_BYTES  # noqa: E402  (the checkout's, not an installed one)

MIB = 1024 * 1024
BUDGET_S = 5.0
BUDGET_RSS = 1024 * MIB
# The limits a case runs under: past them it is killed (and reported), well before it could
# take the machine down with it.
KILL_CPU_S = 30
KILL_ADDRESS_SPACE = 4 * 1024 * MIB

# The commands measured: each is run on every case asked for.
COMMANDS = {
    "check": ["check"],
    "summary": ["summary", "--expand"],
    "json": ["summary", "--json"],
    "render": ["render", "-o", "{out}/net.svg"],
    "render-expanded": ["render", "--expand", "-o", "{out}/net.svg"],
}


def _fill(unit: str, size: int, head: str = "", tail: str = "") -> str:
    """`head`, then `unit` repeated to make about `size` characters in all, then `tail`."""
    room = max(0, size - len(head) - len(tail))
    return head + unit * max(1, room // len(unit)) + tail


def _units(make: Callable[[int], str], size: int, head: str = "", tail: str = "") -> str:
    """`head`, then make(0) make(1) ... for as long as the text stays within `size`, then `tail`."""
    parts, total, i = [head], len(head) + len(tail), 0
    while True:
        unit = make(i)
        if total + len(unit) > size:
            break
        parts.append(unit)
        total += len(unit)
        i += 1
    return "".join(parts) + tail


def doubling(depth: int, leaf: str = "relu", twice: str = "b{i}(n * 2) b{i}(n * 2 + 1)", arg: str = "1") -> str:
    """Blocks each using the one below twice (with different arguments, by default): 2^depth leaves."""
    lines = [f"block b0(n) {{ {leaf} }}"] + [f"block b{i + 1}(n) {{ {twice.format(i=i)} }}" for i in range(depth)]
    return "\n".join(lines) + f"\nnet n {{ input 8x8x8 b{depth}({arg}) }}\n"


def balanced(depth: int) -> str:
    """An expression of 2^(depth + 1) - 1 terms, nested `depth` deep."""
    text = "1"
    for _ in range(depth):
        text = f"({text} + {text})"
    return text


def block_call(size: int) -> str:
    """A block of as many parameters as fit in `size` characters, used once with an argument for each."""
    def text(n: int) -> str:
        return ("block b(" + ", ".join(f"p{i}" for i in range(n)) + ") { relu }\nnet n { input 8 b("
                + ", ".join(str(i) for i in range(n)) + ") }")

    lo, hi = 1, size // 4  # text(lo) fits, text(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if len(text(mid)) <= size else (lo, mid)
    return text(lo)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[float], str]  # scale (1.0: full size) -> the file's text
    expect: str  # "ok", "invalid" (located errors, exit 1), or an error code that must be among them
    what: str


def _size(scale: float) -> int:
    """The text size of a case that fills the file: the default size limit at scale 1 (less a
    little for the rest)."""
    return max(2000, int(DEFAULT_MAX_BYTES * scale) - 64)


def _n(scale: float, full: int) -> int:
    """A count that makes the text larger: `full` at scale 1, at least 10."""
    return max(10, int(full * scale))


# The cases. At scale 1 each file is at most the size limit; smaller scales shrink the sizes that grow
# with the text (the limit-driven cases are small files whatever the scale).
CASES = [
    # blocks that multiply
    Case("blocks doubling, distinct arguments", lambda s: doubling(30), "E407",
         "30 blocks, each using the one below twice with different arguments (1.3 KB)"),
    Case("blocks doubling, same arguments", lambda s: doubling(30, twice="b{i}(n) b{i}(n)"), "E407",
         "the same with equal arguments: the layer bound counts each block once"),
    Case("blocks doubling, empty bodies", lambda s: doubling(30, leaf=""), "E407",
         "distinct arguments, and the leaves make no layer"),
    Case("blocks doubling, heads only", lambda s: doubling(30, twice="head {{ b{i}(n * 2) }} head {{ b{i}(n * 2 + 1) }}"),
         "E407", "every block's body is two heads"),
    Case("blocks doubling, groups", lambda s: doubling(30, twice="g: {{ b{i}(n * 2) }} h: {{ b{i}(n * 2 + 1) }}"),
         "E407", "every use in a labelled group of its own"),
    Case("blocks, joins of 30 branches", lambda s: doubling(
        5, twice="concat {{ " + " | ".join(f"b{{i}}(n * 30 + {j})" for j in range(30)) + " }}"), "E407",
        "each block a concat of 30 uses of the one below"),
    Case("blocks, repeats of distinct counts", lambda s: doubling(
        30, twice="repeat n % 5 + 1 {{ b{i}(n * 2) }} b{i}(n * 2 + 1)"), "E407", "repeats whose counts differ per use"),
    Case("blocks within the limits", lambda s: doubling(15), "ok",
         "a valid net of 32,768 layers and 65,535 block instances"),
    # repeats
    Case("repeat of 10^9", lambda s: "net n { input 8 repeat 1000000000 { relu } }", "E407", ""),
    Case("repeats nested to 10^60", lambda s: "net n { input 8 " + "repeat 1000000 { " * 10 + "relu" + " }" * 10
         + " }", "E407", ""),
    Case("repeated error with a hint", lambda s: "net n { input 3 repeat 99999 { relu head from nowhere { relu } } }",
         "E202", "issue item 2: 99,999 times the same undefined name, among 99,999 layers (66 bytes)"),
    Case("repeat of heads", lambda s: "net n { input 3 repeat 49999 { relu head { relu } } }", "ok",
         "a valid net of 99,998 layers, half of them in 49,999 heads"),
    Case("repeat of a block of many parameters", lambda s: "block b(" + ", ".join(
        f"p{i} = {i}" for i in range(2000)) + ") { relu }\nnet n { input 8 repeat 10000 { b } }", "E407",
        "each use evaluates 2,000 defaults"),
    Case("repeat of an argument of 8,191 terms", lambda s: "net n { input 8 repeat 100000 { linear("
         + balanced(12) + ") } }", "E407", "a balanced sum, evaluated again on each pass"),
    Case("max layers, scopes and steps", lambda s: "block b(a, b, c) { conv(a + b - c, 1) }\n"
         "net n { input 8x4x4 r: repeat 49999 { b(4, 3, 2) relu } }", "ok",
         "a valid net at the limits: 99,998 layers, 100,000 scopes, 850,000 steps"),
    # nesting
    Case("blocks 100 deep, each used twice", lambda s: "".join(
        f"block b{i} {{ b{i + 1} b{i + 1} }}\n" for i in range(99)) + "block b99 { relu }\nnet n { input 8 b0 }",
        "E407", ""),
    Case("braces 99 deep, in a repeat", lambda s: "net n { input 8 repeat 2000 { " + "g: { " * 97 + "relu"
         + " }" * 97 + " } }", "E407", "every pass nests 97 groups: 97 scopes a pass"),
    Case("100,000 layers 97 blocks deep", lambda s: "".join(f"block b{i} {{ b{i + 1} }}\n" for i in range(96))
         + "block b96 { repeat 1000 { relu } }\nnet n { input 8 repeat 99 { b0 } }", "ok",
         "every layer inside 97 block instances"),
    Case("brackets 10^6 deep", lambda s: _fill("(", _size(s), "net n { input 8 linear(", ") }"), "E408", ""),
    # joins
    Case("a concat of 75,000 branches", lambda s: _fill(" relu |", _size(s), "net n { input 8x2x2 concat {",
                                                         " relu } }"), "ok", "as many branches as fill the file"),
    Case("a concat of 40,000 branches", lambda s: _fill(" conv(1, 1) |", _size(s), "net n { input 8x2x2 concat {",
                                                         " conv(1, 1) } }"), "ok", "valid: one layer of 40,000 inputs"),
    Case("an add of 40,000 mismatched branches", lambda s: _fill(" conv(1, 1) | conv(2, 1) |", _size(s),
                                                                  "net n { input 8x2x2 add {", " relu } }"), "E403",
         "every other branch of another shape: one error"),
    Case("a concat of 20,000 mismatched branches", lambda s: _fill(" conv(1, 1) | maxpool(2) |", _size(s),
                                                                    "net n { input 8x2x2 concat {", " relu } }"),
         "E402", "every other branch of another size"),
    # names
    Case("a label filling the file", lambda s: "net n { input 8 " + "a" * (_size(s) - 40) + ": relu }", "E410", ""),
    Case("names filling the file, misspelt", lambda s: "block " + "b" * (_size(s) // 4) + " { relu }\nnet n { input 8 "
         + "b" * (_size(s) // 4 - 1) + "c linear(" + "x" * (_size(s) // 4) + ") }", "E410", ""),
    Case("long labels nested 40 deep, repeated", lambda s: "block b { " + "".join(
        f"{chr(97 + i % 26) * 2000}{i}: {{ " for i in range(40)) + "relu" + " }" * 40
         + " }\nnet n { input 8 r: repeat 1000 { b } }", "E410", "every layer would be named by 80 KB of labels"),
    Case("labels of 1,000 characters nested, repeated", lambda s: "block b { " + "".join(
        f"{chr(97 + i % 26) * 999}: {{ " for i in range(40)) + "relu" + " }" * 40
         + " }\nnet n { input 8 r: repeat 1000 { b } }", "E410", "the dotted names pass the limit"),
    Case("a long undefined name, repeated", lambda s: "net n { input 8 repeat 99999 { linear(" + "x" * 1000
         + ") } }", "E202", "the same error, quoting a name of 1,000 characters, 99,999 times"),
    Case("a repeat of a block of 100 huge arguments", lambda s: "block b(" + ", ".join(f"p{i}" for i in range(100))
         + ") { relu }\nnet n { input 8 repeat 9000 { b(" + ", ".join([str(10 ** 59)] * 100) + ") } }", "ok",
         "block titles of 6,000 characters, 9,000 of them"),
    Case("a block of 50,000 parameters", lambda s: _units(lambda i: f"p{i} = {i}, ", _size(s) // 2, "block b(",
                                                           "z = 0) { relu }\n") + "net n { input 8 b b b }",
         "ok", ""),
    Case("a net of 25,000 parameters", lambda s: _units(lambda i: f"p{i} = {i}, ", _size(s), "net n(",
                                                        "z = 0) { input 8 relu }"), "ok", ""),
    # errors
    Case("many distinct errors, many names", lambda s: "net n { input 8 " + "relu " * _n(s, 20_000) + "".join(
        f"head from nowhere{i} {{ relu }} " for i in range(1000)) + "}", "E202",
         "1,000 distinct undefined names, each hint a search among 20,000 layers"),
    Case("unknown ops among 20,000 blocks", lambda s: "".join(f"block blk{i} {{ relu }}\n" for i in range(_n(s, 20_000)))
         + "net n { input 8 " + " ".join(f"blkk{i}" for i in range(2000)) + " }", "E201", ""),
    Case("a full file of unknown ops", lambda s: _units(lambda i: f"x{i} ", _size(s), "net n { input 8 ", "}"), "E201", ""),
    Case("a full file of syntax errors", lambda s: _fill("conv(8 3) ", _size(s), "net n { input 8x8x8 ", "}"), "E100", ""),
    # labels that grow with the file: render shortens them (dot refuses a label past its bound)
    Case("a folded run of 99,999 ops", lambda s: "net n { input 8 linear(8) " + "relu " * (_n(s, 99_998) - 1)
         + "relu }", "ok", "one box: `linear 8 + relu ×99,998`"),
    Case("a block call of 36,000 arguments", lambda s: block_call(_size(s)), "ok",
         "a box titled by the call: `b(0, 1, 2, ...)`"),
    Case("500 layers named by 1,000 characters", lambda s: "net n { input 8 " + "".join(
        f"{chr(97 + i % 26) * 996}{i:03}: relu " for i in range(_n(s, 500))) + "}", "ok", "a box per layer"),
    # dense expressions: parsing is the cost
    Case("a full file of products and brackets", lambda s: _fill("linear((1*1+1)*(2-1)//1%7) ", _size(s),
                                                                "net n { input 8 ", "}"), "ok", ""),
    Case("a full file of names in sums", lambda s: _fill("linear(a+a-a+a-a+a-a+a-a+a) ", _size(s),
                                                        "net n(a = 1) { input 8 ", "}"), "ok", ""),
    # a full file of each kind of text
    Case("a full file of relu", lambda s: _fill("relu ", _size(s), "net n { input 8 ", "}"), "E407", ""),
    Case("a full file of conv layers", lambda s: _units(lambda i: f"c{i}: conv(8, 3, pad=1)\n", _size(s),
                                                  "net n {\ninput 8x8x8\n", "}\n"), "ok", ""),
    Case("a full file of sums", lambda s: _fill("linear(1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1) ", _size(s),
                                          "net n { input 8 ", "}"), "ok", "parsing is the cost"),
    Case("a full file of blocks", lambda s: _units(lambda i: f"block b{i} {{ b{i + 1} }}\n", _size(s) - 40)
         .replace("{ b", "{ relu b", 1) + "net n { input 8 b0 }", "invalid",
         "25,000 blocks, each using the next"),
    Case("a full file of comments", lambda s: _fill("# a comment\n", _size(s), "net n { input 8 relu }\n"), "ok", ""),
    Case("a full file on one line", lambda s: _fill("relu ", _size(s) // 3, "net n { input 8 ", "cnov }"), "E201", ""),
    Case("a full file of NUL bytes", lambda s: "\0" * _size(s), "E101", ""),
]


def texts(scale: float = 1.0) -> dict[str, str]:
    """Every case's text at `scale`."""
    return {case.name: case.make(scale) for case in CASES}


@dataclass
class Result:
    case: str
    command: str
    status: str  # "ok", "invalid" (exit 1), or what went wrong
    codes: str
    wall: float
    cpu: float
    rss: int  # bytes

    @property
    def over(self) -> bool:
        return self.cpu > BUDGET_S or self.rss > BUDGET_RSS


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (KILL_CPU_S, KILL_CPU_S + 5))
    resource.setrlimit(resource.RLIMIT_AS, (KILL_ADDRESS_SPACE, KILL_ADDRESS_SPACE))


def run_one(case: Case, command: str, scale: float, work: Path) -> Result:
    """Run one case in a fresh process under the limits; CPU time and peak memory from wait4."""
    path = work / "net.net"
    text = case.make(scale)
    assert len(text.encode("utf-8")) <= DEFAULT_MAX_BYTES, (case.name, len(text))
    path.write_text(text, encoding="utf-8")
    argv = [a.format(out=work) for a in COMMANDS[command]]
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "netdsl", *argv, str(path)], cwd=ROOT, stdout=out,
                                stderr=err, preexec_fn=_limits)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    stderr = (work / "stderr").read_text(encoding="utf-8", errors="replace")
    found = sorted({line.split("error[", 1)[1][:4] for line in stderr.splitlines() if "error[E" in line})
    code = proc.returncode
    said = [line for line in stderr.splitlines() if line.startswith("netdsl: error:")]
    if code < 0:
        outcome = f"killed by signal {-code}"
    elif "Traceback" in stderr or code not in (0, 1, 2) or code == 2 and not said:
        outcome = f"crashed (exit {code})"
    elif code == 2:  # the command refused in one line: render's bound on what Graphviz is given, say
        outcome = "refused: too large" if "over the limit" in said[-1] else \
            "dot failed" if "dot failed" in said[-1] else "error: " + said[-1][15:40]
    else:
        outcome = "ok" if code == 0 else "invalid"
        if case.expect in ("ok", "invalid") and outcome != case.expect or \
                case.expect.startswith("E") and case.expect not in found:
            outcome += f", expected {case.expect}"
    return Result(case.name, command, outcome, ",".join(found), wall, usage.ru_utime + usage.ru_stime,
                  usage.ru_maxrss * 1024)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", default="check", help=f"comma-separated, of {', '.join(COMMANDS)} (default check)")
    p.add_argument("--only", default="", help="run the cases whose name contains this")
    p.add_argument("--runs", type=int, default=1, help="runs per case; the fastest is kept (default 1)")
    p.add_argument("--scale", type=float, default=1.0, help="file sizes, as a fraction of 1 MiB (default 1)")
    args = p.parse_args()
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        p.error(f"unknown command {unknown[0]!r}")
    cases = [c for c in CASES if args.only in c.name]
    results: list[Result] = []
    width = max(len(c.name) for c in cases) + 2
    print(f"{'case':{width}}{'command':17}{'outcome':22}{'codes':18}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="netdsl-adversarial-") as tmp:
        for case in cases:
            for command in commands:
                runs = [run_one(case, command, args.scale, Path(tmp)) for _ in range(max(1, args.runs))]
                r = min(runs, key=lambda x: x.cpu)
                results.append(r)
                mark = "  OVER" if r.over else ""
                print(f"{case.name:{width}}{command:17}{r.status:22}{r.codes[:17]:18}{r.wall:8.2f}{r.cpu:8.2f}"
                      f"{r.rss / MIB:10.0f}{mark}", flush=True)
    print(f"\nthe worst case of each command (budget: {BUDGET_S:g} s, {BUDGET_RSS // MIB} MiB):")
    for command in commands:
        mine = [r for r in results if r.command == command]
        slowest, wall, biggest = (max(mine, key=lambda r: r.cpu), max(mine, key=lambda r: r.wall),
                                  max(mine, key=lambda r: r.rss))
        print(f"  {command:16} CPU {slowest.cpu:5.2f} s ({slowest.case}); wall {wall.wall:5.2f} s ({wall.case}); "
              f"peak {biggest.rss / MIB:.0f} MiB ({biggest.case})")
    bad = [r for r in results if r.over or r.status not in ("ok", "invalid", "refused: too large")]
    print(f"budget: {BUDGET_S:g} s CPU and {BUDGET_RSS // MIB} MiB per case; "
          + (f"{len(bad)} case(s) past it or failing" if bad else "every case within it"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
