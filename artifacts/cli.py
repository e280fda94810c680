"""The ``artifacts`` command. Parsing only: every verb calls the same engine as the Python API.

Heavy modules (torch, the engine, models) are imported inside the verbs, so ``artifacts --help``
stays fast and imports none of the optional stacks.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

EXIT_CODES = """exit codes:
  0    every item processed (ok or not applicable; already-done items count as done)
  1    partial failure: some items failed (one-line reasons in the store and results.csv)
  2    usage error: bad arguments, unknown task or model, inputs or weights not found
  3    every item that was processed failed
  4    cannot write results: output not writable, disk full, store locked by another run or corrupt
  130  interrupted; run the same command again to resume
"""


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_detect(args: argparse.Namespace) -> int:
    from artifacts.engine import run_batch

    overrides = _overrides(args.set)
    if args.threshold is not None:
        overrides["threshold"] = args.threshold
    inputs = list(args.inputs)
    example = None
    if args.example:
        from artifacts.examples import make_example

        if inputs or args.files_from:
            raise ValueError("--example makes its own inputs: drop the inputs or --example")
        example = make_example(args.task, args.out)
        inputs = example.inputs
    if not inputs and not args.files_from:
        raise ValueError("no inputs: give files, folders or globs, --files-from LIST, or --example")
    if args.write_clean and args.task != "dmri":
        raise ValueError("--write-clean writes diffusion series without their flagged volumes: task dmri only")
    summary = run_batch(
        inputs, args.out, task=args.task, model=args.model, weights=args.weights, device=args.device,
        batch_size=args.batch_size, workers=args.workers, resume=not args.no_resume,
        retry_errors=args.retry_errors, files_from=args.files_from, recursive=not args.no_recursive,
        progress=not args.quiet, command=args.command_line, engine=args.engine, refs=args.refs,
        ray_address=args.ray_address, actors=args.actors, **overrides,
    )
    from artifacts.report import write_report

    print(summary.text())
    print(f"report: {write_report(args.out)}")
    if args.task == "dmri":
        from artifacts.report.dmri import write_clean, write_volume_table

        table = write_volume_table(args.out)
        if table is not None:
            print(f"volumes: {table}")
        if args.write_clean:
            print("\n".join(["clean series:"] + [f"  {line}" for line in write_clean(args.out)]))
    if example is not None:
        from artifacts.examples import summarise_example

        print(summarise_example(example, summary))
    return summary.exit_code


#: which restoration task repairs what a detection task found (``artifacts restore --from RUN``)
REPAIRS = {"manipulation": "inpaint", "views": "refrepair"}


def cmd_restore(args: argparse.Namespace) -> int:
    from artifacts.engine import run_batch
    from artifacts.registry import RESTORATION_TASKS, create, default_model, model_info

    inputs, items, task = list(args.inputs), None, args.task
    if task is not None and task not in RESTORATION_TASKS:
        # `restore a.png ... --from RUN` would otherwise read a file name as the task
        raise ValueError(f"unknown restoration task {task!r}; tasks: {', '.join(RESTORATION_TASKS)}")
    if args.from_run:
        from artifacts.engine.items import items_from_run

        if inputs or args.masks or args.refs:
            raise ValueError("--from takes the inputs, masks and references from the detection run; drop the others")
        found, items = items_from_run(args.from_run, flagged_only=not args.all)
        if task is None:
            if found not in REPAIRS:
                raise ValueError(f"no restoration follows a {found or 'empty'} run; name the task")
            task = REPAIRS[found]
        if not items:
            raise ValueError(f"{args.from_run}: no {'flagged ' if not args.all else ''}results with a heatmap to repair"
                             + ("" if args.all else " (--all takes every result)"))
        print(f"{len(items)} items from {args.from_run} ({found} run) -> {task}")
    elif task is None:
        raise ValueError("name the restoration task (inpaint, sr, refrepair) or give --from RUN")
    name = model_info(args.model, task=task).full_name if args.model else default_model(task)
    if not name.startswith(f"{task}/"):
        raise ValueError(f"model {name} belongs to task {name.split('/')[0]!r}, not {task!r}")
    restorer = create(name, weights=args.weights, device=args.device, **_overrides(args.set))
    if args.sr:
        from artifacts.restoration.base import Chain

        sr_name = model_info(args.sr).full_name
        if not sr_name.startswith("sr/"):
            raise ValueError(f"--sr takes a super-resolution model (see `artifacts models --task sr`), not {sr_name}")
        restorer = Chain(restorer, create(sr_name, device=args.device))
    if not inputs and items is None and not args.files_from:
        raise ValueError("no inputs: give files, folders or globs, --files-from LIST, or --from RUN")
    summary = run_batch(
        inputs, args.out, detector=restorer, items=items, masks=args.masks, refs=args.refs,
        batch_size=args.batch_size, workers=args.workers, resume=not args.no_resume, retry_errors=args.retry_errors,
        files_from=args.files_from, progress=not args.quiet, command=args.command_line,
    )
    from artifacts.report import write_report

    print(summary.text())
    print(f"report: {write_report(args.out)}")
    return summary.exit_code


def cmd_eval(args: argparse.Namespace) -> int:
    from artifacts.eval import evaluate, get_adapter
    from artifacts.eval.robustness import parse_sweep

    sweep = parse_sweep(args.sweep) if args.robustness or args.sweep else ()
    # task-specific options, passed only when given (an adapter rejects what it does not know)
    options = {k: v for k, v in (("resize_masks", args.resize_masks or None), ("split", args.split),
                                 ("kinds", args.kinds and args.kinds.split(",")),
                                 ("match_size", args.match_size), ("side", args.side), ("clean", args.clean),
                                 ("seeds", args.seeds), ("severities", args.severities),
                                 ("per_vendor", args.per_vendor)) if v is not None}
    try:
        get_adapter(args.task, **options)
    except TypeError as exc:
        raise ValueError(f"eval {args.task}: an option does not apply to this task ({exc})") from None
    result = evaluate(args.task, args.data, models=args.model, out=args.out, sweep=sweep, n_boot=args.bootstrap,
                      device=args.device, workers=args.workers, progress=not args.quiet, **options)
    print(get_adapter(args.task).format(result))
    print(f"\nwritten: {result['json']}" + (f" and {result['picture']}" if result.get("picture") else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from artifacts.report import write_report

    print(write_report(args.out, run_id=args.run, max_items=args.max_items))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from artifacts.registry import list_models, model_info

    rows = []
    for name in list_models(task=args.task, pattern=args.pattern):
        info = model_info(name)
        spec = info.weight_spec()
        rows.append({
            "model": name,
            "weights": (f"{spec.tag} ({info.weight_status()})" if spec
                        else getattr(info.cls, "weights_note", "none needed")),
            "threshold": spec.threshold if spec else None,
            "default": info.default,
            "description": info.description,
        })
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no models match")
        return 0
    w = max(len(r["model"]) for r in rows) + (2 if any(r["default"] for r in rows) else 0)
    ww = max(len(r["weights"]) for r in rows)
    print(f"{'model':<{w}}  {'weights':<{ww}}  description")
    for r in rows:
        name = r["model"] + (" *" if r["default"] else "")
        print(f"{name:<{w}}  {r['weights']:<{ww}}  {r['description']}")
    if any(r["default"] for r in rows):
        print("* default model of its task")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from artifacts.registry import default_model
    from artifacts.train import train

    # recipe options, passed only when given (each recipe has its own defaults and rejects the rest)
    options = {k: v for k, v in (("n", args.n), ("seed", args.seed), ("data", args.data), ("epochs", args.epochs))
               if v is not None}
    result = train(args.task, args.model or default_model(args.task), args.out, options=options,
                   progress=not args.quiet, **_overrides(args.set))
    print(json.dumps(result, indent=1))
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from artifacts.app import launch  # an ImportError names the [app] extra (exit 2)

    launch(args.host, args.port, args.root, max_file_size=args.max_file_size)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from artifacts._version import __version__

    p = argparse.ArgumentParser(
        prog="artifacts",
        description="Find artifacts in images, dMRI volumes and 3D reconstructions, and repair them.",
    )
    p.add_argument("--version", action="version", version=f"artifacts {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    d = sub.add_parser(
        "detect", help="run a detector over files or folders into a resumable result store",
        description="Run a detector over images (files, folders searched recursively, globs, list files)\n"
                    "or, for dmri, over diffusion series (NIfTI + .bval/.bvec, folders, BIDS datasets).\n"
                    "Results go to OUT/artifacts.sqlite and OUT/items/<key>/ (detection.json, heatmap.png,\n"
                    "mask.png, overlay.png; dmri: qc.html, qc.png, volumes.csv), plus OUT/results.csv and\n"
                    "OUT/results.jsonl (dmri: OUT/dmri_volumes.csv, one row per volume).\n"
                    "A rerun skips what is done; a killed run resumes.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("task", help="detection task: manipulation, synthetic, dmri or views")
    d.add_argument("inputs", nargs="*", help="image files, folders or glob patterns (views: the novel views; dmri: "
                   "4-D NIfTI files with .bval/.bvec beside them, folders of them, or a BIDS dataset root)")
    d.add_argument("--refs", nargs="+", metavar="REF", help="views: the reference (input/training) views of the "
                   "scene, files or folders; a view is never its own reference")
    d.add_argument("-o", "--out", required=True, help="output folder (store + item files)")
    d.add_argument("--model", help="model name (default: the task's default; see `artifacts models`)")
    d.add_argument("--weights", help="weight tag, file path, or 'none' (default: the model's own)")
    d.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (default)")
    d.add_argument("--batch-size", type=int, default=1, help="items per detector call (default 1)")
    d.add_argument("--workers", type=int, help="decoding threads (default: CPU count, at most 8)")
    d.add_argument("--threshold", type=float, help="operating threshold in [0,1] (default: the weights')")
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model config field (repeatable)")
    d.add_argument("--files-from", metavar="LIST", help="text file with one input path per line")
    d.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    d.add_argument("--no-resume", action="store_true", help="recompute items already in the store")
    d.add_argument("--retry-errors", action="store_true", help="recompute items that failed before")
    d.add_argument("--example", action="store_true",
                   help="generate a seeded example set (manipulations of photos shipped with scikit-image) into "
                        "OUT/example-data, run on it and compare with its ground truth")
    d.add_argument("--write-clean", action="store_true",
                   help="dmri: also write each series without its flagged volumes (gradient table cut to match) "
                        "to OUT/clean/; inputs are never modified")
    d.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local threads (default) or a Ray actor pool (needs the [distributed] extra)")
    d.add_argument("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one)")
    d.add_argument("--actors", type=int, help="Ray actors running the detector (default: --workers)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_detect)

    rs = sub.add_parser(
        "restore", help="repair or upscale images (inpaint, sr, refrepair), or what a detect run found",
        description="Restore images into a resumable result store (OUT/items/<key>/restored.png, mask.png,\n"
                    "overlay.png = before | after, restoration.json; OUT/report.html).\n"
                    "  artifacts restore sr photos/ -o up                         x4 super-resolution (SPAN)\n"
                    "  artifacts restore inpaint photos/ --masks masks/ -o fixed     fill masks\n"
                    "  artifacts restore refrepair views/ --refs train/ -o fixed  repair novel views\n"
                    "  artifacts restore --from RUN -o fixed [--sr span]          repair what `detect` found:\n"
                    "      manipulation masks -> inpaint, view artifact maps -> refrepair",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rs.add_argument("task", nargs="?", help="restoration task: inpaint, sr or refrepair (default with --from: "
                    "follows the run's task)")
    rs.add_argument("inputs", nargs="*", help="image files, folders or glob patterns")
    rs.add_argument("-o", "--out", required=True, help="output folder (store + item files)")
    rs.add_argument("--from", dest="from_run", metavar="RUN", help="a detect run's output folder: repair its "
                    "flagged results with their masks / artifact maps")
    rs.add_argument("--all", action="store_true", help="with --from: every result with a heatmap, not only flagged ones")
    rs.add_argument("--masks", help="inpaint: one mask file, or a folder of masks named like the inputs "
                    "(a/b.jpg -> a/b_mask.*, a/b_gt.* or a/b.*); white = repair")
    rs.add_argument("--refs", nargs="+", metavar="REF", help="refrepair: the scene's reference views (files or folders)")
    rs.add_argument("--sr", metavar="MODEL", help="then upscale the result with this sr model (e.g. span)")
    rs.add_argument("--model", help="model name (default: the task's default; see `artifacts models --task TASK`)")
    rs.add_argument("--weights", help="weight tag or file path (default: the model's own)")
    rs.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (default)")
    rs.add_argument("--batch-size", type=int, default=1, help="items per model call (default 1)")
    rs.add_argument("--workers", type=int, help="decoding threads (default: CPU count, at most 8)")
    rs.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model config field (repeatable), "
                    "e.g. tile=128, dilate=3, threshold=0.3")
    rs.add_argument("--files-from", metavar="LIST", help="text file with one input path per line")
    rs.add_argument("--no-resume", action="store_true", help="recompute items already in the store")
    rs.add_argument("--retry-errors", action="store_true", help="recompute items that failed before")
    rs.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rs.set_defaults(func=cmd_restore)

    e = sub.add_parser(
        "eval", help="measure detectors on a dataset with ground truth (metrics + bootstrap intervals)",
        description="Evaluate detectors on a labelled dataset.\n"
                    "  manipulation: a folder with Tp/ + Gt/ (+ Au/), or an IML-ViT / IMDL-BenCo JSON list\n"
                    "  views: a scene folder listed in artifacts/datasets/splits/views.json; its views are\n"
                    "         degraded by the seeded reconstruction-artifact generator\n"
                    "  sr: a folder of high-resolution images (downscaled x4 here, bicubic with antialiasing)\n"
                    "  refrepair: a scene folder, as for views; repaired views are compared with the clean ones\n"
                    "  dmri: a folder of diffusion series (../shared/data/dmri); seeded artifacts are injected\n"
                    "        into fresh noise draws of each series, clean draws measure false positives\n"
                    "Detections are cached in OUT/store (resumable); the table is printed and OUT/eval.json written.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("task", help="task: manipulation, synthetic, xaigd (synthetic models on X-AIGD parquet), dmri, views, "
                   "sr or refrepair")
    e.add_argument("--data", required=True, help="dataset folder or JSON list (views: a scene folder; synthetic: a "
                   "0_real/1_fake folder; xaigd: an X-AIGD parquet file or a folder of them)")
    e.add_argument("--model", action="append", help="model to evaluate (repeatable; default: all usable offline)")
    e.add_argument("-o", "--out", help="output folder (default: artifacts-eval/<dataset name>)")
    e.add_argument("--robustness", action="store_true", help="also run the default robustness sweep")
    e.add_argument("--sweep", help="custom sweep, e.g. jpeg90,jpeg50,blur1,noise3,resize0.5 (implies --robustness)")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    e.add_argument("--resize-masks", action="store_true", help="manipulation: resize masks whose size differs "
                   "(else an error)")
    e.add_argument("--split", choices=("eval", "tune"), help="views, refrepair: the evaluated views (default) or "
                   "the tuning views; dmri: the held-out vendor or the training vendors (default: both, apart)")
    e.add_argument("--kinds", help="views, refrepair, dmri: comma-separated degradation / artifact kinds (default: all)")
    e.add_argument("--clean", type=int, help="dmri: clean draws (fresh noise) per series (default 4)")
    e.add_argument("--seeds", type=int, help="dmri: artifact draws per kind and severity (default 1)")
    e.add_argument("--severities", help="dmri: comma-separated severities in (0, 1] (default 0.25,0.5,0.75,1)")
    e.add_argument("--per-vendor", type=int, help="dmri: series per vendor folder, 0 = all (default 1)")
    e.add_argument("--match-size", choices=("none", "crop", "resize"), help="synthetic: size-match both classes: "
                   "centre-crop to SIDE x SIDE, or resize to a SIDE short side (default none: files as they are)")
    e.add_argument("--side", type=int, help="synthetic: the side for --match-size (default 512)")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (default)")
    e.add_argument("--workers", type=int, help="decoding threads")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="write OUT/report.html for a result store (also written after each detect)")
    r.add_argument("out", help="output folder of a detect run (holds artifacts.sqlite)")
    r.add_argument("--run", type=int, help="only the results written by this run id")
    r.add_argument("--max-items", type=int, help="row cap (default 2000; the CSV has everything)")
    r.set_defaults(func=cmd_report)

    m = sub.add_parser("models", help="list models and the status of their weights")
    m.add_argument("pattern", nargs="?", help="wildcard filter, e.g. '*noise*'")
    m.add_argument("--task", help="only this task")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser("train", help="train a model, or calibrate a training-free one (data: the task's split list)")
    t.add_argument("task", help="task, e.g. manipulation or synthetic")
    t.add_argument("--model", help="model name (default: the task's default)")
    t.add_argument("-o", "--out", required=True, help="folder for the weights/calibration file and its record")
    t.add_argument("--n", type=int, help="manipulation: number of synthetic images (default 400)")
    t.add_argument("--seed", type=int, help="random seed (manipulation: first generator seed, default 10000)")
    t.add_argument("--data", help="synthetic: training folder in a 0_real/1_fake (ForenSynths, GenImage) layout "
                                  "(default: the split list's training data)")
    t.add_argument("--epochs", type=int, help="learned models: training epochs (default: the recipe's)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model config field")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("app", help="serve the web app (Gradio, extra [app]) on this machine",
                       description="A Gradio app with a tab per task (manipulation, novel views, restoration) and a "
                                   "batch tab, calling the same API as this command. Offline: no analytics, no "
                                   "external requests; one model job at a time (others queue).")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    a.add_argument("--root", default=".", help="the only folder tree the batch tab may read (default: .)")
    a.add_argument("--max-file-size", default="200mb", help="upload size limit (default 200mb)")
    a.set_defaults(func=cmd_app)

    from artifacts.recon3d.cli import add_parser as add_recon3d

    add_recon3d(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import sqlite3

    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["artifacts"] + (sys.argv[1:] if argv is None else list(argv)))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("artifacts: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (KeyError, ValueError, FileNotFoundError, NotADirectoryError, ImportError) as exc:
        return _fail(exc, 2)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        from artifacts.engine.store import StoreError

        if isinstance(exc, RuntimeError) and not isinstance(exc, StoreError):
            raise  # a bug: keep the traceback
        return _fail(exc, 4)


def _fail(exc: BaseException, code: int) -> int:
    if os.environ.get("ARTIFACTS_DEBUG"):
        raise exc
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"artifacts: error: {msg}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
