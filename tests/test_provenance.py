"""Provenance record and input warnings for synthetic-image detection (real files written here)."""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from artifacts.detectors.synthetic.provenance import (
    estimate_jpeg_quality,
    input_warnings,
    parse_a1111,
    provenance,
)
from artifacts.io import ImageData, load_image

A1111 = (
    "a photo of an astronaut riding a horse, (masterpiece:1.2)\nhighly detailed\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x768, "
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "detail: 1a2b, x: 3c", Version: v1.9.4'
)
SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
C2PA_UUID = b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:96, :128])


def _record(path) -> dict:
    rec = provenance(load_image(path))
    json.dumps(rec, allow_nan=False)  # the record is plain JSON
    return rec


def _jpeg_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png_bytes(arr: np.ndarray, pnginfo=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", pnginfo=pnginfo)
    return buf.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _before_iend(png: bytes, chunk: bytes) -> bytes:
    i = png.rindex(b"IEND") - 4
    return png[:i] + chunk + png[i:]


# --- a minimal C2PA-like manifest store: JUMBF boxes holding CBOR ------------------------


def _cbor(obj) -> bytes:
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + struct.pack(">H", n)

    if isinstance(obj, str):
        raw = obj.encode()
        return head(3, len(raw)) + raw
    if isinstance(obj, int):
        return head(0, obj)
    if isinstance(obj, list):
        return head(4, len(obj)) + b"".join(_cbor(v) for v in obj)
    return head(5, len(obj)) + b"".join(_cbor(k) + _cbor(v) for k, v in obj.items())


def _box(tbox: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + tbox + payload


def _superbox(uuid: bytes, label: str, *children: bytes) -> bytes:
    return _box(b"jumb", _box(b"jumd", uuid + b"\x03" + label.encode() + b"\x00") + b"".join(children))


def c2pa_store() -> bytes:
    tail = C2PA_UUID[4:]
    actions = {"actions": [{"action": "c2pa.created", "digitalSourceType": SOURCE_TYPE,
                            "softwareAgent": "Example Diffusion 3"}]}
    claim = {"claim_generator": "TestGen/1.0 c2pa-rs/0.30", "dc:format": "image/jpeg",
             "assertions": [{"url": "self#jumbf=c2pa.assertions/c2pa.actions"}]}
    assertions = _superbox(b"c2as" + tail, "c2pa.assertions",
                           _superbox(b"cbor" + tail, "c2pa.actions", _box(b"cbor", _cbor(actions))))
    manifest = _superbox(b"c2ma" + tail, "urn:uuid:0b6b9b2e-1111-2222-3333-444455556666", assertions,
                         _superbox(b"c2cl" + tail, "c2pa.claim", _box(b"cbor", _cbor(claim))),
                         _superbox(b"c2cs" + tail, "c2pa.signature", _box(b"cbor", b"\xa0")))
    return _superbox(C2PA_UUID, "c2pa", manifest)


def _app11(store: bytes, seq: int = 1, instance: int = 1) -> bytes:
    return _segment(0xEB, b"JP" + struct.pack(">HI", instance, seq) + store)


# --- generation settings in PNG text chunks ----------------------------------------------


def test_a1111_parameters_png(tmp_path, rgb):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    path = tmp_path / "sd.png"
    path.write_bytes(_png_bytes(rgb, info))
    rec = _record(path)
    assert rec["format"] == "PNG" and rec["size"] == [128, 96] and rec["jpeg_quality"] is None
    gen = rec["generation"]
    assert gen["found"] and gen["tools"] == ["a1111"]
    a = gen["a1111"]
    assert a["prompt"] == "a photo of an astronaut riding a horse, (masterpiece:1.2)\nhighly detailed"
    assert a["negative_prompt"] == "blurry, lowres"
    assert (a["steps"], a["sampler"], a["cfg_scale"], a["seed"]) == (30, "DPM++ 2M Karras", 6.5, 3141592653)
    assert a["size"] == [512, 768] and a["model"] == "sd_xl_base_1.0" and a["model_hash"] == "31e35c80fc"
    assert a["other"]["Lora hashes"] == "detail: 1a2b, x: 3c" and a["other"]["Version"] == "v1.9.4"
    assert rec["declared_generated"] and "a1111" in rec["declared_by"][0]
    assert any("512x768" in h for h in rec["resize_hints"])  # stated size differs from the pixels


def test_long_prompt_is_capped_and_read_beyond_the_decoder_cap(tmp_path, rgb):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", "x" * 5000 + "\nSteps: 20, Seed: 1", zip=True)
    path = tmp_path / "long.png"
    path.write_bytes(_png_bytes(rgb, info))
    a = _record(path)["generation"]["a1111"]
    assert len(a["prompt"]) == 1000 and a["steps"] == 20  # the file is re-read, not the 1000-char meta copy


def test_comfyui_prompt_and_workflow(tmp_path, rgb):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 25, "cfg": 7.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["4", 1]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}},
    }
    workflow = {"nodes": [{"id": 4, "type": "CheckpointLoaderSimple",
                           "widgets_values": ["v1-5-pruned-emaonly.safetensors"]},
                          {"id": 3, "type": "KSampler", "widgets_values": [42, "fixed", 25]}], "links": []}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    info.add_text("workflow", json.dumps(workflow))
    path = tmp_path / "comfy.png"
    path.write_bytes(_png_bytes(rgb, info))
    gen = _record(path)["generation"]
    assert gen["tools"] == ["comfyui"]
    c = gen["comfyui"]
    assert c["prompt_graph"] and c["n_nodes"] == 5 and c["class_types"]["CLIPTextEncode"] == 2
    assert c["checkpoints"] == ["v1-5-pruned-emaonly.safetensors"]
    assert c["samplers"][0]["seed"] == 42 and c["samplers"][0]["steps"] == 25
    assert "a red fox in snow" in c["prompts"]
    assert c["workflow"] and c["workflow_n_nodes"] == 2


