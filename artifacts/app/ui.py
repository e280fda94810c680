"""The page: one tab per landed task. Every handler turns widgets into the same API calls the CLI
makes (``artifacts.create(name).detect/restore``, ``artifacts.run_batch``, ``artifacts.write_report``)
and results into widgets; nothing here detects or restores anything itself.

Inputs arrive as the uploaded files (``gr.File``), not as gradio-decoded images: gradio's image
widget re-encodes uploads (WebP by default), which would erase the very compression traces a
forensic detector reads, and would bypass the one-line errors of :mod:`artifacts.io`.

Offline: analytics are off (``GRADIO_ANALYTICS_ENABLED=False``, set before gradio is imported),
the theme uses system fonts (the default theme fetches Google Fonts), SSR, PWA, MCP and sharing
are off; ``tests/test_app.py`` checks in a real browser that every request stays on localhost.
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import contextlib  # noqa: E402
import functools  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

try:  # noqa: E402
    import gradio as gr
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("the app needs gradio: pip install 'artifacts-toolkit[app]'") from exc

import artifacts  # noqa: E402
from artifacts.app.safety import safe_extract_zip, resolve_under_root  # noqa: E402

RESTORE_TASKS = ("sr", "inpaint", "refrepair")
BATCH_TASKS = ("manipulation", "synthetic", "dmri", "views", "sr", "inpaint", "refrepair")
MAX_FILE_SIZE = "200mb"
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

HEADER = """# Artifacts
Find artifacts in images and repair them, with the same models as the `artifacts` command and Python API.
**Manipulation**, **Synthetic** (AI-generated images), **dMRI** (diffusion MRI series QC) and **Novel views**
detect; **Restoration** repairs (super-resolution, inpainting, reference-guided repair); **Batch** runs any
task over a folder or a zip and writes the usual report.
Nothing leaves this machine: no analytics, no web fonts, no downloads."""

def theme():
    return gr.themes.Default(font=FONTS, font_mono=MONO)


@functools.lru_cache(maxsize=6)
def _model(name: str):
    return artifacts.create(name)


def _one_line(exc: BaseException) -> str:
    from artifacts.engine.runner import one_line

    return one_line(exc)


@contextlib.contextmanager
def _user_errors():
    """Turn the API's errors (already worded for users, one line) into a message in the page."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, FileNotFoundError, NotADirectoryError, KeyError, ImportError, RuntimeError, OSError) as exc:
        raise gr.Error(_one_line(exc), print_exception=False) from None


def _need(value, what: str):
    if not value:
        raise gr.Error(f"upload {what} first", print_exception=False)
    return value


def _display(image) -> "np.ndarray":
    """The decoded input as 8-bit RGB for the page (the models get the ImageData itself)."""
    from artifacts.viz import to_uint8

    return to_uint8(image.pixels)


def _models(task: str) -> list[str]:
    """The task's models, less the opt-in ones (they need a local folder the page cannot ask for)."""
    from artifacts.registry import model_info

    return [m for m in artifacts.list_models(task=task) if not model_info(m).opt_in]


def _default(task: str) -> str | None:
    from artifacts.registry import default_model

    try:
        return default_model(task)
    except (KeyError, ValueError):  # no model registered for the task
        return None


def _write(files: dict[str, bytes], prefix: str) -> list[str]:
    from artifacts.types import write_files

    d = Path(tempfile.mkdtemp(prefix=f"artifacts-app-{prefix}-"))
    return [str(d / name) for name in write_files(d, files)]


# -- detection (manipulation, views) -----------------------------------------------------------
VERDICTS = {"manipulation": ("likely manipulated", "no manipulation found at this threshold"),
            "synthetic": ("likely AI-generated", "no sign of generation found at this threshold"),
            "views": ("likely artifacts in this view", "no artifacts found at this threshold")}


def _score_text(det, kind: str) -> str:
    if det.score is None:
        return f"**Not applicable:** {det.reason or 'this model does not apply to this input'}"
    yes, no = VERDICTS[kind]
    verdict = f"above threshold: {yes}" if det.label else f"below threshold: {no}"
    return (f"**Score {det.score:.3f}** (threshold {det.threshold:.2f}): {verdict}. "
            f"Model `{det.meta.get('model', '')}`; scores are in [0, 1], higher = more artifact.")


def _overlay(state, opacity: float):
    if not state:
        return None
    from artifacts.viz import overlay

    image, heatmap, mask = state
    return image if heatmap is None else overlay(image, heatmap, mask, float(opacity))


