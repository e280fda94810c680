"""Items: what the engine processes. An item is a bundle of files, not always one file.

An image item is one image file; later tasks bundle several files (a dMRI series with its
``.bval``/``.bvec``/sidecar, a novel view with its references). The store keys an item by the
SHA-256 of all its files plus the model fingerprint, so every task shares one engine, one
resume logic and one report.

Inputs are folders (searched recursively for known image extensions, hidden files skipped),
glob patterns, single files (taken whatever their extension, so a mislabelled file gets a clear
error instead of being silently ignored) and list files (``--files-from``: one path per line,
``#`` comments).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from artifacts.weights import file_sha256

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .tif .tiff .webp .bmp .dib .gif .heic .heif .avif .ppm .pgm .pnm".split()
)


@dataclass(frozen=True)
class Item:
    id: str  # display name, unique within a run (path relative to the input folder)
    files: dict[str, str] = field(default_factory=dict)  # role -> path, e.g. {"image": "a/b.png"}
    kind: str = "image"


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _scan_folder(root: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    found = []
    for p in root.glob(pattern):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            found.append(p)
    return found


def _read_list(path: str | os.PathLike) -> list[str]:
    base = Path(path).parent
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            out.append(str(p if p.is_absolute() else base / p))
    return out


def discover_images(inputs: list[str], *, recursive: bool = True, files_from: str | None = None,
                    exclude: list[str | os.PathLike] = ()) -> list[Item]:
    """Expand folders, globs, files and list files into image items (stable natural order).

    Files inside ``exclude`` folders (the folders a run writes, when its output lies inside an
    input folder) are skipped. Raises ``FileNotFoundError`` for an input that matches nothing.
    """
    skip = [Path(e).resolve() for e in exclude]
    entries: list[tuple[Path, str]] = []  # (file, id)
    for raw in list(inputs) + (_read_list(files_from) if files_from else []):
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(_scan_folder(path, recursive), key=lambda p: natural_key(str(p)))
            entries += [(f, f.relative_to(path).as_posix()) for f in files]
        elif path.is_file():
            entries.append((path, path.name))
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True), key=natural_key)
            if not matches:
                raise FileNotFoundError(f"no files match {raw!r}")
            entries += [(Path(m), Path(m).name) for m in matches if Path(m).is_file()]
        else:
            raise FileNotFoundError(f"input not found: {raw}")
    items, seen, ids = [], set(), set()
    for path, item_id in entries:
        resolved = path.resolve()
        if resolved in seen or any(resolved.is_relative_to(e) for e in skip):
            continue
        seen.add(resolved)
        if item_id in ids:  # same relative name from two inputs: fall back to the full path
            item_id = str(path)
        ids.add(item_id)
        items.append(Item(item_id, {"image": str(path)}))
    return items


def hash_item(item: Item) -> dict[str, dict]:
    """SHA-256 and size of every file of the item: role -> {"path", "sha256", "size"}."""
    return {
        role: {"path": str(Path(path).resolve()), "sha256": file_sha256(path), "size": os.path.getsize(path)}
        for role, path in item.files.items()
    }


def input_digest(hashes: dict[str, dict]) -> str:
    """One SHA-256 for a bundle: over the roles and the file hashes (not the paths)."""
    text = json.dumps({role: h["sha256"] for role, h in sorted(hashes.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def result_key(item: Item, hashes: dict[str, dict] | None, fingerprint: dict) -> str:
    """Store key: the item's id and content + model + weights + output-relevant config.
    Same key = same result. ``hashes=None`` (files unreadable) still gives a stable key."""
    digest = input_digest(hashes) if hashes else "unreadable"
    text = json.dumps({"item": item.id, "input": digest, "model": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES) and not path.name.startswith(".")


def discover_dwi(inputs: list[str], *, recursive: bool = True, files_from: str | None = None,
                 exclude: list[str | os.PathLike] = ()) -> list[Item]:
    """Diffusion series items (kind ``dwi``): files ``image`` (4-D NIfTI) and, when found,
    ``bval``, ``bvec`` and ``sidecar`` (JSON). A folder with ``sub-*`` sub-folders is read as a
    BIDS dataset (``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]``, sidecars inherited as BIDS says); any
    other folder is searched for ``.nii``/``.nii.gz`` files; a file is taken as it is. Gradient
    files are paired by stem (``a.nii.gz`` -> ``a.bval``, ``a.bvec``, ``a.json``); a missing or
    mismatched one becomes that item's error when it is read, so the other series still run."""
    from artifacts.io.dmri import discover_bids

    skip = [Path(e).resolve() for e in exclude]
    found: list[tuple[str, dict[str, str]]] = []
    for raw in list(inputs) + (_read_list(files_from) if files_from else []):
        path = Path(raw).expanduser()
        if path.is_dir() and any(p.is_dir() for p in path.glob("sub-*")):
            for s in discover_bids(path):
                roles = {"image": s.image, "bval": s.bval, "bvec": s.bvec, "sidecar": s.json}
                found.append((Path(s.image).relative_to(path).as_posix(), {k: v for k, v in roles.items() if v}))
        elif path.is_dir():
            files = sorted((p for p in (path.rglob("*") if recursive else path.glob("*")) if p.is_file()
                            and _is_nifti(p) and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                           key=lambda p: natural_key(str(p)))
            found += [(f.relative_to(path).as_posix(), _gradient_files(f)) for f in files]
        elif path.is_file():
            found.append((path.name, _gradient_files(path)))
        elif glob.has_magic(raw):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(raw), recursive=True), key=natural_key)]
            if not matches:
                raise FileNotFoundError(f"no files match {raw!r}")
            found += [(m.name, _gradient_files(m)) for m in matches if m.is_file() and _is_nifti(m)]
        else:
            raise FileNotFoundError(f"input not found: {raw}")
    items, seen, ids = [], set(), set()
    for item_id, files in found:
        resolved = Path(files["image"]).resolve()
        if resolved in seen or any(resolved.is_relative_to(e) for e in skip):
            continue
        seen.add(resolved)
        item_id = files["image"] if item_id in ids else item_id
        ids.add(item_id)
        items.append(Item(item_id, files, kind="dwi"))
    return items