def test_novelai_and_invokeai(tmp_path, rgb):
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "NovelAI")
    info.add_text("Source", "NovelAI Diffusion V3 4F7A1B2C")
    info.add_text("Comment", json.dumps({"prompt": "1girl, scenery", "uc": "lowres", "steps": 28,
                                         "sampler": "k_euler_ancestral", "seed": 7, "scale": 5.0}))
    path = tmp_path / "nai.png"
    path.write_bytes(_png_bytes(rgb, info))
    n = _record(path)["generation"]["novelai"]
    assert (n["prompt"], n["negative_prompt"], n["steps"], n["seed"], n["cfg_scale"]) == (
        "1girl, scenery", "lowres", 28, 7, 5.0)
    assert n["model"].startswith("NovelAI Diffusion V3")

    info = PngImagePlugin.PngInfo()
    info.add_text("invokeai_metadata", json.dumps({"positive_prompt": "a castle", "negative_prompt": "",
                                                   "seed": 99, "steps": 30, "cfg_scale": 7.5, "scheduler": "euler",
                                                   "model": {"name": "sdxl-base", "base": "sdxl"}}))
    path = tmp_path / "invoke.png"
    path.write_bytes(_png_bytes(rgb, info))
    inv = _record(path)["generation"]["invokeai"]
    assert (inv["prompt"], inv["seed"], inv["steps"], inv["model"]) == ("a castle", 99, 30, "sdxl-base")


def test_a1111_in_jpeg_exif_usercomment(tmp_path, rgb):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    path = tmp_path / "sd.jpg"
    path.write_bytes(_jpeg_bytes(rgb, quality=95, exif=exif))
    gen = _record(path)["generation"]
    assert gen["tools"] == ["a1111"] and gen["a1111"]["seed"] == 3141592653
    assert gen["a1111"]["source"] == "EXIF UserComment"


def test_parse_a1111_rejects_plain_text():
    assert parse_a1111("just a caption") is None
    assert parse_a1111("Steps: 12")["steps"] == 12


# --- JPEG quality -----------------------------------------------------------------------


@pytest.mark.parametrize("quality", [90, 50])
def test_jpeg_quality_of_ijg_tables(tmp_path, rgb, quality):
    path = tmp_path / f"q{quality}.jpg"
    path.write_bytes(_jpeg_bytes(rgb, quality=quality))
    jq = _record(path)["jpeg_quality"]
    assert abs(jq["estimate"] - quality) <= 1 and jq["ijg_standard"] and jq["tables"] == "ijg"
    assert jq["subsampling"] == "4:2:0"


