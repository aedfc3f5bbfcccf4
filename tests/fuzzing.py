"""Mutation fuzzing of .net files, shared by tests/test_fuzz.py (a bounded, seeded run in CI)
and bench/fuzz.py (long runs).

A case is a file of nets/ with one or a few mutations: tokens or lines deleted, duplicated or
swapped; a number made 0, -1, huge or a float; the file cut short; random bytes injected. Its
outcome must be a valid net or a `NetDSLError` whose every location lies inside the text, within
the time budget; when the text parses, formatting it must keep its tree and be idempotent.
Anything else (another exception, a stray location, a slow case) is a failure.
"""

from __future__ import annotations

import io
import random
import re
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import netdsl
from netdsl.diagnostics import NetDSLError, source_lines
from netdsl.network import read_source
from netdsl.parser import parse
from netdsl.printer import format_source

BUDGET_S = 1.0
_TOKEN = re.compile(rb"[A-Za-z_0-9.]+|\s+|.", re.S)
_NUMBER = re.compile(rb"(?<![A-Za-z_0-9.])[0-9]+(?:\.[0-9]*)?")
_NUMBERS = [b"0", b"-1", b"1000000000", b"99999999999999999999999", b"1" + b"0" * 80, b"0.5", b"1e308", b"2.5"]


def _tokens(data: bytes) -> list[bytes]:
    return _TOKEN.findall(data)


def _on_pieces(split: Callable[[bytes], list[bytes]], join: bytes, action: str):
    def mutate(data: bytes, rng: random.Random) -> bytes:
        pieces = split(data)
        if len(pieces) < 2:
            return data
        i, j = rng.randrange(len(pieces)), rng.randrange(len(pieces))
        if action == "delete":
            del pieces[i]
        elif action == "duplicate":
            pieces.insert(i, pieces[i])
        else:
            pieces[i], pieces[j] = pieces[j], pieces[i]
        return join.join(pieces)
    mutate.__name__ = f"{action}_{'token' if join == b'' else 'line'}"
    return mutate


def change_number(data: bytes, rng: random.Random) -> bytes:
    numbers = list(_NUMBER.finditer(data))
    if not numbers:
        return data
    m = rng.choice(numbers)
    return data[:m.start()] + rng.choice(_NUMBERS) + data[m.end():]


def cut(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def inject_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    noise = bytes(rng.choice([rng.randrange(256), rng.choice(b"(){}|:,=#\n\t\r\0x-")])
                  for _ in range(rng.randint(1, 6)))
    return data[:at] + noise + data[at:]


MUTATIONS = [
    _on_pieces(_tokens, b"", "delete"), _on_pieces(_tokens, b"", "duplicate"), _on_pieces(_tokens, b"", "swap"),
    _on_pieces(lambda d: d.split(b"\n"), b"\n", "delete"), _on_pieces(lambda d: d.split(b"\n"), b"\n", "duplicate"),
    _on_pieces(lambda d: d.split(b"\n"), b"\n", "swap"),
    change_number, change_number, cut, inject_bytes,
]


@dataclass
class Case:
    name: str            # which file and which case, e.g. "googlenet.net#17"
    data: bytes
    mutations: list[str]


def cases(name: str, data: bytes, seed: int, count: int) -> Iterator[Case]:
    """`count` mutated versions of `data`, the same for the same seed."""
    rng = random.Random(f"{name}:{seed}")
    for i in range(count):
        mutated, applied = data, []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutate = rng.choice(MUTATIONS)
            mutated = mutate(mutated, rng)
            applied.append(mutate.__name__)
        yield Case(f"{name}#{i}", mutated, applied)


@dataclass
class Outcome:
    result: str                 # "ok", the error codes ("E100 E201"), or what went wrong
    seconds: float
    failure: Optional[str] = None


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout


def run(data: bytes, budget: float = BUDGET_S, interrupt: bool = True) -> Outcome:
    """Check one input as `netdsl check` would (and format it when it parses); a case still
    running after twice the budget is interrupted (where signals allow it)."""
    start = time.perf_counter()
    old = None
    if interrupt and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, 2 * budget)
    try:
        result, failure = _outcome(data)
    except _Timeout:
        result, failure = "timeout", f"still running after {2 * budget:.1f} s"
    except Exception:
        result, failure = "crash", traceback.format_exc()
    finally:
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    if failure is None and seconds > budget:
        failure = f"took {seconds:.2f} s, over the budget of {budget} s"
    return Outcome(result, seconds, failure)


def _outcome(data: bytes) -> tuple[str, Optional[str]]:
    text = None
    try:
        text = read_source(io.BytesIO(data), "case.net")
        netdsl.loads(text, "case.net")
        result = "ok"
    except NetDSLError as err:
        result = " ".join(sorted({d.code for d in err.diagnostics}))
        stray = _stray_location(err, err.source)
        if stray:
            return result, stray
    if text is not None:
        try:
            tree = parse(text)
        except NetDSLError:
            return result, None
        formatted = format_source(text)
        if parse(formatted) != tree:
            return result, "formatting changed the syntax tree"
        if format_source(formatted) != formatted:
            return result, "formatting is not idempotent"
    return result, None


def _stray_location(err: NetDSLError, text: str) -> Optional[str]:
    lines = source_lines(text)
    for d in err.diagnostics:
        spans = [d.span] + [n.span for n in d.notes if n.span is not None and n.span.line]
        for span in spans:
            if not (1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1):
                return f"{d.code} at {span.line}:{span.column}, outside the text"
    return None