def _gradient_files(image: Path) -> dict[str, str]:
    from artifacts.io.dmri import nifti_stem

    stem = image.with_name(nifti_stem(image))
    roles = {"bval": Path(f"{stem}.bval"), "bvec": Path(f"{stem}.bvec"), "sidecar": Path(f"{stem}.json")}
    return {"image": str(image), **{role: str(p) for role, p in roles.items() if p.is_file()}}


def discover_views(inputs: list[str], *, refs: list[str] | None = None, recursive: bool = True,
                   files_from: str | None = None, exclude: list[str | os.PathLike] = ()) -> list[Item]:
    """View items: each view found in ``inputs`` bundled with the reference views found in
    ``refs`` (files ``image`` and ``ref0000``, ``ref0001``, ...). A reference that is the view
    itself (same file) is left out of that view's set."""
    if not refs:
        raise ValueError("views need their reference views: --refs DIR (or refs=[...])")
    ref_paths = reference_paths(refs, recursive=recursive, exclude=exclude)
    items = []
    for view in discover_images(inputs, recursive=recursive, files_from=files_from, exclude=exclude):
        own = Path(view.files["image"]).resolve()
        chosen = [p for p in ref_paths if p.resolve() != own]
        if not chosen:
            raise ValueError(f"{view.files['image']}: no reference views left (the only reference is the view itself)")
        items.append(Item(view.id, {"image": view.files["image"], **{f"ref{i:04d}": str(p) for i, p in enumerate(chosen)}},
                          kind="view"))
    return items