def test_jpeg_quality_of_custom_tables(tmp_path, rgb):
    lum = [max(1, round(v * 0.37) + (i % 3 == 0)) for i, v in enumerate(range(8, 72))]
    path = tmp_path / "custom.jpg"
    path.write_bytes(_jpeg_bytes(rgb, qtables=[lum, lum[::-1]]))
    jq = _record(path)["jpeg_quality"]
    assert not jq["ijg_standard"] and jq["tables"] == "custom" and 1 <= jq["estimate"] <= 100
    assert estimate_jpeg_quality({"0": [1] * 64, "1": [1] * 64})["estimate"] == 100
    assert estimate_jpeg_quality({}) is None


# --- C2PA -------------------------------------------------------------------------------


def test_c2pa_in_jpeg_app11(tmp_path, rgb):
    store = c2pa_store()
    half = len(store) // 2  # two APP11 segments; the second repeats the superbox header
    segments = (_app11(store[:half], seq=1), _app11(store[:8] + store[half:], seq=2))
    path = tmp_path / "c2pa.jpg"
    path.write_bytes(_after_soi(_jpeg_bytes(rgb, quality=90), *segments))
    rec = _record(path)
    c = rec["c2pa"]
    assert c["present"] and c["where"].startswith("JPEG APP11") and c["validated"] is False
    assert c["claim_generator"] == "TestGen/1.0 c2pa-rs/0.30"
    assert c["digital_source_type"] == ["trainedAlgorithmicMedia"]
    assert c["software_agents"] == ["Example Diffusion 3"] and "c2pa.created" in c["actions"]
    assert c["n_manifests"] == 1 and c["bytes"] == len(store)
    assert rec["declared_generated"] and any("C2PA" in d for d in rec["declared_by"])
    assert rec["jpeg_quality"]["estimate"] == 90


def test_c2pa_in_png_cabx(tmp_path, rgb):
    path = tmp_path / "c2pa.png"
    path.write_bytes(_before_iend(_png_bytes(rgb), _png_chunk(b"caBX", c2pa_store())))
    c = _record(path)["c2pa"]
    assert c["present"] and c["where"] == "PNG caBX chunk" and c["claim_generator"].startswith("TestGen")


def test_no_c2pa_in_a_plain_file(tmp_path, rgb):
    path = tmp_path / "plain.png"
    path.write_bytes(_png_bytes(rgb))
    rec = _record(path)
    assert rec["c2pa"] == {"present": False} and not rec["declared_generated"] and not rec["generation"]["found"]


# --- EXIF and XMP ------------------------------------------------------------------------


def test_exif_camera_fields_but_never_gps_serials_or_names(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS 5D Mark IV", "Adobe Photoshop 25.0"
    exif[0x013B] = "Jane Q. Photographer"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.9)}
    sub = exif.get_ifd(0x8769)
    sub[0xA431], sub[0xA430] = "SN0123456789", "Owner McOwnerface"
    sub[0xA002], sub[0xA003] = 4000, 3000
    path = tmp_path / "camera.jpg"
    path.write_bytes(_jpeg_bytes(rgb, quality=92, exif=exif))
    rec = _record(path)
    ex = rec["exif"]
    assert ex["present"] and (ex["make"], ex["model"], ex["software"]) == (
        "Canon", "Canon EOS 5D Mark IV", "Adobe Photoshop 25.0")
    assert {"GPSInfo", "Artist", "BodySerialNumber", "CameraOwnerName"} <= set(ex["withheld"])
    text = json.dumps(rec)
    for secret in ("SN0123456789", "Jane", "McOwnerface", "52.0", "31.0", "12.5", "36.9"):
        assert secret not in text
    assert any("4000x3000" in h for h in rec["resize_hints"])
    assert not rec["declared_generated"]