def _detection_outputs(det, image, opacity: float, kind: str, prefix: str):
    state = (image, det.heatmap, det.mask)
    files = _write(det.to_files(), prefix)
    categories = {k: float(v) for k, v in det.categories.items()} or None
    return image, _overlay(state, opacity), _score_text(det, kind), categories, files, state


def run_manipulation(image_path, model: str, opacity: float):
    _need(image_path, "an image")
    with _user_errors():
        image = artifacts.load_image(image_path)  # decoded once: shown and detected
        det = _model(model).detect(image)
    return _detection_outputs(det, _display(image), opacity, "manipulation", "manipulation")


def _provenance_text(det) -> str:
    """What the file says about itself, apart from the content score; and the input warnings."""
    prov = det.meta.get("provenance") or {}
    if not prov:
        return "**Provenance:** no record for this input."
    quality = (prov.get("jpeg_quality") or {}).get("estimate")
    lines = ["**Provenance** (what the file itself says; not part of the score):",
             f"- container {prov.get('format') or '?'}" + (f", JPEG quality ~{quality}" if quality else "")]
    lines += [f"- declares generation: {claim}" for claim in prov.get("declared_by") or []]
    gen = prov.get("generation") or {}
    if gen.get("found"):
        lines.append(f"- generation settings in the file: {', '.join(gen.get('tools') or [])}")
    if (prov.get("c2pa") or {}).get("present"):
        lines.append("- C2PA manifest present (not cryptographically validated)")
    lines += [f"- {key.upper()} present" for key in ("exif", "xmp") if (prov.get(key) or {}).get("present")]
    if (prov.get("resampling") or {}).get("resampled"):
        lines.append(f"- signs of resizing: {prov['resampling'].get('summary', '')}")
    lines += [f"- warning: {w}" for w in det.meta.get("warnings") or []]
    return "\n".join(lines)


def run_synthetic(image_path, model: str, opacity: float):
    _need(image_path, "an image")
    with _user_errors():
        image = artifacts.load_image(image_path)
        det = _model(model).detect(image)
    out = _detection_outputs(det, _display(image), opacity, "synthetic", "synthetic")
    return out[0], out[1], out[2], _provenance_text(det), out[4], out[5]  # no per-component scores here


def run_views(view_path, ref_paths, model: str, opacity: float):
    _need(view_path, "a view")
    _need(ref_paths, "one or more reference views")
    refs = [str(p) for p in ref_paths]
    with _user_errors():
        image = artifacts.load_image(view_path)
        det = _model(model).detect(image, refs=refs)  # a bad reference: one-line error naming the file
    out = _detection_outputs(det, _display(image), opacity, "views", "views")
    return out[0], out[1], out[2], out[4], out[5]


def _one_series(paths) -> Path:
    """Uploaded files (each in its own temporary folder) copied into one folder by name, so the
    NIfTI finds its .bval/.bvec/.json beside it; exactly one series is accepted."""
    from artifacts.engine.items import NIFTI_SUFFIXES

    folder = Path(tempfile.mkdtemp(prefix="artifacts-app-dmri-"))
    for p in paths:
        shutil.copy(p, folder / Path(p).name)
    niftis = [p for p in folder.iterdir() if p.name.lower().endswith(NIFTI_SUFFIXES)]
    if len(niftis) != 1:
        raise ValueError(f"upload one series: one .nii or .nii.gz with its .bval and .bvec (got {len(niftis)} NIfTI files)")
    return niftis[0]


def run_dmri(paths, model: str, clean: bool):
    _need(paths, "a diffusion series (.nii/.nii.gz with its .bval and .bvec)")
    from artifacts.io.dmri import load_dwi, nifti_stem, save_dwi
    from artifacts.report.dmri import series_files, volume_rows

    with _user_errors():
        nifti = _one_series([str(p) for p in paths])
        series = load_dwi(nifti)
        det = _model(model).detect(series)
        files = {**det.to_files(), **series_files(det, series)}
        files.pop("overlay.png", None)
        out = _write(files, "dmri")
        flagged = det.meta.get("flagged_volumes", [])
        note = (f"**{len(flagged)} of {series.n_volumes} volumes flagged** (score >= {det.threshold:.2f})"
                + (f": {', '.join(map(str, flagged))}" if flagged else "") + f". Series score {det.score:.3f}; "
                f"model `{det.meta.get('model', '')}`. The grid shows every (volume, slice) score.")
        if clean:
            keep = det.elements["volume"] < det.threshold
            if keep.any() and (keep & ~series.b0_mask).any():
                target = save_dwi(Path(out[0]).parent / "clean" / nifti.name, series, keep)
                out += [str(target)] + [str(target.with_name(nifti_stem(target) + ext)) for ext in (".bval", ".bvec")]
                note += f" Clean series: {int(keep.sum())} volumes kept."
            else:
                note += " No clean series: every diffusion-weighted volume is flagged."
    rows = volume_rows(det, series)
    table = [[r["Volume"], r["bval"], r["Predicted Class"], r["Probability"], r["worst_slice"]] for r in rows]
    picture = artifacts.load_image(next(p for p in out if p.endswith("qc.png"))).pixels
    return picture, note, table, out


