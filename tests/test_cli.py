"""The `artifacts` command, run for real in subprocesses."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA, run_cli, shared
from tests.images import write_tricky_folder

HEAVY = ("gradio", "open3d", "diffusers", "ray", "dipy", "nibabel")


@pytest.mark.parametrize("what", ["import artifacts", "artifacts --help"])
def test_startup_imports_no_heavy_modules(what):
    code = (
        "import sys\n"
        "import artifacts\n"
        + ("from artifacts.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n" if "help" in what else "")
        + f"print(sorted(m for m in {HEAVY + ('torch', 'cv2')!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"  # not even torch: --help stays fast


def test_detecting_never_imports_optional_stacks(generated, tmp_path):
    code = (
        "import sys, artifacts\n"
        f"artifacts.run_batch([{str(generated / 'Au')!r}], {str(tmp_path / 'o')!r}, progress=False)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_models_lists_weight_status():
    out = run_cli("models")
    assert out.returncode == 0
    assert "manipulation/effnet-iml *" in out.stdout and "calib-v1 (packaged)" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["detect", "manipulation", "nowhere/", "-o", "OUT"], "input not found"),
    (["detect", "manipulation", ".", "-o", "OUT", "--model", "noise-residul"], "did you mean 'noise-residual'"),
    (["detect", "forgery", ".", "-o", "OUT"], "unknown task"),
    (["detect", "manipulation", ".", "-o", "OUT", "--set", "qq=1"], "unknown option"),
    (["detect", "manipulation", "-o", "OUT"], "no inputs"),
    (["detect", "synthetic", ".", "-o", "OUT", "--model", "noise-residual"], "belongs to task 'manipulation'"),
])
def test_usage_errors_exit_2_without_traceback(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    out = run_cli(*args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_bad_files_through_the_cli(tmp_path):
    write_tricky_folder(tmp_path / "in")
    out = run_cli("detect", "manipulation", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "-q")
    assert out.returncode == 1  # partial failure
    assert "Traceback" not in out.stderr + out.stdout
    assert "9 ok" in out.stdout and "4 errors" in out.stdout


@pytest.mark.integration
def test_example_shows_true_positives(tmp_path):
    out = run_cli("detect", "manipulation", "--example", "-o", str(tmp_path / "ex"), "-q")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ex" / "example-summary.png").is_file()
    f1 = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] in ("splice", "splice_blend", "removal", "copymove"):
            f1[parts[0]] = float(parts[3])
    assert len(f1) == 6
    assert max(f1.values()) > 0.3  # predicted masks overlap the generator's ground truth


def _source_folder(tmp_path) -> Path:
    """CASIA v1 tampered images when ../shared/data is here, else a generated set."""
    casia = SHARED_DATA / "iml" / "casia1-samples" / "Tp"
    if casia.is_dir():
        return casia
    from artifacts.datasets.manipulation import write_dataset

    write_dataset(tmp_path / "gen", n=30, seed=5)
    return tmp_path / "gen" / "Tp"


def _rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT item_id, status FROM results").fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []
    finally:
        con.close()


@pytest.mark.integration
def test_killed_run_resumes_with_every_item_once(tmp_path):
    src = _source_folder(tmp_path)
    n = len(list(src.iterdir()))
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "artifacts", "detect", "manipulation", str(src), "-o", str(out), "-q", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_rows(out / "artifacts.sqlite")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_rows(out / "artifacts.sqlite"))
    assert 3 <= done_before < n, "the run should have been killed midway"

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{done_before} already done (skipped)" in again.stdout
    rows = _rows(out / "artifacts.sqlite")
    ids = [r[0] for r in rows]
    assert len(ids) == n and len(set(ids)) == n and all(s == "ok" for _, s in rows)
    folders = [p for p in (out / "items").iterdir()]
    assert len(folders) == n and not any(p.name.startswith((".tmp-", ".old-")) for p in folders)

    third = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert f"{n} already done (skipped)" in third.stdout


@pytest.mark.integration
def test_casia_run_writes_heatmaps_masks_overlays(tmp_path):
    src = shared("iml", "casia1-samples", "Tp")
    out = run_cli("detect", "manipulation", str(src), "-o", str(tmp_path / "o"), "-q")
    assert out.returncode == 0, out.stderr
    items = list((tmp_path / "o" / "items").iterdir())
    assert len(items) == 35
    for folder in items:
        assert {"detection.json", "heatmap.png", "mask.png", "overlay.png"} <= {p.name for p in folder.iterdir()}
    assert "35 already done" in run_cli("detect", "manipulation", str(src), "-o", str(tmp_path / "o"), "-q").stdout


def test_output_problems_are_one_line_errors(generated, tmp_path):
    (tmp_path / "file").write_text("x")
    out = run_cli("detect", "manipulation", str(generated / "Au"), "-o", str(tmp_path / "file"))
    assert out.returncode == 2 and "not a folder" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "artifacts.sqlite").write_bytes(b"this is not a database" * 100)
    out = run_cli("detect", "manipulation", str(generated / "Au"), "-o", str(tmp_path / "broken"))
    assert out.returncode == 4 and "Traceback" not in out.stderr
    out = run_cli("detect", "manipulation", str(generated / "Au"), "-o", str(tmp_path / "o"), "--threshold", "1.5")
    assert out.returncode == 2 and "threshold must be in [0, 1]" in out.stderr
    out = run_cli("detect", "manipulation", str(generated / "Au"), "-o", str(tmp_path / "o"), "--example")
    assert out.returncode == 2 and "--example makes its own inputs" in out.stderr


@pytest.mark.integration
def test_report_is_written_after_a_run_and_on_demand(generated, tmp_path):
    out = run_cli("detect", "manipulation", str(generated / "Au"), "-o", str(tmp_path / "o"), "-q")
    assert out.returncode == 0 and "report:" in out.stdout
    assert (tmp_path / "o" / "report.html").is_file()
    (tmp_path / "o" / "report.html").unlink()
    again = run_cli("report", str(tmp_path / "o"))
    assert again.returncode == 0 and (tmp_path / "o" / "report.html").is_file()
