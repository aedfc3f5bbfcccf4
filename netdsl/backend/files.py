"""The backend's own writes (saved weights, exports), made safely.

A destination is checked before any work: a folder, a device (`/dev/full`), a FIFO (which
would block until something reads it) or a socket is refused, as are names longer than the
file system takes. The file is then written beside its destination, in a new hidden folder,
and renamed over it only once complete: a write that fails (a full disk) leaves the old file
as it was and nothing else behind. torch's own writers are given a Python file object or
bytes, never a path, where a failed write of theirs would abort the process natively.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Union

from .errors import CompileError

NAME_MAX = 255  # bytes in one file name, where the file system does not say


def check_destination(path: Union[str, os.PathLike], error: type[Exception] = CompileError) -> Path:
    """`path` as a Path, once it is known that a regular file can be written there: raises
    `error` with one line saying why not."""
    path = Path(path)
    folder = path.parent
    limit = _name_max(folder)
    size = len(os.fsencode(path.name))
    if size > limit:
        raise error(f"cannot write {path}: the file name is {size} bytes, over the {limit} the file system allows")
    try:
        mode = os.stat(path).st_mode  # through a symlink: what it names is what gets written
    except FileNotFoundError:
        mode = None
    except OSError as e:  # a path too long as a whole, a loop of symlinks, a file used as a folder
        raise error(f"cannot write {path}: {e.strerror or e}") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise error(f"cannot write {path}: it is a folder")
        if not stat.S_ISREG(mode):
            raise error(f"cannot write {path}: it is a {_kind(mode)}, not a regular file")
    real_folder = Path(os.path.realpath(path)).parent
    if not real_folder.is_dir():
        raise error(f"cannot write {path}: there is no folder {folder}")
    if not os.access(real_folder, os.W_OK) or (mode is not None and not os.access(path, os.W_OK)):
        raise error(f"cannot write {path}: permission denied")
    return path


@contextmanager
def replacing(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """A path to write instead of `path`: under the same name, in a new hidden folder beside
    it. When the block ends without an error, every file written in that folder (an ONNX file
    and its external data, say) replaces its namesake beside `path`, keeping an old file's
    permissions; however it ends, the folder is removed."""
    target = Path(os.path.realpath(path))  # replace the file a symlink names, not the link
    staging = Path(tempfile.mkdtemp(prefix=".netdsl-", dir=target.parent))
    try:
        yield staging / target.name
        for written in staging.iterdir():
            destination = target.parent / written.name
            if destination.is_file():
                os.chmod(written, stat.S_IMODE(destination.stat().st_mode))
            os.replace(written, destination)  # atomic: readers see the old file or the new one
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_file(path: Union[str, os.PathLike], write: Callable[[BinaryIO], Any]) -> Path:
    """Write `path` by calling `write` on an open binary file, replacing `path` only when it
    succeeds (see `replacing`). An OSError of the file is raised as such even where the writer
    turned it into an error of its own (torch.save reports a full disk as "unexpected pos")."""
    with replacing(path) as temporary:
        with open(temporary, "wb") as raw:
            file = _Recording(raw)
            try:
                write(file)
            except Exception:
                if file.error is not None:
                    raise file.error from None
                raise
            if file.error is not None:  # a writer that swallowed it
                raise file.error
    return Path(path)


class _Recording:
    """A binary file that remembers the first OSError its writes raised."""

    def __init__(self, file: BinaryIO):
        self._file = file
        self.error: Union[OSError, None] = None

    def write(self, data) -> int:
        try:
            return self._file.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self._file.flush()


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder if str(folder) else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no such folder, or a system without pathconf
        return NAME_MAX


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
