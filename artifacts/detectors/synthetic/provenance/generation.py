"""Generation settings that tools write into the file: A1111, ComfyUI, NovelAI, InvokeAI, Fooocus,
Midjourney, and generic keys or generator names."""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from .common import MAX_TEXT, cap, clean

_GENERATOR_NAMES = ("stable diffusion", "stable-diffusion", "automatic1111", "novelai", "midjourney",
                    "dall-e", "dall·e", "comfyui", "invokeai", "firefly", "imagen", "fooocus",
                    "leonardo.ai", "chatgpt", "gpt-4o", "openai", "flux", "stability ai", "ideogram")
_GENERIC_KEYS = {"prompt", "negative_prompt", "negative prompt", "seed", "sampler", "steps",
                 "cfg_scale", "generation_data", "generation data", "aigc", "ai_metadata",
                 "sd_metadata", "model_hash", "parameters", "workflow"}


def parse_a1111(text: str) -> dict | None:
    """Parse Stable Diffusion WebUI (A1111/Forge) ``parameters`` text; None when it is not one."""
    if "Steps:" not in text:
        return None
    lines = text.strip().replace("\r\n", "\n").split("\n")
    idx = next((i for i in range(len(lines) - 1, max(len(lines) - 20, 0) - 1, -1)
                if re.match(r"\s*Steps:\s*\d", lines[i])), None)
    if idx is None:
        return None
    head = "\n".join(lines[:idx])
    m = re.search(r"(?:^|\n)Negative prompt:", head)
    prompt, neg = (head[:m.start()], head[m.end():]) if m else (head, "")
    params = _a1111_params(lines[idx][:1 << 16])  # real settings lines are a few KB
    out: dict[str, Any] = {"prompt": cap(prompt.strip()), "negative_prompt": cap(neg.strip())}
    typed = (("steps", "Steps", int), ("sampler", "Sampler", str), ("cfg_scale", "CFG scale", float),
             ("seed", "Seed", int), ("model", "Model", str), ("model_hash", "Model hash", str))
    for name, key, kind in typed:
        if key in params:
            try:
                out[name] = kind(params.pop(key)) if kind is not str else clean(params.pop(key))
            except ValueError:
                pass
    size = params.pop("Size", None)
    if size and re.fullmatch(r"\d+x\d+", size):
        out["size"] = [int(v) for v in size.split("x")]
    out["other"] = {clean(k, 60): clean(v) for k, v in list(params.items())[:40]}
    return out


_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"')


def _a1111_params(line: str, limit: int = 200) -> dict[str, str]:
    """``Key: value, Key: "quoted, value", ...`` in one linear pass (no regex backtracking)."""
    params: dict[str, str] = {}
    pos, n = 0, len(line)
    while pos < n and len(params) < limit:
        colon = line.find(":", pos)
        if colon < 0:
            break
        key = line[pos:colon].strip(" ,")
        pos = colon + 1
        while pos < n and line[pos] == " ":
            pos += 1
        quoted = _QUOTED.match(line, pos)
        if quoted:
            val, pos = quoted.group(1).replace('\\"', '"'), line.find(",", quoted.end())
        else:
            end = line.find(",", pos)
            val, pos = line[pos:end if end >= 0 else n], end
        if key:
            params[key] = val.strip()
        if pos < 0:
            break
        pos += 1
    return params


def generation_record(texts: list, software: list) -> dict:
    gen: dict[str, Any] = {"found": False, "tools": [], "sources": []}
    generic: dict[str, Any] = {}
    novelai = any("novelai" in s.lower() for s in software)

    def add(tool: str, src: str, info: dict) -> None:
        if tool in gen:
            gen[tool].update({k: v for k, v in info.items() if k not in gen[tool]})
            return
        gen[tool] = {**info, "source": src}
        gen["tools"].append(tool)
        gen["sources"].append(src)

    for src, key, val in texts:
        k, js = key.strip().lower(), _json(val)
        comfy = _comfy(js, k) if k in ("prompt", "workflow") and isinstance(js, dict) else None
        a1111 = parse_a1111(val) if js is None else None
        if k == "parameters" and isinstance(js, dict):
            fooocus = "fooocus" in val[:20000].lower() or any(t[1].lower() == "fooocus_scheme" for t in texts)
            add("fooocus" if fooocus else "generic", src, _settings(js))
        elif comfy:
            add("comfyui", src, comfy)
        elif k == "comment" and isinstance(js, dict) and (novelai or "uc" in js or "v4_prompt" in js):
            model = next((v for _, kk, v in texts if kk == "Source"), None)
            add("novelai", src, {**_settings(js), **({"model": clean(model)} if model else {})})
        elif k in ("invokeai_metadata", "sd-metadata", "invokeai_graph", "dream"):
            info = {}
            if isinstance(js, dict):
                image = js.get("image") if isinstance(js.get("image"), dict) else {}
                info = {**_settings(image), **_settings(js)}
            elif k == "dream":
                info = {"prompt": cap(val)}
            add("invokeai", src, {**info, "keys": [key]})
        elif k == "description" and "Job ID:" in val:
            add("midjourney", src, {"prompt": cap(val.split("Job ID:")[0].strip())})
        elif a1111 is not None:
            add("a1111", src, a1111)
        elif isinstance(js, dict) and len(_settings(js)) >= 2:
            add("generic", src, _settings(js))
        elif k in _GENERIC_KEYS:
            generic.setdefault("keys", []).append(key)
            if k == "prompt":
                generic.setdefault("prompt", cap(val))
    named = [s for s in dict.fromkeys(software) if any(g in s.lower() for g in _GENERATOR_NAMES)]
    if named:
        generic["software"] = [clean(s) for s in named]
    if generic:
        add("generic", "keys / software names", generic)
    gen["found"] = bool(gen["tools"])
    return gen


