"""Files the commands read and write: paths shown safely, outputs that would destroy an input
refused, and `fmt`'s rewrite of a file in place.

- `shown(path)`: a path for a message, its control characters escaped (`a\\x1b[2Jb.net`), so a
  file name can never move the cursor, clear the screen or forge a line of output.
- `refuse_overwrite(outputs, inputs)`: every command that writes calls it before any work; an
  output that is the same file as an input (by identity: device and inode, so through symlinks,
  hard links and other spellings of the name) is refused with a one-line error.
- `read_for_rewrite` and `rewrite`: `fmt` formats the file, not the name: a symlink's target is
  written (the link stays), a file with several hard links is written in place (the links stay
  one file), the mode is kept, a read-only file is refused, and FIFOs and devices are never opened
  for writing (nor waited on for reading).
"""

from __future__ import annotations

import os
import stat
from typing import Iterable, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
FileId = tuple[int, int]  # (st_dev, st_ino): what makes two names one file

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(path: Union[PathLike, bytes]) -> str:
    """`path` as text for a message: control and other invisible characters escaped
    (`\\n`, `\\x1b`, `\\u202e`), and bytes that are not UTF-8 shown as `\\xNN`."""
    text = os.fsdecode(os.fspath(path))
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def shown_text(text: str) -> str:
    """A one-line message with any control characters in it escaped as `shown` does."""
    if text.isprintable():
        return text
    return shown(text)


# --- outputs over inputs --------------------------------------------------------------------

class WouldOverwrite(Exception):
    """An output is the same file as an input: writing it would destroy the input."""


def file_id(path: PathLike) -> Optional[FileId]:
    """The identity of the file at `path` (symlinks followed), or None if there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # missing, a name too long, a NUL in it: no file to protect
        return None
    return st.st_dev, st.st_ino


def stdin_id() -> Optional[FileId]:
    """The identity of standard input when it is a regular file (`netdsl fmt - < x.net`)."""
    try:
        st = os.fstat(0)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def refuse_overwrite(outputs: Iterable[tuple[PathLike, str]],
                     inputs: Iterable[tuple[str, Union[PathLike, FileId, None]]]) -> None:
    """Raise `WouldOverwrite` if an output is the same file as an input. `outputs` are
    (path, how to choose another), `inputs` (what it is, its path or identity). An output
    that does not exist yet is a new file, and so no input."""
    known = []
    for what, given in inputs:
        ident = given if isinstance(given, tuple) or given is None else file_id(given)
        if ident is not None:
            known.append((what, given, ident))
    for path, hint in outputs:
        ident = file_id(path)
        for what, given, in_ident in known:
            if ident == in_ident:
                alias = "" if isinstance(given, tuple) or os.fspath(given) == os.fspath(path) else f" ({shown(given)})"
                raise WouldOverwrite(f"refusing to write {shown(path)}: it is {what}{alias}; {hint}")


# --- fmt: rewriting a file in place ----------------------------------------------------------

class Refused(Exception):
    """A file `fmt` will not read or write as it is (not a regular file, read-only, changed)."""


class Original:
    """A file as `fmt` read it: the resolved path it writes, its bytes and its status then."""

    __slots__ = ("target", "data", "status")

    def __init__(self, target: str, data: bytes, status: os.stat_result):
        self.target, self.data, self.status = target, data, status


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "no regular file"


def read_for_rewrite(name: PathLike, max_bytes: int) -> Original:
    """Read the regular file `name` names (its symlinks resolved), at most `max_bytes + 1`
    bytes. A FIFO, device, socket or folder is refused before it is opened (a FIFO would
    block, a device never ends); OSError for a file that cannot be read."""
    target = os.path.realpath(name)
    st = os.stat(target)
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"cannot read {shown(name)}: it is {_kind(st.st_mode)}, not a file fmt can rewrite")
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise Refused(f"{shown(name)} changed while fmt read it; run fmt again")
        from .network import read_limited

        data = read_limited(f, max_bytes)
    return Original(target, data, now)


def writable(original: Original) -> bool:
    """Does the file's mode let this user write it? A file without any write permission is
    read-only for everyone, the superuser included (who `os.access` would always allow)."""
    return bool(original.status.st_mode & 0o222) and os.access(original.target, os.W_OK)


def rewrite(original: Original, data: bytes, shown_name: str) -> None:
    """Write `data` over the file `original` was read from, as the same file.

    When the file is this user's and has one name, a new file is written beside it and renamed
    over it (so an interruption never leaves half a net), with its mode. Otherwise (several hard
    links, another owner, a folder we cannot create files in) it is written in place, which
    keeps every link, the owner and any extended attributes. Either way, the file must still be
    what was read: a file changed meanwhile is refused rather than overwritten."""
    if not writable(original):
        raise Refused(f"{shown_name} is read-only; fmt leaves it as it is (make it writable to format it, "
                      "or see the changes with --diff)")
    import tempfile

    st = original.status
    if st.st_nlink == 1 and st.st_uid == getattr(os, "geteuid", lambda: st.st_uid)():
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(original.target), prefix=".netdsl-fmt-")
        except PermissionError:
            pass  # the folder is not ours to create files in: in place, below
        else:
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                    os.fsync(f.fileno())
                _unchanged(original, shown_name)
                os.replace(tmp, original.target)
            except BaseException:
                os.unlink(tmp)
                raise
            return
    fd = os.open(original.target, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "r+b") as f:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or f.read(len(original.data) + 1) != original.data:
            raise Refused(f"{shown_name} changed while fmt formatted it; it is left as it is (run fmt again)")
        f.seek(0)
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def _unchanged(original: Original, shown_name: str) -> None:
    """Refuse if the file at the target is no longer the one read, or holds other bytes."""
    try:
        with open(original.target, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            now = os.fstat(f.fileno())
            same = (now.st_dev, now.st_ino) == (original.status.st_dev, original.status.st_ino) and \
                f.read(len(original.data) + 1) == original.data
    except OSError:
        same = False
    if not same:
        raise Refused(f"{shown_name} changed while fmt formatted it; it is left as it is (run fmt again)")

