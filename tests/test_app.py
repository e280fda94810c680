"""The Gradio app (issue #10): upload guards as unit tests, and the whole app in a real headless
browser.

Network: the browser test records every request the page makes (``page.on("request")``) and
aborts any that is not for the app's own host (so a CDN font would fail the test, not hang it),
and the app's Python process runs with a ``sitecustomize`` that records (and refuses) every
socket connection or name lookup that is not loopback. Both lists must be empty.
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from artifacts.app.safety import UnsafeInputError, resolve_under_root, safe_extract_zip

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


# -- upload guards ---------------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_extracts_a_normal_archive(tmp_path):
    z = _zip(tmp_path / "ok.zip", {"a/b.png": b"x" * 10, "c.txt": b"y"})
    files = safe_extract_zip(z, tmp_path / "out")
    assert sorted(p.relative_to((tmp_path / "out").resolve()).as_posix() for p in files) == ["a/b.png", "c.txt"]


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"])
def test_zip_slip_is_refused(tmp_path, name):
    z = _zip(tmp_path / "slip.zip", {"fine.png": b"1", name: b"2"})
    with pytest.raises(UnsafeInputError, match="absolute|outside"):
        safe_extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("link.png")
    info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        safe_extract_zip(tmp_path / "link.zip", tmp_path / "out")


def test_zip_bomb_is_refused_by_declared_size(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (4 << 20)}, zipfile.ZIP_DEFLATED)
    assert z.stat().st_size < 100_000  # highly compressed
    with pytest.raises(UnsafeInputError, match="unpack to"):
        safe_extract_zip(z, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists()


def test_zip_bomb_with_lying_header_is_refused_while_extracting(tmp_path):
    """A member whose header declares fewer bytes than it holds: the counted bytes stop it."""
    z = _zip(tmp_path / "liar.zip", {"a.bin": b"\0" * (3 << 20), "b.bin": b"\0" * (3 << 20)}, zipfile.ZIP_DEFLATED)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = zf.infolist()
    # rewrite the declared uncompressed size (central directory and local header) to 1 KiB
    for info in infos:
        for sig, off in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
            start = 0
            while (i := data.find(sig, start)) >= 0:
                name_at = i + (46 if sig == b"PK\x01\x02" else 30)
                if data[name_at:name_at + len(info.filename)] == info.filename.encode():
                    data[i + off:i + off + 4] = (1024).to_bytes(4, "little")
                start = i + 4
    z.write_bytes(bytes(data))
    with pytest.raises(UnsafeInputError):
        safe_extract_zip(z, tmp_path / "out", max_bytes=4 << 20)
    assert not (tmp_path / "out").exists()


def test_zip_with_too_many_members_is_refused(tmp_path):
    z = _zip(tmp_path / "many.zip", {f"{i}.txt": b"" for i in range(30)})
    with pytest.raises(UnsafeInputError, match="members"):
        safe_extract_zip(z, tmp_path / "out", max_members=20)


def test_not_a_zip_is_a_clear_error(tmp_path):
    (tmp_path / "x.zip").write_text("hello")
    with pytest.raises(UnsafeInputError, match="not a readable zip"):
        safe_extract_zip(tmp_path / "x.zip", tmp_path / "out")


def test_folder_outside_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert resolve_under_root("inside", root) == (root / "inside").resolve()
    assert resolve_under_root(str(root / "inside"), root) == (root / "inside").resolve()
    assert resolve_under_root(".", root) == root.resolve()
    for bad in ["../outside", str(tmp_path / "outside"), "escape", "escape/..", "/etc", "inside/../../outside"]:
        with pytest.raises(UnsafeInputError, match="outside the folder"):
            resolve_under_root(bad, root)
    with pytest.raises(UnsafeInputError, match="no such"):
        resolve_under_root("missing", root)


def test_dmri_tab_errors(tmp_path):
    """The dMRI tab's handler: a series without its .bvec, or two series at once, is a one-line
    message in the page (gradio's Error), naming what is missing."""
    pytest.importorskip("gradio")
    import gradio as gr

    from artifacts.app.examples import _dmri_example
    from artifacts.app.ui import run_dmri

    files = _dmri_example(tmp_path / "ex")
    with pytest.raises(gr.Error, match="no b-vector file"):
        run_dmri([p for p in files if not p.endswith(".bvec")], "dmri/qc", False)
    (tmp_path / "b").mkdir()
    twin = tmp_path / "b" / "other_dwi.nii.gz"
    twin.write_bytes(Path(files[0]).read_bytes())
    with pytest.raises(gr.Error, match="upload one series"):
        run_dmri(files + [str(twin)], "dmri/qc", False)


def test_import_is_light():
    code = ("import sys, artifacts.app; assert callable(artifacts.app.safe_extract_zip); "
            "print(sorted(m for m in ('gradio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the app in a real browser --------------------------------------------------------------------
SITECUSTOMIZE = '''
import os, socket
_LOG = os.environ["ARTIFACTS_NET_LOG"]
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")

def _note(what):
    with open(_LOG, "a") as f:
        f.write(what + "\\n")

_connect = socket.socket.connect
def connect(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOCAL):
        _note(f"connect {address}")
        raise OSError("network disabled in this test")
    return _connect(self, address)
socket.socket.connect = connect

_gai = socket.getaddrinfo
def getaddrinfo(host, *a, **k):
    if host is not None and not str(host).startswith(_LOCAL):
        _note(f"lookup {host}")
        raise socket.gaierror("network disabled in this test")
    return _gai(host, *a, **k)
socket.getaddrinfo = getaddrinfo
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer on {url} within {timeout} s")


@pytest.fixture
def browser_deps():
    pytest.importorskip("gradio", reason="the app needs gradio (pip install 'artifacts-toolkit[app]')")
    pytest.importorskip("playwright.sync_api", reason="browser test needs playwright (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser test needs Debian chromium at {CHROMIUM} (apt-get install -y chromium)")


@pytest.mark.integration
def test_app_in_a_browser(tmp_path, browser_deps):
    from playwright.sync_api import expect, sync_playwright

    from artifacts.app.examples import write_examples

    ex = write_examples(tmp_path / "inputs")
    root = tmp_path / "root"
    (root / "photos").mkdir(parents=True)
    for p in ex.manipulation:
        (root / "photos" / Path(p).name).write_bytes(Path(p).read_bytes())
    bad = tmp_path / "inputs" / "not-an-image.png"
    bad.write_text("this is text, not a PNG")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = tmp_path / "net.log"
    net_log.touch()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]),
               ARTIFACTS_NET_LOG=str(net_log), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "artifacts", "app", "--host", "127.0.0.1", "--port", str(port),
                             "--root", str(root)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    requests: list[str] = []
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        _wait_http(url, proc, timeout=180)
        timings["start"] = time.monotonic() - t0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", lambda route: route.continue_() if _is_local(route.request.url) else route.abort())
            page.set_default_timeout(90_000)
            expect.set_options(timeout=90_000)
            page.goto(url)
            expect(page.get_by_text("diffusion MRI series QC", exact=False)).to_be_visible()

            def upload(elem_id: str, files):
                box = page.locator(f"#{elem_id} input[type=file]")
                page.locator(f"#{elem_id} input[type=file], #{elem_id} button[aria-label='Clear']").first.wait_for(state="attached")
                if box.count() == 0:  # a file is shown: clear it to get the upload box back
                    page.locator(f"#{elem_id} button[aria-label='Clear']").first.click()
                box.set_input_files(files)
                expect(page.locator(f"#{elem_id} button[aria-label='Clear']").first).to_be_visible()  # uploaded

            def shot(name: str):
                page.screenshot(path=str(tmp_path / f"tab-{name}.png"), full_page=True)

            # 1. manipulation: a generated splice with the default model (effnet-iml: a map, no components)
            t = time.monotonic()
            upload("m_file", ex.manipulation[0])
            page.locator("#m_run").click()
            expect(page.locator("#m_score")).to_contain_text("threshold")
            expect(page.locator("#m_over img")).to_be_visible()
            expect(page.locator("#m_score")).to_contain_text("manipulation/effnet-iml")
            timings["manipulation"] = time.monotonic() - t
            shot("manipulation")
            # a file that is not an image: the one-line error from artifacts.io, in the page
            upload("m_file", str(bad))
            page.locator("#m_run").click()
            expect(page.get_by_text("not-an-image.png: not a recognised image format")).to_be_visible()

            # 2. synthetic: a real photo whose PNG text claims generation: a content score, and apart
            # from it the provenance record with the settings the file carries
            t = time.monotonic()
            page.get_by_role("tab", name="Synthetic").click()
            upload("s_file", ex.tagged)
            page.locator("#s_run").click()
            expect(page.locator("#s_score")).to_contain_text("threshold")
            expect(page.locator("#s_prov")).to_contain_text("generation settings")
            expect(page.locator("#s_over img")).to_be_visible()
            timings["synthetic"] = time.monotonic() - t
            shot("synthetic")

            # 2b. dMRI: the phantom with slice dropout (NIfTI + .bval + .bvec + .json), default model,
            # asking for the cleaned series too (a series without its .bvec: test_dmri_tab_errors)
            t = time.monotonic()
            page.get_by_role("tab", name="dMRI").click()
            upload("d_files", ex.dmri)
            page.get_by_label("Also write the series without its flagged volumes").check()
            page.locator("#d_run").click()
            expect(page.locator("#d_note")).to_contain_text("volumes flagged")
            expect(page.locator("#d_pic img")).to_be_visible()
            expect(page.locator("#d_table")).to_contain_text("1000")  # the b-values of the volume table
            timings["dmri"] = time.monotonic() - t
            shot("dmri")

            # 3. novel views
            t = time.monotonic()
            page.get_by_role("tab", name="Novel views").click()
            upload("v_file", ex.view)
            upload("v_refs", ex.refs)
            page.locator("#v_run").click()
            expect(page.locator("#v_score")).to_contain_text("Score")
            expect(page.locator("#v_over img")).to_be_visible()
            timings["views"] = time.monotonic() - t
            shot("views")

            # 4. restoration: super-resolution (sr/span, x4), then inpainting with a mask
            t = time.monotonic()
            page.get_by_role("tab", name="Restoration").click()
            upload("r_file", ex.small)
            page.locator("#r_run").click()
            expect(page.locator("#r_note")).to_contain_text("64x64 -> 256x256")
            expect(page.locator("#r_pair img")).to_be_visible()
            page.locator("#r_task").get_by_text("inpaint", exact=True).click()
            expect(page.locator("#r_model input")).to_have_value("inpaint/telea")
            upload("r_file", ex.inpaint_image)
            upload("r_mask", ex.inpaint_mask)
            page.locator("#r_run").click()
            expect(page.locator("#r_note")).to_contain_text("repaired")
            timings["restoration"] = time.monotonic() - t
            shot("restoration")

            # 5. batch: a folder outside the root is refused; a zip upload runs and gives the report
            t = time.monotonic()
            page.get_by_role("tab", name="Batch").click()
            page.locator("#b_folder textarea, #b_folder input").first.fill("../inputs")
            page.locator("#b_run").click()
            expect(page.get_by_text("outside the folder this app may read")).to_be_visible()
            page.locator("#b_folder textarea, #b_folder input").first.fill("")
            upload("b_zip", ex.batch_zip)
            page.locator("#b_run").click()
            expect(page.locator("#b_summary")).to_contain_text("2 items: 2 ok")
            expect(page.locator("#b_files")).to_contain_text("report.html")
            expect(page.locator("#b_files")).to_contain_text("results.csv")
            timings["batch"] = time.monotonic() - t
            shot("batch")
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print("app test timings (s):", {k: round(v, 1) for k, v in timings.items()}, "screenshots in", tmp_path)
    assert requests, "the page made no requests at all?"
    external = [u for u in requests if not _is_local(u)]
    assert external == [], f"the page requested external URLs: {external}"
    assert net_log.read_text() == "", f"the app's process tried to reach the network:\n{net_log.read_text()}"
    for name in ("manipulation", "synthetic", "dmri", "views", "restoration", "batch"):
        assert (tmp_path / f"tab-{name}.png").stat().st_size > 10_000


def _is_local(url: str) -> bool:
    u = urlparse(url)
    return u.scheme in ("data", "blob", "about") or (u.hostname or "") in LOCAL_HOSTS