# -- restoration -------------------------------------------------------------------------------
def run_restore(task: str, model: str, image_path, mask_path, ref_paths):
    _need(image_path, "an image")
    if task == "inpaint" and not mask_path:
        raise gr.Error("inpainting needs a mask image (white = the region to fill)", print_exception=False)
    if task == "refrepair" and not ref_paths:
        raise gr.Error("reference-guided repair needs reference views", print_exception=False)
    from artifacts.types import RESTORED_FILE
    from artifacts.viz import before_after

    with _user_errors():
        image = artifacts.load_image(image_path)
        before = _display(image)
        res = _model(model).restore(image, mask=mask_path or None,
                                    refs=[str(p) for p in ref_paths] if ref_paths else None)
    if res.image is None:
        return None, None, f"**Not applicable:** {res.reason or 'nothing to repair'}"
    files = _write({RESTORED_FILE: res.to_files()[RESTORED_FILE]}, "restore")
    h, w = res.image.shape[:2]
    note = f"**Restored** with `{model}`: {before.shape[1]}x{before.shape[0]} -> {w}x{h}"
    if res.mask is not None:
        note += f", {100 * res.mask.mean():.1f} % of the pixels repaired (outlined)"
    return before_after(before, res.image, res.mask), files[0], note


# -- batch -------------------------------------------------------------------------------------
def run_batch_ui(root: str, folder: str, zip_path, task: str, model: str, refs: str, masks: str,
                 progress=gr.Progress(track_tqdm=True)):
    folder = (folder or "").strip()
    if bool(folder) == bool(zip_path):
        raise gr.Error("give either a folder path or a zip file (one of them)", print_exception=False)
    with _user_errors():
        if zip_path:
            progress(0, desc="unpacking the zip")
            base = Path(tempfile.mkdtemp(prefix="artifacts-app-zip-"))
            safe_extract_zip(zip_path, base)
            inputs = [base]
        else:
            base = Path(os.path.realpath(root))
            inputs = [resolve_under_root(folder, base)]
        refs_dir = resolve_under_root(refs, base) if (refs or "").strip() else None
        masks_dir = resolve_under_root(masks, base) if (masks or "").strip() else None
        if zip_path:  # the references / masks folders are not inputs
            inputs = [p for p in base.iterdir() if p not in (refs_dir, masks_dir)]
        out = Path(tempfile.mkdtemp(prefix="artifacts-app-batch-"))
        summary = artifacts.run_batch([str(p) for p in inputs], out, task=task, model=model,
                                      refs=[str(refs_dir)] if refs_dir else None,
                                      masks=str(masks_dir) if masks_dir else None,
                                      progress=True, command="artifacts app (batch tab)")
        report = artifacts.write_report(out)
        bundle = shutil.make_archive(str(out) + "-results", "zip", out)
    files = [str(report), str(out / "results.csv"), bundle]
    return "```\n" + summary.text() + "\n```", files


# -- the page ----------------------------------------------------------------------------------
def _task_models(task: str):
    return gr.update(choices=_models(task), value=_default(task))


