"""Differential testing, the long run: random valid nets (tests/random_nets.py), each checked
every way (tests/differential_check.py) in a child process of its own, so that a native crash
or a hang is caught, reported with the net's text, and the run goes on. Prints how many nets
were generated, refused by netdsl (by error code), compiled, and failed (by kind), with rates
and timings; every failure is minimised (its syntax tree delta-debugged while the failure
persists, each candidate in a child process too) and written to
tests/differential_regressions/KIND-HASH.net, which tests/test_differential.py replays.

    .venv/bin/python bench/differential.py --count 10000 --seed 1
    .venv/bin/python bench/differential.py --count 2000 --no-avoid     # the known crash classes too

Children are forked from this process, which first checks one small net itself with one
thread (so every module a check loads is loaded once, and no thread pool is running when it
forks); each child uses one thread. Linux and macOS only (os.fork).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import select
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import random_nets  # noqa: E402
from differential_check import FAILURES, Verdict, check, check_refusals, minimise  # noqa: E402

REGRESSIONS = ROOT / "tests" / "differential_regressions"
SEED_STRIDE = 1_000_000   # net i of a run with --seed S is random_nets.generate(S * SEED_STRIDE + i)


# --- children ----------------------------------------------------------------------------

class Child:
    """A forked child running `work(send)`; `send(dict)` passes a message back (JSON lines)."""

    def __init__(self, work: Callable[[Callable[[dict], None]], None], tag):
        self.tag, self.started, self.buffer = tag, time.monotonic(), b""
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            os.close(read)
            code = 0
            try:
                import torch
                torch.set_num_threads(1)

                def send(message: dict) -> None:
                    data = (json.dumps(message) + "\n").encode()
                    while data:
                        data = data[os.write(write, data):]

                work(send)
            except BaseException:  # noqa: B036 - the child reports and ends, whatever happened
                import traceback
                try:
                    os.write(write, (json.dumps({"error": traceback.format_exc()[-3000:]}) + "\n").encode())
                except OSError:
                    pass
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self.fd = read

    def read(self) -> bool:
        """Read what is there; False at the end (the child has exited or closed its end)."""
        chunk = os.read(self.fd, 1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def messages(self) -> list[dict]:
        out = []
        for line in self.buffer.decode(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def finish(self, kill: bool = False) -> Optional[int]:
        """Reap the child; the signal that ended it, or None."""
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def run_children(jobs: list, start: Callable, done: Callable, parallel: int, timeout: float) -> None:
    """Run `start(job) -> Child` for every job, `parallel` at a time; `done(child, verdict)`
    with the verdict its messages, exit signal or time limit give."""
    pending, running = list(jobs), {}
    while pending or running:
        while pending and len(running) < parallel:
            child = start(pending.pop(0))
            running[child.fd] = child
        ready, _, _ = select.select(list(running), [], [], 1.0)
        now = time.monotonic()
        for fd in ready:
            child = running[fd]
            if not child.read():
                del running[fd]
                done(child, _verdict(child, child.finish(), now - child.started))
        for fd, child in list(running.items()):
            if now - child.started > timeout:
                del running[fd]
                child.finish(kill=True)
                done(child, Verdict("timeout", f"still running after {timeout:.0f} s", seconds=now - child.started))


def _verdict(child: Child, signum: Optional[int], seconds: float) -> Verdict:
    messages = child.messages()
    final = next((m for m in reversed(messages) if "verdict" in m), None)
    if signum is not None:
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        return Verdict("crash", f"killed by {name}", seconds=seconds)
    if final is None:
        error = next((m["error"] for m in messages if "error" in m), "no verdict")
        return Verdict("oracle", error, seconds=seconds)
    v = final["verdict"]
    return Verdict(v["kind"], v["detail"], tuple(v["codes"]), v["seconds"])


def _verdict_message(v: Verdict) -> dict:
    return {"verdict": {"kind": v.kind, "detail": v.detail, "codes": list(v.codes), "seconds": v.seconds}}


# --- one net, one candidate --------------------------------------------------------------

def net_work(seed: int):
    def work(send):
        try:
            net = random_nets.generate(seed)
        except (random_nets.GeneratorBug, random_nets.Invalid) as e:
            send(_verdict_message(Verdict("generator", str(e)[:3000])))
            return
        send({"text": net.text, "layers": len(net.model.layers), "rejected": dict(net.rejected),
              "classes": sorted(net.model.crash_classes), "refusals": len(net.refusals)})
        verdict = check(net.text, f"net{seed}.net")
        if verdict.kind == "ok":  # and the layers the registry refused on the way: torch must refuse them
            judged = check_refusals(net.refusals)
            if judged.failed:
                judged.seconds = verdict.seconds
                verdict = judged
        send(_verdict_message(verdict))
    return work


def text_work(text: str):
    def work(send):
        send({"text": text})
        send(_verdict_message(check(text, "candidate.net")))
    return work


def run_one(text: str, timeout: float) -> Verdict:
    """The verdict of one text, in a child process."""
    result = []
    run_children([text], lambda t: Child(text_work(t), None), lambda c, v: result.append(v), 1, timeout)
    return result[0]


# --- the run -----------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000, help="nets to generate (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="net i is random_nets.generate(SEED * 1000000 + i)")
    p.add_argument("--jobs", type=int, default=2, help="nets checked at once (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a net may take (default 120)")
    p.add_argument("--no-avoid", action="store_true",
                   help="generate the known crash classes too (random_nets.AVOIDED, all switched off)")
    p.add_argument("--minimise", type=int, default=3, help="failures minimised per kind (default 3; 0: none)")
    p.add_argument("--budget", type=int, default=400, help="candidates tried per minimisation (default 400)")
    p.add_argument("--failures", type=Path, default=None,
                   help="also write every failing net's full text to this folder")
    p.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (stderr)")
    args = p.parse_args()
    if args.no_avoid:
        for name in random_nets.AVOIDED:
            setattr(random_nets, name, False)
    warm_up()

    began = time.perf_counter()
    seeds = [args.seed * SEED_STRIDE + i for i in range(args.count)]
    kinds: collections.Counter = collections.Counter()
    refused: collections.Counter = collections.Counter()
    rejected: collections.Counter = collections.Counter()
    refusals = [0]
    classes: collections.Counter = collections.Counter()
    failures: dict[str, list] = collections.defaultdict(list)
    seconds, layers = [], []
    last = [time.perf_counter()]

    def done(child: Child, verdict: Verdict) -> None:
        messages = child.messages()
        first = next((m for m in messages if "text" in m), {})
        kinds[verdict.kind] += 1
        if verdict.kind == "refused":
            refused.update(verdict.codes)
        rejected.update(first.get("rejected", {}))
        refusals[0] += first.get("refusals", 0)
        classes.update(first.get("classes", []))
        if verdict.kind not in ("crash", "timeout", "generator", "oracle"):
            seconds.append(verdict.seconds)
        if "layers" in first:
            layers.append(first["layers"])
        if verdict.failed:
            text = first.get("text", "")   # none when the generator itself failed
            failures[verdict.kind].append((child.tag, text, verdict))
            if args.failures and text:
                args.failures.mkdir(parents=True, exist_ok=True)
                (args.failures / f"{verdict.kind}-{child.tag}.net").write_text(text)
            print(f"FAILED net {child.tag}: {verdict.kind}: {verdict.detail.strip().splitlines()[-1][:300]}",
                  file=sys.stderr, flush=True)
        if time.perf_counter() - last[0] > args.progress:
            last[0] = time.perf_counter()
            n = sum(kinds.values())
            print(f"... {n:,}/{args.count:,} nets in {last[0] - began:.0f} s: {dict(kinds)}",
                  file=sys.stderr, flush=True)

    run_children(seeds, lambda seed: Child(net_work(seed), seed), done, args.jobs, args.timeout)
    elapsed = time.perf_counter() - began

    report(args, kinds, refused, rejected, refusals[0], classes, failures, seconds, layers, elapsed)
    written = []
    if args.minimise:
        for kind, found in sorted(failures.items()):
            if kind in ("refusal-wrong", "generator", "oracle"):
                continue   # not a property of the net's text (the detail says what to do)
            for seed, text, verdict in sorted(found, key=lambda f: len(f[1]))[:args.minimise]:
                if not text:
                    continue
                written.append(minimise_and_write(kind, seed, text, verdict, args))
    if written:
        print(f"\nminimised failures in {REGRESSIONS.relative_to(ROOT)}/:")
        for path, before, after, tried, took in written:
            print(f"  {path.name}: {before} -> {after} lines, {tried} candidates, {took:.0f} s")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 1 if failures else 0


WARM_UP = "net warm { input 3x8x8  conv(4, 3, pad=1)  batchnorm  relu  aux: train head { flatten  linear(2) }  " \
          "global_avgpool  flatten  linear(3)  batchnorm }"


def warm_up() -> None:
    """Everything a check loads on first use (torch, TorchScript, torch._dynamo through the
    optimiser: seconds), loaded here once rather than in every child. One thread only, so
    that no thread pool is running when the children are forked."""
    import torch
    torch.set_num_threads(1)
    verdict = check(WARM_UP, "warm.net")
    assert verdict.kind == "ok", verdict


def pct(n: int, total: int) -> str:
    return f"{n:,} ({100 * n / total:.2f}%)" if total else f"{n:,}"


def report(args, kinds, refused, rejected, refusals, classes, failures, seconds, layers, elapsed) -> None:
    total = sum(kinds.values())
    generated = total - kinds["generator"]
    not_compiled = {"refused", "accepted", "model", "compile", "loads-raised", "invalid", "generator", "oracle"}
    compiled = sum(v for k, v in kinds.items() if k not in not_compiled)
    failed = sum(v for k, v in kinds.items() if k not in ("ok", "invalid"))
    avoid = ", known crash classes not avoided" if args.no_avoid else ""
    print(f"differential run: {total:,} nets (seed {args.seed}{avoid}) in {elapsed:.0f} s, {args.jobs} at a time")
    print(f"generated:  {pct(generated, total)}   (generator failures: {kinds['generator']:,})")
    print(f"refused by netdsl: {pct(kinds['refused'], generated)}"
          + (f"   by code: {', '.join(f'{c} {n:,}' for c, n in sorted(refused.items()))}" if refused else ""))
    print(f"compiled:   {pct(compiled, generated)}")
    print(f"all checks passed: {pct(kinds['ok'], generated)}")
    print(f"failures:   {pct(failed, generated)}")
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        if kind not in ("ok",):
            print(f"  {kind:22s} {pct(n, generated):>16s}   {FAILURES.get(kind, '')}")
    if seconds:
        q = statistics.quantiles(seconds, n=100) if len(seconds) >= 2 else seconds * 99
        print(f"time per net (checks, in the child): mean {statistics.mean(seconds) * 1000:.0f} ms, "
              f"median {statistics.median(seconds) * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
              f"max {max(seconds) * 1000:.0f} ms; {total / elapsed:.2f} nets/s overall")
    if layers:
        print(f"layers per net: mean {statistics.mean(layers):.1f}, max {max(layers)}")
    avoided = {k.removeprefix("avoid:"): n for k, n in rejected.items() if k.startswith("avoid:")}
    if avoided:
        print("candidate layers the generator left out as known crash classes: "
              + ", ".join(f"{k} {n:,}" for k, n in sorted(avoided.items())))
    codes = {k: n for k, n in rejected.items() if k.startswith("E")}
    if codes:
        print(f"candidate layers the registry's rules refused while generating: {sum(codes.values()):,} "
              f"({', '.join(f'{k} {n:,}' for k, n in sorted(codes.items()))}); {refusals:,} of them "
              "run through torch, which must refuse them too")
    if classes:
        print("nets holding a known crash class (--no-avoid): "
              + ", ".join(f"{k} {n:,}" for k, n in sorted(classes.items())))
    for kind, found in sorted(failures.items()):
        print(f"\n{kind} ({len(found)}): first nets {', '.join(str(s) for s, _, _ in found[:10])}")
        print("  " + found[0][2].detail.strip().splitlines()[-1][:400])


def minimise_and_write(kind: str, seed: int, text: str, verdict: Verdict, args):
    start = time.perf_counter()

    def still_fails(candidate: str) -> bool:
        return run_one(candidate, args.timeout).kind == kind

    small, tried = minimise(text, still_fails, budget=args.budget)
    final = run_one(small, args.timeout)
    digest = hashlib.sha256(small.encode()).hexdigest()[:10]
    path = REGRESSIONS / f"{kind}-{digest}.net"
    REGRESSIONS.mkdir(exist_ok=True)
    detail = (final.detail if final.kind == kind else verdict.detail).strip().splitlines()
    lines = [f"# kind: {kind}",
             "# status: open",
             f"# found: bench/differential.py --seed {args.seed}{' --no-avoid' if args.no_avoid else ''}, "
             f"net {seed} (random_nets.generate({seed})), minimised from {text.count(chr(10))} lines",
             f"# detail: {detail[-1][:300] if detail else ''}"]
    path.write_text("\n".join(lines) + "\n" + small)
    print(f"\n{path.name} ({kind}, net {seed}):\n{small}", flush=True)
    return path, text.count("\n"), small.count("\n"), tried, time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
