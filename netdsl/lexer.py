"""A Pygments lexer for .net files: `pygmentize -l netdsl FILE`, and ```netdsl blocks in Sphinx
and mkdocs (pyproject.toml registers it under Pygments' `pygments.lexers` entry point).

Nothing here is a second copy of the language: the keywords are the grammar's (`parser.KEYWORDS`,
its quoted literals), the built-in names are the op registry's, and the number forms are the
grammar's terminals. A keyword or op added there is highlighted here with no change. Names the
file itself defines are told apart by a first pass over the text: `block` names are highlighted
where they are used, as calls, and `label:` as labels.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, Whitespace

from .ops import REGISTRY
from .parser import KEYWORDS, grammar_path

__all__ = ["NetdslLexer", "CONSTANT_KEYWORDS", "DEFINITION_KEYWORDS", "PATH_KEYWORDS", "SYMBOLS"]

_GRAMMAR = grammar_path().read_text(encoding="utf-8")
# The words that open a definition (`net_def: "net" NAME ...`), and those that are values
# (`"true" -> true_lit`): read from the grammar's rules, so that they follow it.
DEFINITION_KEYWORDS = frozenset(re.findall(r'^\w+_def\s*:\s*"([A-Za-z_]+)"', _GRAMMAR, re.M))
CONSTANT_KEYWORDS = frozenset(re.findall(r'"([A-Za-z_]+)"\s*->\s*\w+_lit', _GRAMMAR))
_OTHER_KEYWORDS = KEYWORDS - DEFINITION_KEYWORDS - CONSTANT_KEYWORDS
# the keywords a dotted path follows (`head from inception4a`), and the grammar's symbols
PATH_KEYWORDS = frozenset(re.findall(r'"([A-Za-z_]+)"\s+path\b', _GRAMMAR))
SYMBOLS = frozenset(re.findall(r'"([^"A-Za-z0-9_\s]+)"', _GRAMMAR))
_BRACKETS = SYMBOLS & set("(){}[],:;.")

# The grammar's terminals (grammars/netdsl.lark), in its priority: a shape outranks an integer.
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
SHAPE = r"[0-9]+(?:[x×][0-9]+)+"
FLOAT = r"[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
INT = r"[0-9]+"
PATH = rf"{NAME}(?:\.(?:{NAME}|[0-9]+))*"


def alternatives(names, word: bool = True) -> str:
    """A regex for any of `names`, longest first (`//` before `/`), as whole words if `word`."""
    if not names:
        return "(?!)"  # matches nothing (an empty alternative would match everywhere, advancing never)
    body = "|".join(re.escape(n) for n in sorted(names, key=lambda n: (-len(n), n)))
    return rf"(?:{body})\b" if word else f"(?:{body})"


_DEFINED = re.compile(rf"\b{alternatives(DEFINITION_KEYWORDS)}\s+({NAME})")


class NetdslLexer(RegexLexer):
    """netdsl's .net files: keywords, ops, numbers and shapes (`3x224x224`), labels, comments."""

    name = "netdsl"
    aliases = ["netdsl"]
    filenames = ["*.net"]
    mimetypes = ["text/x-netdsl"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (rf"({alternatives(DEFINITION_KEYWORDS)})(\s+)({NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (alternatives(DEFINITION_KEYWORDS), Keyword.Declaration),
            (rf"({alternatives(PATH_KEYWORDS)})(\s+)({PATH})",
             bygroups(Keyword, Whitespace, Name.Variable)),
            (alternatives(CONSTANT_KEYWORDS), Keyword.Constant),
            (alternatives(_OTHER_KEYWORDS), Keyword),
            (rf"({NAME})(\s*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (rf"({NAME})(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (alternatives(REGISTRY), Name.Builtin),
            (NAME, Name),
            (SHAPE, Number),
            (FLOAT, Number.Float),
            (INT, Number.Integer),
            (alternatives(_BRACKETS, word=False), Punctuation),
            (alternatives(SYMBOLS - _BRACKETS, word=False), Operator),
        ],
    }

    def get_tokens_unprocessed(self, text, stack=("root",)):
        """The regex lexer's tokens, with uses of the file's own blocks marked as functions."""
        # the names after `block` (and `net`: a net's name is never used, so no harm)
        blocks = set(_DEFINED.findall(text))
        for index, token, value in super().get_tokens_unprocessed(text, stack):
            if token is Name and value in blocks:
                token = Name.Function
            yield index, token, value
