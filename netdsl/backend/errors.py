"""The backend's errors: one plain sentence each, for the user, never a traceback."""


class CompileError(Exception):
    """A request the backend cannot honour: an unknown option, a device that is not there,
    a file it cannot write, torch unable to run the net in the dtype asked for."""


class UncompilableNet(CompileError):
    """A net that checks but cannot become a torch module: too many parameters to allocate,
    or a layer name torch cannot use."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none (an
    empty file makes torch.load raise an EOFError without a message)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class UnmappableModule(CompileError):
    """`netdsl import` met a torch module or call that no op maps (or that an op cannot
    express): the message names the module path, its class and what is missing."""