def build_app(root: str | os.PathLike = ".", examples_dir: str | os.PathLike | None = None) -> "gr.Blocks":
    """The Blocks of the app; ``root``: the only folder tree the batch tab may read."""
    from artifacts.app.examples import write_examples

    root = os.path.realpath(root)
    ex = write_examples(examples_dir or tempfile.mkdtemp(prefix="artifacts-app-examples-"))
    busy = dict(concurrency_limit=1, concurrency_id="models")  # one model job at a time, others queue

    with gr.Blocks(title="Artifacts", analytics_enabled=False) as demo:
        gr.Markdown(HEADER)
        with gr.Tab("Manipulation", id="manipulation"):
            with gr.Row():
                with gr.Column(scale=1):
                    m_file = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="m_file")
                    m_model = gr.Dropdown(_models("manipulation"), value=_default("manipulation"), label="Model")
                    m_opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Heatmap opacity")
                    m_run = gr.Button("Detect", variant="primary", elem_id="m_run")
                    gr.Examples([[p] for p in ex.manipulation], inputs=[m_file], label="Generated splices")
                with gr.Column(scale=2):
                    with gr.Row():
                        m_in = gr.Image(label="Input", format="png", interactive=False)
                        m_over = gr.Image(label="Heatmap overlay (cyan: mask at the threshold)", format="png",
                                          interactive=False, elem_id="m_over")
                    m_score = gr.Markdown(elem_id="m_score")
                    m_cats = gr.Label(label="Per-component scores (fusion)", show_heading=False, elem_id="m_cats")
                    m_files = gr.File(label="Downloads: detection.json, mask.png, heatmap.png", file_count="multiple")
            m_state = gr.State()
            m_run.click(run_manipulation, [m_file, m_model, m_opacity],
                        [m_in, m_over, m_score, m_cats, m_files, m_state], **busy)
            m_opacity.change(_overlay, [m_state, m_opacity], m_over)

        with gr.Tab("Synthetic", id="synthetic"):
            with gr.Row():
                with gr.Column(scale=1):
                    s_file = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="s_file")
                    s_model = gr.Dropdown(_models("synthetic"), value=_default("synthetic"), label="Model")
                    s_opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Heatmap opacity")
                    s_run = gr.Button("Detect", variant="primary", elem_id="s_run")
                    gr.Examples([[ex.tagged]], inputs=[s_file],
                                label="A real photo whose PNG text claims it was generated")
                with gr.Column(scale=2):
                    with gr.Row():
                        s_in = gr.Image(label="Input", format="png", interactive=False)
                        s_over = gr.Image(label="Heatmap overlay (where the model has one)", format="png",
                                          interactive=False, elem_id="s_over")
                    s_score = gr.Markdown(elem_id="s_score")
                    s_prov = gr.Markdown(elem_id="s_prov")
                    s_files = gr.File(label="Downloads: detection.json (with the provenance record)",
                                      file_count="multiple")
            s_state = gr.State()
            s_run.click(run_synthetic, [s_file, s_model, s_opacity],
                        [s_in, s_over, s_score, s_prov, s_files, s_state], **busy)
            s_opacity.change(_overlay, [s_state, s_opacity], s_over)

        with gr.Tab("dMRI", id="dmri"):
            with gr.Row():
                with gr.Column(scale=1):
                    d_files = gr.File(label="Series: .nii/.nii.gz + .bval + .bvec (+ .json sidecar)",
                                      file_count="multiple", type="filepath", elem_id="d_files")
                    d_model = gr.Dropdown(_models("dmri"), value=_default("dmri"), label="Model")
                    d_clean = gr.Checkbox(label="Also write the series without its flagged volumes", value=False)
                    d_run = gr.Button("Check series", variant="primary", elem_id="d_run")
                    gr.Examples([[ex.dmri]], inputs=[d_files], label="A diffusion phantom with slice dropout")
                with gr.Column(scale=2):
                    d_pic = gr.Image(label="Slice x volume scores and the worst slices", format="png",
                                     interactive=False, elem_id="d_pic")
                    d_note = gr.Markdown(elem_id="d_note")
                    d_table = gr.Dataframe(headers=["volume", "b", "class", "score", "worst slice"],
                                           label="Volumes", interactive=False, elem_id="d_table")
                    d_out = gr.File(label="Downloads: qc.html, qc.png, volumes.csv, detection.json (+ clean series)",
                                    file_count="multiple")
            d_run.click(run_dmri, [d_files, d_model, d_clean], [d_pic, d_note, d_table, d_out], **busy)

        with gr.Tab("Novel views", id="views"):
            with gr.Row():
                with gr.Column(scale=1):
                    v_file = gr.File(label="Novel view", file_types=["image"], type="filepath", elem_id="v_file")
                    v_refs = gr.File(label="Reference views (several)", file_count="multiple", file_types=["image"],
                                     type="filepath", elem_id="v_refs")
                    v_model = gr.Dropdown(_models("views"), value=_default("views"), label="Model")
                    v_opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Heatmap opacity")
                    v_run = gr.Button("Detect", variant="primary", elem_id="v_run")
                    gr.Examples([[ex.view, ex.refs]], inputs=[v_file, v_refs], label="A view of a cat with floaters")
                with gr.Column(scale=2):
                    with gr.Row():
                        v_in = gr.Image(label="View", format="png", interactive=False)
                        v_over = gr.Image(label="Artifact map overlay", format="png", interactive=False,
                                          elem_id="v_over")
                    v_score = gr.Markdown(elem_id="v_score")
                    v_files = gr.File(label="Downloads", file_count="multiple")
            v_state = gr.State()
            v_run.click(run_views, [v_file, v_refs, v_model, v_opacity], [v_in, v_over, v_score, v_files, v_state],
                        **busy)
            v_opacity.change(_overlay, [v_state, v_opacity], v_over)

        with gr.Tab("Restoration", id="restoration"):
            with gr.Row():
                with gr.Column(scale=1):
                    r_task = gr.Radio(list(RESTORE_TASKS), value="sr", label="Task", elem_id="r_task")
                    r_model = gr.Dropdown(_models("sr"), value=_default("sr"), label="Model", elem_id="r_model")
                    r_file = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="r_file")
                    r_mask = gr.File(label="Mask (inpaint: white = fill)", file_types=["image"], type="filepath",
                                     elem_id="r_mask")
                    r_refs = gr.File(label="References (refrepair)", file_count="multiple", file_types=["image"],
                                     type="filepath", elem_id="r_refs")
                    r_run = gr.Button("Restore", variant="primary", elem_id="r_run")
                    gr.Examples([["sr", ex.small, None], ["inpaint", ex.inpaint_image, ex.inpaint_mask]],
                                inputs=[r_task, r_file, r_mask], label="Examples")
                with gr.Column(scale=2):
                    r_pair = gr.Image(label="Before | after", format="png", interactive=False, elem_id="r_pair")
                    r_note = gr.Markdown(elem_id="r_note")
                    r_out = gr.File(label="Restored PNG")
            r_task.change(_task_models, r_task, r_model)
            r_run.click(run_restore, [r_task, r_model, r_file, r_mask, r_refs], [r_pair, r_out, r_note], **busy)

        with gr.Tab("Batch", id="batch"):
            with gr.Row():
                with gr.Column(scale=1):
                    gr.Markdown(f"A folder under `{root}` (the folder this app was started on; nothing outside it "
                                f"is read) **or** a zip upload. Results go to a fresh folder, offered as downloads.")
                    b_folder = gr.Textbox(label="Folder (relative to the root, or absolute inside it)",
                                          elem_id="b_folder")
                    b_zip = gr.File(label="...or a zip of images", file_types=[".zip"], type="filepath",
                                    elem_id="b_zip")
                    b_task = gr.Dropdown(list(BATCH_TASKS), value="manipulation", label="Task", elem_id="b_task")
                    b_model = gr.Dropdown(_models("manipulation"), value=_default("manipulation"), label="Model",
                                          elem_id="b_model")
                    b_refs = gr.Textbox(label="Reference views folder (views, refrepair), inside the root or zip")
                    b_masks = gr.Textbox(label="Masks folder (inpaint), inside the root or zip")
                    b_run = gr.Button("Run batch", variant="primary", elem_id="b_run")
                    gr.Examples([[ex.batch_zip]], inputs=[b_zip], label="Two generated splices (zip)")
                with gr.Column(scale=2):
                    b_summary = gr.Markdown(elem_id="b_summary")
                    b_files = gr.File(label="report.html, results.csv, everything (zip)", file_count="multiple",
                                      elem_id="b_files")
            b_root = gr.State(root)
            b_task.change(_task_models, b_task, b_model)
            b_run.click(run_batch_ui, [b_root, b_folder, b_zip, b_task, b_model, b_refs, b_masks],
                        [b_summary, b_files], **busy)
    demo.examples_dir = ex.root  # so launch() can allow serving the example files
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, root: str | os.PathLike = ".", *,
           max_file_size: str | int = MAX_FILE_SIZE, prevent_thread_lock: bool = False, **kwargs):
    """Build the app and serve it on ``host:port`` (the machine only, by default); users queue
    for the models (one job at a time)."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"--root {root}: not a folder")
    demo = build_app(root)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=int(port), max_file_size=max_file_size, theme=theme(),
                share=False, show_error=True, ssr_mode=False, pwa=False, mcp_server=False,
                allowed_paths=[str(demo.examples_dir)], prevent_thread_lock=prevent_thread_lock,
                footer_links=[], **kwargs)
    return demo