_SETTING_KEYS = {
    "prompt": ("prompt", "positive prompt", "positive_prompt"),
    "negative_prompt": ("negative prompt", "negative_prompt", "uc"),
    "steps": ("steps", "num inference steps"),
    "sampler": ("sampler", "sampler name"),
    "scheduler": ("scheduler",),
    "cfg_scale": ("cfg scale", "scale", "guidance scale", "cfg"),
    "seed": ("seed", "noise seed"),
    "model": ("model", "base model", "model name", "model weights", "sd model name"),
    "width": ("width",),
    "height": ("height",),
}


def _settings(d: dict) -> dict:
    """Common generation settings from a JSON object, whatever the tool spells them."""
    norm = {re.sub(r"[_\-]+", " ", str(k)).strip().lower(): v for k, v in list(d.items())[:500]}
    out: dict[str, Any] = {}
    for name, keys in _SETTING_KEYS.items():
        for key in keys:
            v = norm.get(key)
            if isinstance(v, dict):
                v = v.get("name") or v.get("model_name") or v.get("key")
            if isinstance(v, list):  # InvokeAI 2: [{"prompt": ..., "weight": ...}]
                v = " ".join(str(p.get("prompt", "")) if isinstance(p, dict) else str(p) for p in v[:20])
            if isinstance(v, bool) or v is None or v == "":
                continue
            if isinstance(v, (int, float)):
                out[name] = v
            elif isinstance(v, str):
                out[name] = cap(v) if "prompt" in name else clean(v)
            if name in out:
                break
    return out


def _comfy(js: dict, kind: str) -> dict | None:
    if kind == "workflow":
        nodes = [n for n in js.get("nodes") or [] if isinstance(n, dict)] if isinstance(js.get("nodes"), list) else []
        if not nodes:
            return None
        counts = Counter(str(n.get("type")) for n in nodes if n.get("type"))
        ckpts = [w[0] for n in nodes if "checkpointloader" in str(n.get("type", "")).lower()
                 for w in [n.get("widgets_values")] if isinstance(w, list) and w and isinstance(w[0], str)]
        return {"workflow": True, "workflow_n_nodes": len(nodes), "workflow_class_types": _top(counts),
                **({"checkpoints": _uniq(ckpts)} if ckpts else {})}
    nodes = [n for n in js.values() if isinstance(n, dict) and "class_type" in n]
    if not nodes:
        return None
    counts = Counter(str(n["class_type"]) for n in nodes)
    ckpts, loras, samplers, prompts = [], [], [], []
    for n in nodes:
        inp = n.get("inputs") if isinstance(n.get("inputs"), dict) else {}
        ckpts += [inp[k] for k in ("ckpt_name", "unet_name") if isinstance(inp.get(k), str)]
        loras += [inp["lora_name"]] if isinstance(inp.get("lora_name"), str) else []
        ct = str(n["class_type"]).lower()
        if "sampler" in ct and any(k in inp for k in ("steps", "seed", "noise_seed", "cfg")):
            samplers.append({k: inp[k] for k in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler",
                                                 "denoise") if isinstance(inp.get(k), (int, float, str))})
        if "textencode" in ct:
            prompts += [cap(inp[k]) for k in ("text", "text_g", "text_l") if isinstance(inp.get(k), str)]
    return {"prompt_graph": True, "n_nodes": len(nodes), "class_types": _top(counts),
            "checkpoints": _uniq(ckpts), "loras": _uniq(loras), "samplers": samplers[:8], "prompts": prompts[:4]}


def _top(counts: Counter, n: int = 40) -> dict:
    return {clean(k, 80): v for k, v in counts.most_common(n)}


def _uniq(items: list, n: int = 10) -> list:
    return [clean(v) for v in dict.fromkeys(items)][:n]


def _json(val: str):
    s = val.strip() if isinstance(val, str) else ""
    if not s or s[0] not in "{[" or len(s) > MAX_TEXT:
        return None
    try:
        return json.loads(s)
    except Exception:  # not JSON, or too deeply nested
        return None