def test_xmp_digital_source_type_in_jpeg_and_png(tmp_path, rgb):
    packet = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:ColorMode="3" '
        f'xmp:CreatorTool="Adobe Firefly" Iptc4xmpExt:DigitalSourceType="{SOURCE_TYPE}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )
    path = tmp_path / "xmp.jpg"
    xmp_seg = _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode())
    path.write_bytes(_after_soi(_jpeg_bytes(rgb, quality=85), xmp_seg))
    rec = _record(path)
    x = rec["xmp"]
    assert x["present"] and x["creator_tool"] == "Adobe Firefly" and x["photoshop"]["ColorMode"] == "3"
    assert x["digital_source_type"] == ["trainedAlgorithmicMedia"]
    assert rec["declared_generated"] and any("XMP DigitalSourceType" in d for d in rec["declared_by"])

    element = packet.replace(f' Iptc4xmpExt:DigitalSourceType="{SOURCE_TYPE}"/>',
                             f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{SOURCE_TYPE}"/></rdf:Description>')
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", element)
    path = tmp_path / "xmp.png"
    path.write_bytes(_png_bytes(rgb, info))
    assert _record(path)["xmp"]["digital_source_type"] == ["trainedAlgorithmicMedia"]


def test_webp_and_tiff_metadata(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x013B] = "Nikon", "D850", "Someone Private"
    path = tmp_path / "meta.webp"
    Image.fromarray(rgb).save(path, "WEBP", exif=exif,
                              xmp=b'<x:xmpmeta><r xmp:CreatorTool="Midjourney v6"/></x:xmpmeta>')
    rec = _record(path)
    assert rec["exif"]["source"] == "WebP EXIF chunk" and rec["exif"]["model"] == "D850"
    assert rec["xmp"]["creator_tool"] == "Midjourney v6"
    assert rec["generation"]["generic"]["software"] == ["Midjourney v6"] and rec["declared_generated"]
    path = tmp_path / "meta.tif"
    Image.fromarray(rgb).save(path, exif=exif)
    rec = _record(path)
    assert rec["exif"]["make"] == "Nikon" and rec["exif"]["withheld"] == ["Artist"]
    assert "Someone" not in json.dumps(rec)


# --- bad input --------------------------------------------------------------------------


def _rich_jpeg(rgb) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + A1111.encode()
    xmp = _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><a:CreatorTool>t</a:CreatorTool></x:xmpmeta>")
    return _after_soi(_jpeg_bytes(rgb, quality=80, exif=exif), xmp, _app11(c2pa_store()))


def _rich_png(rgb) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    info.add_itxt("prompt", json.dumps({"1": {"class_type": "KSampler", "inputs": {}}}), zip=True)
    return _before_iend(_png_bytes(rgb, info), _png_chunk(b"caBX", c2pa_store()))


def _check_no_crash(path, fmt: str, rgb) -> dict:
    rec = provenance(ImageData(pixels=rgb.copy(), meta={"format": fmt, "exif": True}, path=str(path)))
    json.dumps(rec, allow_nan=False)
    return rec


def test_truncated_and_malformed_files_do_not_crash(tmp_path, rgb):
    jpeg, png = _rich_jpeg(rgb), _rich_png(rgb)
    webp = io.BytesIO()
    Image.fromarray(rgb).save(webp, "WEBP", exif=Image.Exif().tobytes())
    cases = {
        "trunc.jpg": jpeg[:300], "trunc2.jpg": jpeg[:len(jpeg) // 3], "trunc.png": png[:200],
        "trunc2.png": png[:len(png) - 30], "trunc.webp": webp.getvalue()[:40], "empty.jpg": b"",
        "junk.png": b"\x89PNG\r\n\x1a\n" + b"\xff\xff\xff\xffzTXt" + b"\x00" * 20,
        "zero_len.jpg": b"\xff\xd8\xff\xe1\x00\x00rest",
        "bad_exif.jpg": _after_soi(_jpeg_bytes(rgb), _segment(0xE1, b"Exif\x00\x00MM\x00*" + b"\xff" * 44)),
        "bad_dqt.jpg": b"\xff\xd8" + _segment(0xDB, b"\x20\x01\x02") + b"\xff\xda\x00\x02",
        "bad_ztxt.png": _before_iend(png, _png_chunk(b"zTXt", b"parameters\x00\x00not zlib")),
        "bad_app11.jpg": _after_soi(jpeg, _app11(b"jumb" + b"\xff" * 30)),
        "bad_cbor.png": _before_iend(_png_bytes(rgb), _png_chunk(b"caBX", b"jumbc2pa\x00oclaim_generator\x79\xff\xff")),
        "not_image.tif": b"II*\x00" + b"\x00" * 10,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF"}[name.rsplit(".", 1)[1]]
        rec = _check_no_crash(path, fmt, rgb)
        if name.startswith(("trunc", "zero_len", "junk")):
            assert rec["errors"], name
    assert _check_no_crash(tmp_path / "missing.png", "PNG", rgb)["errors"]
    rec = _check_no_crash(tmp_path / "bad_ztxt.png", "PNG", rgb)  # one bad chunk: the rest is still read
    assert rec["generation"]["a1111"]["steps"] == 30 and rec["c2pa"]["present"]
    assert any("zTXt" in e for e in rec["errors"])


def test_random_corruption_does_not_crash(tmp_path, rgb):
    rng = np.random.default_rng(0)
    for kind, data in (("JPEG", _rich_jpeg(rgb)), ("PNG", _rich_png(rgb))):
        head = min(len(data), 4000)
        for i in range(40):
            buf = bytearray(data)
            for pos in rng.integers(0, head, size=int(rng.integers(1, 6))):
                buf[pos] = int(rng.integers(0, 256))
            path = tmp_path / f"fuzz{i}.{kind.lower()}"
            path.write_bytes(bytes(buf[: int(rng.integers(head // 2, len(buf) + 1))]))
            _check_no_crash(path, kind, rgb)


def test_in_memory_image_without_path(rgb):
    rec = provenance(ImageData(pixels=rgb.copy()))
    json.dumps(rec, allow_nan=False)
    assert rec["format"] is None and rec["size"] == [128, 96] and rec["bit_depth"] == 8
    assert rec["exif"] == {"present": False} and rec["jpeg_quality"] is None and not rec["generation"]["found"]
    warnings = input_warnings(rec, {"formats": ["PNG"], "min_side": 256})
    assert warnings == ["image 128x96 is smaller than the 256 px crop the model expects"]

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    loaded = load_image(_png_bytes(rgb, info))  # decoded from bytes: meta only, no file to re-read
    rec = provenance(loaded)
    assert loaded.path is None and rec["format"] == "PNG" and rec["generation"]["a1111"]["steps"] == 30


# --- warnings ---------------------------------------------------------------------------


def test_warnings_for_webp_and_small_images(tmp_path, rgb):
    path = tmp_path / "img.webp"
    Image.fromarray(rgb).save(path, "WEBP", quality=80)
    rec = _record(path)
    assert rec["format"] == "WEBP"
    warnings = input_warnings(rec, {"formats": ["PNG", "JPEG"], "min_side": 224})
    assert any(w.startswith("WebP input: the model never saw WebP") and "SAFE" in w for w in warnings)
    assert any("128x96 is smaller than the 224 px crop" in w for w in warnings)


def test_warnings_for_jpeg_quality_bits_frames_and_resizing(tmp_path, rgb):
    path = tmp_path / "q45.jpg"
    path.write_bytes(_jpeg_bytes(rgb, quality=45))
    rec = _record(path)
    trained = {"formats": ["JPEG", "PNG"], "jpeg_quality_range": [70, 100], "note": "trained on ProGAN"}
    warnings = input_warnings(rec, trained)
    assert warnings[0] == "JPEG quality 45 is below the range the model was trained on (70-100)"
    assert warnings[-1] == "model note: trained on ProGAN"
    assert input_warnings(rec, {"formats": ["PNG"]})[0].startswith("JPEG input: the model never saw JPEG")

    synthetic = {"format": "PNG", "size": [5000, 4000], "bit_depth": 16, "n_frames": 3,
                 "resampling": {"resampled": True, "strength": 0.42, "period": 1.5, "method": "test"},
                 "resize_hints": ["EXIF records 10x10"]}
    warnings = input_warnings(synthetic, {"max_side": 1024})
    assert "16-bit image reduced to 8 bits (the model saw 8-bit images)" in warnings
    assert any("larger than the 1024 px" in w for w in warnings)
    assert any(w.startswith("3 frames") for w in warnings)
    assert ("signs of resizing: periodic resampling traces, period 1.5 px, strength 0.42 "
            "(resampling weakens the traces detectors rely on)") in warnings
    assert "signs of resizing: EXIF records 10x10" in warnings
    unresampled = {**synthetic, "resampling": {"resampled": False, "strength": 0.01, "period": None, "method": "test"}}
    assert not any("periodic resampling" in w for w in input_warnings(unresampled, {}))


def test_no_warnings_when_input_fits(tmp_path, rgb):
    path = tmp_path / "fits.png"
    path.write_bytes(_png_bytes(rgb))
    rec = _record(path)
    assert input_warnings(rec, {"formats": ["PNG"], "min_side": 64, "max_side": 4096}) == []
    assert input_warnings(rec, {}) == []
