"""The parser's LALR tables as plain JSON data, shipped read-only inside the package.

Building Lark's tables from the grammar takes about 0.2 s of a fresh process, more than all
the rest of a `netdsl check`.
Lark's own cache (`cache=`) saves that, but it is a pickle in a writable folder, and Lark
unpickles it before checking it: whoever can write that path (another user, in a race on a
shared cache folder) runs code as the user. These tables are JSON instead: reading them makes
only strings, numbers, lists and dicts, from which Lark builds its own rule, terminal and table
records (its `memo_serialize` format, as its standalone parsers load it), so nothing in the file
can run.

The file is generated from the grammar (`python -m netdsl.tables --write`, or `./dev tables`),
committed, and shipped in the wheel with the package. It is used only when it was built from
this very grammar (its SHA-256 is stored with it), by the installed Lark version, with the
parser's options; otherwise the parser is built from the grammar in memory, as correct and
about 0.2 s slower. Nothing is ever written at run time, and only regular files are read.
`tests/test_hardening_cli.py` checks that the shipped file equals a fresh build.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from collections import deque
from pathlib import Path
from typing import Any, Optional

import lark
from lark import Lark

TABLES_PATH = Path(__file__).resolve().parent / "parser_tables.json"
FORMAT = 1
# The options the parser is built with; the transformer is attached when the tables are loaded.
OPTIONS: dict[str, Any] = {"parser": "lalr", "keep_all_tokens": True, "maybe_placeholders": True,
                           "start": ["start", "expr"]}
MAX_BYTES = 4 << 20  # the tables are about 60 KB; anything far larger is not ours

# JSON has string keys and no tuples, Lark's data integer keys and tuples. Lark reads lists as
# well as tuples, looks its tokens up by the keys of each state's actions (strings on both
# sides, then) and its memo by index (a list): only the states' own keys need to be integers
# again, which `_restore` makes them, so the text is read by json's C decoder alone.


def read_regular(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file at `path`. A FIFO, device or folder raises OSError at
    once instead of blocking (the file is opened without waiting, then checked)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{path} is larger than {max_bytes} bytes")
    return data


def grammar_digest(grammar: str) -> str:
    """The SHA-256 of the grammar's text, which tables built from it carry."""
    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


def build(grammar: str) -> dict[str, Any]:
    """The tables of `grammar` as JSON-ready data: Lark's serialised parser, its states and
    tokens numbered canonically (Lark numbers them in an order that depends on string hashing,
    which changes from run to run), with the digest, Lark version and options they hold for."""
    from lark.grammar import Rule
    from lark.lark import _LOAD_ALLOWED_OPTIONS
    from lark.lexer import TerminalDef

    data, memo = Lark(grammar, **OPTIONS).memo_serialize([TerminalDef, Rule])
    # as Lark.save does: options given again when loading (the transformer) are not data
    data["options"] = {k: v for k, v in data["options"].items() if k not in _LOAD_ALLOWED_OPTIONS}
    data["parser"]["parser"] = _canonical(data["parser"]["parser"])
    if sorted(memo) != list(range(len(memo))):
        raise TypeError("Lark's memo is not numbered 0, 1, ...: its format has changed")
    return {"format": FORMAT, "grammar_sha256": grammar_digest(grammar), "lark": lark.__version__,
            "options": OPTIONS, "data": _plain(data), "memo": [_plain(memo[i]) for i in range(len(memo))]}


def dumps(tables: dict[str, Any]) -> str:
    """The tables as the text of the shipped file."""
    return json.dumps(tables, separators=(",", ":")) + "\n"


def load(grammar: str, transformer: Any) -> Optional[Lark]:
    """A parser from the shipped tables, if they were built from `grammar` by this Lark with
    these options; else None (the caller builds one from the grammar)."""
    try:
        tables = json.loads(read_regular(TABLES_PATH))
    except (OSError, ValueError):  # missing (an unusual install), not a regular file, not JSON
        return None
    if not (isinstance(tables, dict) and tables.get("format") == FORMAT and tables.get("lark") == lark.__version__
            and tables.get("grammar_sha256") == grammar_digest(grammar) and tables.get("options") == OPTIONS):
        return None  # the grammar was edited (run `python -m netdsl.tables --write`) or Lark upgraded
    try:
        return Lark._load_from_dict(_restore(tables["data"]), tables["memo"], transformer=transformer)
    except Exception:  # tables of the right digest that Lark cannot load: build instead of failing
        return None


def _canonical(table: dict[int, Any]) -> dict[str, Any]:
    """Lark's parse table with tokens numbered in name order and states in the order a
    breadth-first walk from the start states meets them (tokens tried in name order)."""
    names = table["tokens"]
    token_order = sorted(names, key=names.get)
    new_token = {old: new for new, old in enumerate(token_order)}
    states, number = table["states"], {}
    queue: deque = deque()

    def visit(state: int) -> None:
        if state not in number:
            number[state] = len(number)
            queue.append(state)

    for start in sorted(table["start_states"]):
        visit(table["start_states"][start])
    while queue:
        for token, (action, arg) in sorted(states[queue.popleft()].items(), key=lambda kv: names[kv[0]]):
            if action == 0:  # a shift (or goto): `arg` is the next state
                visit(arg)
    for state in states:  # none is unreachable in an LALR table; kept in case
        visit(state)
    return {
        "tokens": {new_token[old]: names[old] for old in token_order},
        "states": {number[s]: {new_token[t]: (a, number[arg] if a == 0 else arg)
                               for t, (a, arg) in sorted(states[s].items(), key=lambda kv: names[kv[0]])}
                   for s in sorted(states, key=number.get)},
        "start_states": {k: number[v] for k, v in sorted(table["start_states"].items())},
        "end_states": {k: number[v] for k, v in sorted(table["end_states"].items())},
    }


def _plain(value: Any) -> Any:
    """Lark's serialised data as JSON has it: tuples as lists (integer keys become strings)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"not plain data: {type(value).__name__}")  # would be a change in Lark's format


def _restore(data: dict[str, Any]) -> dict[str, Any]:
    """The decoded data as Lark loads it: the parse table's states keyed by integers again."""
    table = data["parser"]["parser"]
    table["states"] = {int(k): v for k, v in table["states"].items()}
    return data


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m netdsl.tables [--write]`: say whether the shipped tables match the grammar;
    with --write, regenerate them (after editing grammars/netdsl.lark)."""
    from .parser import grammar_path

    argv = sys.argv[1:] if argv is None else argv
    grammar = read_regular(grammar_path()).decode("utf-8")
    text = dumps(build(grammar))
    try:
        current = read_regular(TABLES_PATH).decode("utf-8") == text
    except OSError:
        current = False
    if argv == ["--write"]:
        if not current:
            tmp = TABLES_PATH.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, TABLES_PATH)
        print(f"{TABLES_PATH}: {'unchanged' if current else 'written'}")
        return 0
    if argv:
        print("usage: python -m netdsl.tables [--write]", file=sys.stderr)
        return 2
    print(f"{TABLES_PATH}: {'current' if current else 'out of date: run python -m netdsl.tables --write'}")
    return 0 if current else 1


if __name__ == "__main__":
    sys.exit(main())
