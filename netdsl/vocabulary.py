"""The language's words and token forms, read from the grammar (grammars/netdsl.lark), for the
tools that colour or complete .net text without parsing it: the Pygments lexer (netdsl/lexer.py),
the TextMate grammar of editors/vscode (editors/textmate.py writes it) and the language server.
A keyword, symbol or number form added to the grammar reaches them all from here.
"""

from __future__ import annotations

import re
from typing import Iterable

from .parser import KEYWORDS, grammar_path

__all__ = ["KEYWORDS", "DEFINITION_KEYWORDS", "CONSTANT_KEYWORDS", "PATH_KEYWORDS", "OTHER_KEYWORDS",
           "SYMBOLS", "BRACKETS", "OPERATORS", "terminal", "alternatives"]

GRAMMAR = grammar_path().read_text(encoding="utf-8")

# The words that open a definition (`net_def: "net" NAME ...`), those that are values
# (`"true" -> true_lit`), those a dotted path follows (`["from" path]`), and the rest.
DEFINITION_KEYWORDS = frozenset(re.findall(r'^\w+_def\s*:\s*"([A-Za-z_]+)"', GRAMMAR, re.M))
CONSTANT_KEYWORDS = frozenset(re.findall(r'"([A-Za-z_]+)"\s*->\s*\w+_lit', GRAMMAR))
PATH_KEYWORDS = frozenset(re.findall(r'"([A-Za-z_]+)"\s+path\b', GRAMMAR))
OTHER_KEYWORDS = KEYWORDS - DEFINITION_KEYWORDS - CONSTANT_KEYWORDS - PATH_KEYWORDS

# The grammar's symbols (its quoted literals that are not words): brackets and separators, and
# operators (`//` among them).
SYMBOLS = frozenset(re.findall(r'"([^"A-Za-z0-9_\s]+)"', GRAMMAR))
BRACKETS = SYMBOLS & set("(){}[],:;.")
OPERATORS = SYMBOLS - BRACKETS


def terminal(name: str) -> str:
    """A terminal's regular expression as the grammar defines it (`SHAPE.2: /[0-9]+(...)+/`),
    its alternatives (`/a/ | /b/`) joined, its groups made non-capturing (so that a caller can
    count its own groups)."""
    m = re.search(rf"^{name}(?:\.\d+)?\s*:\s*(.+)$", GRAMMAR, re.M)
    if m is None:
        raise KeyError(f"the grammar has no terminal {name}")
    parts = re.findall(r"/((?:\\.|[^/\\])+)/", m.group(1))
    if not parts:
        raise KeyError(f"the terminal {name} is not a regular expression")
    regex = "|".join(re.sub(r"(?<!\\)\((?!\?)", "(?:", p) for p in parts)
    return f"(?:{regex})" if len(parts) > 1 else regex


def alternatives(names: Iterable[str], word: bool = True) -> str:
    """A regex for any of `names`, longest first (`//` before `/`), as whole words if `word`;
    for no names, one that matches nothing (an empty alternative would match everywhere)."""
    names = sorted(names, key=lambda n: (-len(n), n))
    if not names:
        return "(?!)"
    body = "|".join(re.escape(n) for n in names)
    return rf"(?:{body})\b" if word else f"(?:{body})"
