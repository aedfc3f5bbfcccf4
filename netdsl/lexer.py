"""A Pygments lexer for .net files: `pygmentize -l netdsl FILE`, and ```netdsl blocks in Sphinx
and mkdocs (pyproject.toml registers it under Pygments' `pygments.lexers` entry point).

Nothing here is a second copy of the language: the keywords, symbols and number forms are the
grammar's (netdsl/vocabulary.py reads them from it), the built-in names are the op registry's.
A keyword or op added there is highlighted here with no change. The file's own names are told
apart too: `label:` as a label, the name after `block` where it is defined and where it is used.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, Whitespace

from .ops import REGISTRY
from .vocabulary import (BRACKETS, CONSTANT_KEYWORDS, DEFINITION_KEYWORDS, OPERATORS, OTHER_KEYWORDS,
                         PATH_KEYWORDS, alternatives, terminal)

__all__ = ["NetdslLexer"]

NAME = terminal("NAME")
PATH = rf"{NAME}(?:\.(?:{NAME}|{terminal('INT')}))*"  # the grammar's `path`
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
            (terminal("COMMENT"), Comment.Single),
            (rf"({alternatives(DEFINITION_KEYWORDS)})(\s+)({NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (alternatives(DEFINITION_KEYWORDS), Keyword.Declaration),
            (rf"({alternatives(PATH_KEYWORDS)})(\s+)({PATH})", bygroups(Keyword, Whitespace, Name.Variable)),
            (alternatives(PATH_KEYWORDS), Keyword),
            (alternatives(CONSTANT_KEYWORDS), Keyword.Constant),
            (alternatives(OTHER_KEYWORDS), Keyword),
            (rf"({NAME}|{terminal('INT')}|{terminal('QUOTED')})(\s*)(:)",  # `conv1:`, `0:`, `"block1-0":`
             bygroups(Name.Label, Whitespace, Punctuation)),
            (rf"({NAME})(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (alternatives(REGISTRY), Name.Builtin),
            (NAME, Name),
            # in the grammar's priority: a shape (`3x3`) outranks a float, which outranks an int
            (terminal("SHAPE"), Number),
            (terminal("FLOAT"), Number.Float),
            (terminal("INT"), Number.Integer),
            (alternatives(BRACKETS, word=False), Punctuation),
            (alternatives(OPERATORS, word=False), Operator),
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
