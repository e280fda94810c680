"""Guards for what the app accepts from a browser: folders must lie under the root the app was
launched with (symlinks resolved), and zip uploads are extracted without zip slip (members that
would land outside the extraction folder) or zip bombs (too many members, too many bytes: the
declared sizes are checked first and the bytes are counted again while extracting)."""
from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_ZIP_BYTES = 512 * 1024 * 1024  # total uncompressed size of one uploaded zip
MAX_ZIP_MEMBERS = 5000
CHUNK = 1 << 20


class UnsafeInputError(ValueError):
    """An upload or a path the app refuses (one line, shown in the page)."""


def resolve_under_root(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` (relative to ``root`` or absolute) resolved, symlinks included; refused unless the
    result is ``root`` or inside it."""
    if path is None or not str(path).strip():
        raise UnsafeInputError("give a folder path")
    root_real = Path(os.path.realpath(root))
    p = Path(str(path).strip()).expanduser()
    real = Path(os.path.realpath(p if p.is_absolute() else root_real / p))
    if real != root_real and root_real not in real.parents:
        raise UnsafeInputError(f"{path}: outside the folder this app may read ({root_real})")
    if not real.exists():
        raise UnsafeInputError(f"{path}: no such file or folder")
    return real


def _member_target(name: str, dest: Path) -> Path | None:
    """Where a member goes inside ``dest``; None for a folder entry; refused if it would escape."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or "\x00" in clean:
        raise UnsafeInputError(f"zip member {name!r} has an absolute path")
    parts = PurePosixPath(clean).parts
    if ".." in parts:
        raise UnsafeInputError(f"zip member {name!r} points outside the archive ('..')")
    if clean.endswith("/"):
        return None
    target = Path(os.path.realpath(dest.joinpath(*parts)))
    if dest not in target.parents:
        raise UnsafeInputError(f"zip member {name!r} resolves outside the extraction folder")
    return target


def safe_extract_zip(zip_path: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_ZIP_BYTES,
                     max_members: int = MAX_ZIP_MEMBERS) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` (created, must be empty or new); return the files written.
    Raises :class:`UnsafeInputError` (and removes what was extracted) for a bad, unsafe or too
    large archive. Symbolic links inside the zip are refused."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = Path(os.path.realpath(dest))
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeInputError(f"{Path(zip_path).name}: not a readable zip file ({exc})") from None
    written: list[Path] = []
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise UnsafeInputError(f"zip has {len(infos)} members; at most {max_members} are accepted")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise UnsafeInputError(f"zip would unpack to {declared} bytes; at most {max_bytes} are accepted")
            plan = []
            for info in infos:
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeInputError(f"zip member {info.filename!r} is a symbolic link")
                target = _member_target(info.filename, dest)
                if target is not None:
                    plan.append((info, target))
            total = 0
            for info, target in plan:
                target.parent.mkdir(parents=True, exist_ok=True)
                own = 0
                with zf.open(info) as src, open(target, "xb") as out:
                    written.append(target)
                    while chunk := src.read(CHUNK):
                        own += len(chunk)
                        total += len(chunk)
                        if own > info.file_size or total > max_bytes:
                            raise UnsafeInputError(
                                f"zip member {info.filename!r} unpacks to more bytes than declared or allowed")
                        out.write(chunk)
    except UnsafeInputError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, NotImplementedError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise UnsafeInputError(f"{Path(zip_path).name}: cannot extract ({text})") from None
    return written
