"""Error codes: one named constant for each kind of mistake, and its meaning in a line.

The hundreds say which stage finds it: E1xx reading and parsing the file, E2xx names and
structure, E3xx arguments and values, E4xx shapes and sizes. Messages stay where they are
raised; `netdsl/catalogue.py` explains each code at length (`netdsl explain CODE`).
"""

from __future__ import annotations

UNEXPECTED_TOKEN = "E100"
UNEXPECTED_CHARACTER = "E101"
UNEXPECTED_END = "E102"
NOT_TEXT = "E103"
FILE_TOO_LARGE = "E104"
UNKNOWN_OP = "E201"
UNDEFINED_NAME = "E202"
DUPLICATE_NAME = "E203"
RECURSIVE_BLOCK = "E204"
UNKNOWN_PARAMETER = "E205"
NOT_ONE_NET = "E206"
MISPLACED = "E207"
UNKNOWN_FUNCTION = "E208"
UNKNOWN_ARGUMENT = "E301"
MISSING_ARGUMENT = "E302"
TOO_MANY_POSITIONAL = "E303"
ARGUMENT_TWICE = "E304"
WRONG_TYPE = "E305"
OUT_OF_RANGE = "E306"
ARITHMETIC = "E307"
WRONG_ARITY = "E308"
NOT_A_BOOLEAN = "E309"
WINDOW_TOO_LARGE = "E401"
CONCAT_MISMATCH = "E402"
ELEMENTWISE_MISMATCH = "E403"
WRONG_RANK = "E404"
GROUPS_MISMATCH = "E405"
INPUT_DECLARATION = "E406"
NET_TOO_LARGE = "E407"
TOO_DEEP = "E408"
WINDOW_IN_PADDING = "E409"
NAME_TOO_LONG = "E410"
RANK_MISMATCH = "E411"
SPLIT_SIZES = "E412"
SPLIT_UNEVEN = "E413"

MEANINGS: dict[str, str] = {
    UNEXPECTED_TOKEN: "syntax error: a token that cannot come here",
    UNEXPECTED_CHARACTER: "syntax error: a character that is not part of the language",
    UNEXPECTED_END: "syntax error: the file ends inside a construct",
    NOT_TEXT: "the file is not a readable text file",
    FILE_TOO_LARGE: "the file is larger than the size limit",
    UNKNOWN_OP: "unknown op, join or block",
    UNDEFINED_NAME: "undefined name",
    DUPLICATE_NAME: "duplicate name",
    RECURSIVE_BLOCK: "recursive block",
    UNKNOWN_PARAMETER: "unknown network parameter",
    NOT_ONE_NET: "the file does not define exactly one net",
    MISPLACED: "misplaced construct",
    UNKNOWN_FUNCTION: "unknown function in an expression",
    UNKNOWN_ARGUMENT: "unknown argument",
    MISSING_ARGUMENT: "missing argument",
    TOO_MANY_POSITIONAL: "too many positional arguments",
    ARGUMENT_TWICE: "argument given twice",
    WRONG_TYPE: "wrong type",
    OUT_OF_RANGE: "value out of range",
    ARITHMETIC: "arithmetic error",
    WRONG_ARITY: "a function given the wrong number of arguments",
    NOT_A_BOOLEAN: "a condition that is not true or false",
    WINDOW_TOO_LARGE: "window larger than its padded input",
    CONCAT_MISMATCH: "concat inputs disagree",
    ELEMENTWISE_MISMATCH: "the inputs of an element-wise join disagree",
    WRONG_RANK: "wrong number of dimensions",
    GROUPS_MISMATCH: "channels not divisible by groups",
    INPUT_DECLARATION: "missing or repeated input declaration",
    NET_TOO_LARGE: "the net is too large",
    TOO_DEEP: "nested too deeply",
    WINDOW_IN_PADDING: "a pooling window lies entirely in the padding",
    NAME_TOO_LONG: "a name is longer than the limit",
    RANK_MISMATCH: "sizes per axis that disagree with the input's number of axes",
    SPLIT_SIZES: "split sizes that do not match the channels or the branches",
    SPLIT_UNEVEN: "channels that do not split into equal parts",
}