def reference_paths(refs, *, recursive: bool = True, exclude: list[str | os.PathLike] = ()) -> list[Path]:
    """The image files of a reference set (files, folders, globs; a single path may be a str);
    the folders a run writes (``exclude``) are skipped, so a rerun never takes its own outputs."""
    refs = [refs] if isinstance(refs, (str, os.PathLike)) else list(refs)
    paths = [Path(i.files["image"]) for i in discover_images([str(r) for r in refs], recursive=recursive,
                                                             exclude=exclude)]
    if not paths:
        raise ValueError(f"no reference views found in {', '.join(map(str, refs))}")
    return paths


MASK_SUFFIXES = ("_mask", "_gt")  # a/b_mask.png, a/b_gt.png (the CASIA / IML layout), then a/b.png


def attach_masks(items: list[Item], masks: str | os.PathLike) -> list[Item]:
    """Give each image item the mask to repair (role ``mask``): ``masks`` is one mask file for
    every item, or a folder holding, for item ``a/b.jpg``, ``a/b_mask.*``, ``a/b_gt.*`` or
    ``a/b.*`` (any image extension; in that order, never the input image itself). An item
    without a mask is kept as is (the restorer reports it as not applicable); a folder that
    matches no item at all is an error."""
    root = Path(masks).expanduser()
    if root.is_file():
        return [Item(i.id, {**i.files, "mask": str(root)}, i.kind) for i in items]
    if not root.is_dir():
        raise FileNotFoundError(f"masks not found: {masks}")
    found: dict[str, list[tuple[int, Path]]] = {}
    for p in _scan_folder(root, recursive=True):
        stem = p.relative_to(root).with_suffix("").as_posix()
        rank = next((k for k, sfx in enumerate(MASK_SUFFIXES) if stem.endswith(sfx)), len(MASK_SUFFIXES))
        key = stem[:-len(MASK_SUFFIXES[rank])] if rank < len(MASK_SUFFIXES) else stem
        found.setdefault(key, []).append((rank, p))
    out = []
    for i in items:
        own = Path(i.files["image"]).resolve()
        match = sorted((r, p) for r, p in found.get(Path(i.id).with_suffix("").as_posix(), []) if p.resolve() != own)
        out.append(Item(i.id, {**i.files, "mask": str(match[0][1])}, i.kind) if match else i)
    if items and not any("mask" in i.files for i in out):
        raise FileNotFoundError(f"no mask in {root} matches an input (for a/b.jpg it looks for a/b_mask.*, a/b_gt.* "
                                "or a/b.*)")
    return out


def items_from_run(run_dir: str | os.PathLike, *, flagged_only: bool = True) -> tuple[str, list[Item]]:
    """Items to repair from a detection run's store: each result with a heatmap becomes an item
    with the original input files (image, and the references of a view) plus the run's
    ``heatmap``, ``mask`` and ``detection`` (JSON, for the threshold) files. With
    ``flagged_only`` only results whose image-level label is positive are taken. Returns the
    detection task and the items."""
    from artifacts.engine.store import Store

    run_dir = Path(run_dir)
    if not (run_dir / "artifacts.sqlite").is_file():
        raise FileNotFoundError(f"{run_dir} is not a detection run (no artifacts.sqlite); run `artifacts detect` first")
    with Store(run_dir) as store:
        rows = store.rows(status="ok")
    tasks = {r["task"] for r in rows}
    if len(tasks) > 1:
        raise ValueError(f"{run_dir} holds results of several tasks ({', '.join(sorted(tasks))}); use one run per task")
    items = []
    for r in rows:
        files = r.get("files") or {}
        if "heatmap" not in files or (flagged_only and not r.get("label")):
            continue
        item_dir = run_dir / "items" / r["key"]
        own = {role: info["path"] for role, info in (r.get("inputs") or {}).items()}
        extra = {role: str(item_dir / files[name]) for role, name in
                 (("heatmap", "heatmap"), ("mask", "mask"), ("detection", "detection")) if name in files}
        items.append(Item(r["item_id"], {**own, **extra}, "view" if any(k.startswith("ref") for k in own) else "image"))
    return (tasks.pop() if tasks else ""), items
