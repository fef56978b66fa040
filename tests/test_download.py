"""The real download code against a real HTTP server on 127.0.0.1 serving archives built here."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import struct
import tarfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from PIL import Image

from apl import cli
from apl.config import load
from apl.data.download import (CHUNK, ArchiveError, ChecksumError, DownloadError, Lock, MissingDataError, archive_kind,
                               download, ensure_dataset, extract, fetch)
from apl.data.prepare import split_rows
from apl.io import list_images

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
FAST = {"attempts": 3, "timeout": 5.0, "retry_wait": 0.0}


# ----------------------------------------------------------------------------------- test server


@dataclass
class Route:
    body: bytes
    drops: int = 0              # this many requests are cut after `drop_after` bytes of the body
    drop_after: int = 0
    ranges: bool = True         # honour Range requests
    content_type: str = "application/octet-stream"
    status: int = 200

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class Server:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.log.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path)
                if route is None or route.status != 200:
                    self.send_error(404 if route is None else route.status)
                    return
                body, start = route.body, 0
                wanted = self.headers.get("Range")
                if wanted and route.ranges and self.headers.get("If-Range", route.etag) == route.etag:
                    start = int(wanted.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", route.content_type)
                self.send_header("ETag", route.etag)
                self.end_headers()
                if route.drops:
                    route.drops -= 1
                    self.wfile.write(body[start:start + route.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[dict]:
        return [headers for logged, headers in self.log if logged == path]


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: what an offline machine or a dead host looks like."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -------------------------------------------------------------------------------------- archives


def png_bytes(value=128, size=(12, 8), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as handle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_rar(members: dict[str, bytes], method: int = 0x30) -> bytes:
    """A RAR 4 archive written from the format's header layout; method 0x30 stores, 0x33 claims compression."""
    def block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
        header = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + data

    dos_time = ((2020 - 1980) << 25) | (1 << 21) | (1 << 16)
    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, bytes(6))
    for name, data in members.items():
        raw = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time, 20, method, len(raw),
                           0o100644) + raw
        out += block(0x74, 0x8000, body, data)
    return out + block(0x7B, 0x4000, b"")


def big_zip(seed=0, size=300_000) -> bytes:
    """A zip larger than a few download chunks (random, stored), so a transfer can be cut part-way."""
    import random
    return make_zip({"image/out_of_focus0001.png": png_bytes(), "image/noise.bin": random.Random(seed).randbytes(size)})


def kept_after(cut: int) -> int:
    """Bytes a transfer cut after `cut` bytes leaves on disk: the chunks that arrived whole."""
    return cut - cut % CHUNK


def image_zip(count=3) -> bytes:
    return make_zip({f"image/out_of_focus{i:04d}.png": png_bytes(10 * i) for i in range(1, count + 1)})


def spec(name, urls, provides=("image",), sha256=None, page="https://example.org/page"):
    return {"name": name, "page": page, "provides": list(provides), "urls": list(urls), "sha256": sha256}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ tests


def test_good_download_is_verified_extracted_and_recorded_once(server, tmp_path, capsys):
    body = image_zip()
    server.routes["/cuhk.zip"] = Route(body)
    lock = Lock(tmp_path / "lock.yaml")
    found = ensure_dataset("cuhk", [spec("BlurDatasetImage.zip", [server.url("/cuhk.zip")])], ["image"],
                           tmp_path / "raw", lock, **FAST)
    assert found["image"] == tmp_path / "raw" / "cuhk" / "BlurDatasetImage" / "image"
    assert len(list_images(found["image"])) == 3
    recorded = yaml.safe_load((tmp_path / "lock.yaml").read_text())["files"]["cuhk/BlurDatasetImage.zip"]
    assert recorded["sha256"] == sha(body) and recorded["bytes"] == len(body)
    assert recorded["origin"] == server.url("/cuhk.zip")
    assert "BlurDatasetImage.zip" in capsys.readouterr().err          # tqdm's progress bar
    leftovers = [p.name for p in (tmp_path / "raw" / "cuhk").iterdir()]
    assert sorted(leftovers) == ["BlurDatasetImage", "BlurDatasetImage.zip"]   # no .part, no .partial
    # A second run finds the folder and asks the server nothing.
    ensure_dataset("cuhk", [spec("BlurDatasetImage.zip", [server.url("/cuhk.zip")])], ["image"],
                   tmp_path / "raw", Lock(tmp_path / "lock.yaml"), **FAST)
    assert len(server.requests_for("/cuhk.zip")) == 1


def test_mirrors_are_tried_in_order_past_a_404_and_a_wrong_checksum(server, tmp_path):
    good, bad = image_zip(), image_zip(2)
    server.routes["/bad.zip"] = Route(bad)
    server.routes["/good.zip"] = Route(good)
    urls = [server.url("/gone.zip"), server.url("/bad.zip"), server.url("/good.zip")]
    lock = Lock(tmp_path / "lock.yaml")
    found = ensure_dataset("cuhk", [spec("a.zip", urls, sha256=sha(good))], ["image"], tmp_path / "raw", lock, **FAST)
    assert len(list_images(found["image"])) == 3
    assert [path for path, _ in server.log] == ["/gone.zip", "/bad.zip", "/good.zip"]
    assert not (tmp_path / "lock.yaml").exists()        # a published checksum is not copied into the lock


def test_wrong_checksum_and_404_end_in_instructions_and_leave_nothing(server, tmp_path):
    server.routes["/bad.zip"] = Route(image_zip(2))
    expected = "0" * 64
    urls = [server.url("/gone.zip"), server.url("/bad.zip")]
    with pytest.raises(MissingDataError) as err:
        ensure_dataset("cuhk", [spec("BlurDatasetImage.zip", urls, sha256=expected, page="http://cuhk.example/data")],
                       ["image"], tmp_path / "raw", Lock(tmp_path / "lock.yaml"), **FAST)
    text = str(err.value)
    root = (tmp_path / "raw" / "cuhk").resolve()
    assert "visit http://cuhk.example/data" in text and "download BlurDatasetImage.zip" in text
    assert f"put it at {root / 'BlurDatasetImage.zip'}" in text
    assert "HTTP 404" in text and f"expected {expected}, got {sha(image_zip(2))}" in text
    assert list(root.iterdir()) == [] and not (tmp_path / "lock.yaml").exists()


def test_share_page_and_offline_mirror_end_in_instructions(server, tmp_path):
    server.routes["/share"] = Route(b"<!DOCTYPE html><html>sign in</html>", content_type="text/html; charset=utf-8")
    files = [spec("dd_dp_dataset_canon.zip", [server.url("/share"), closed_port_url("/x.zip")],
                  provides=("test_c/source", "test_c/target"), page="https://ln2.sync.com/dl/share")]
    with pytest.raises(MissingDataError) as err:
        ensure_dataset("dpdd", files, ["test_c/source", "test_c/target"], tmp_path / "raw",
                       Lock(tmp_path / "lock.yaml"), **FAST)
    text = str(err.value)
    assert "web page" in text and "cannot connect" in text and "ln2.sync.com" in text
    assert str((tmp_path / "raw" / "dpdd" / "dd_dp_dataset_canon.zip").resolve()) in text
    assert "so that .../test_c/source, .../test_c/target exist" in text


def test_nothing_is_downloaded_that_a_file_placed_by_hand_will_bring(server, tmp_path):
    server.routes["/CUHK.rar"] = Route(make_rar({"CUHK/xu100-source/1.png": png_bytes(),
                                                 "CUHK/xu100-gt/1.png": png_bytes(255, mode="L")}))
    files = [spec(None, [], provides=("1204source", "xu100-source", "xu100-gt"), page="https://pan.baidu.com/s/x"),
             spec("CUHK.rar", [server.url("/CUHK.rar")], provides=("xu100-source", "xu100-gt"))]
    with pytest.raises(MissingDataError) as err:
        ensure_dataset("packed", files, ["1204source", "xu100-source", "xu100-gt"], tmp_path / "raw",
                       Lock(tmp_path / "lock.yaml"), **FAST)
    assert server.log == [] and "CUHK.rar" not in str(err.value)     # the packed archive holds xu100 too
    assert "so that .../1204source, .../xu100-source, .../xu100-gt exist" in str(err.value)
    found = ensure_dataset("packed", files, ["xu100-source", "xu100-gt"], tmp_path / "raw",
                           Lock(tmp_path / "lock.yaml"), **FAST)
    assert found["xu100-gt"] == tmp_path / "raw" / "packed" / "CUHK" / "CUHK" / "xu100-gt"
    assert len(server.log) == 1


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    body = big_zip()
    server.routes["/big.zip"] = Route(body, drops=1, drop_after=150_000)
    observed = fetch(server.url("/big.zip"), tmp_path / "big.zip", sha(body), progress=False, **FAST)
    assert observed == sha(body) and (tmp_path / "big.zip").read_bytes() == body
    first, second = server.requests_for("/big.zip")
    assert "Range" not in first and kept_after(150_000) > 0
    assert second["Range"] == f"bytes={kept_after(150_000)}-" and second["If-Range"] == Route(body).etag
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip"]


def test_interrupted_download_is_kept_and_resumed_by_the_next_run(server, tmp_path):
    body, kept = big_zip(), kept_after(150_000)
    server.routes["/big.zip"] = Route(body, drops=1, drop_after=150_000)
    with pytest.raises(DownloadError, match=f"{kept} bytes are kept"):
        fetch(server.url("/big.zip"), tmp_path / "big.zip", progress=False, **{**FAST, "attempts": 1})
    assert not (tmp_path / "big.zip").exists()
    (part,) = tmp_path.glob("big.zip.*.part")
    assert part.stat().st_size == kept
    fetch(server.url("/big.zip"), tmp_path / "big.zip", progress=False, **FAST)
    assert (tmp_path / "big.zip").read_bytes() == body
    assert server.requests_for("/big.zip")[-1]["Range"] == f"bytes={kept}-"
    assert not part.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.zip"]


def test_server_without_ranges_or_with_a_changed_file_restarts(server, tmp_path):
    body = big_zip()
    server.routes["/big.zip"] = Route(body, drops=1, drop_after=150_000, ranges=False)
    fetch(server.url("/big.zip"), tmp_path / "big.zip", sha(body), progress=False, **FAST)
    assert (tmp_path / "big.zip").read_bytes() == body
    assert server.requests_for("/big.zip")[-1]["Range"] == f"bytes={kept_after(150_000)}-"   # asked, got 200
    # A partial download of an older version: If-Range no longer matches, the server sends it all again.
    newer = big_zip(seed=1)
    server.routes["/v.zip"] = Route(body, drops=1, drop_after=150_000)
    with pytest.raises(DownloadError):
        fetch(server.url("/v.zip"), tmp_path / "v.zip", progress=False, **{**FAST, "attempts": 1})
    server.routes["/v.zip"] = Route(newer)
    fetch(server.url("/v.zip"), tmp_path / "v.zip", sha(newer), progress=False, **FAST)
    assert (tmp_path / "v.zip").read_bytes() == newer


def test_recorded_checksum_is_enforced_and_never_overwritten(server, tmp_path):
    original, changed = image_zip(3), image_zip(4)
    server.routes["/cuhk.zip"] = Route(original)
    raw, lock_path = tmp_path / "raw", tmp_path / "lock.yaml"
    files = [spec("BlurDatasetImage.zip", [server.url("/cuhk.zip")])]
    ensure_dataset("cuhk", files, ["image"], raw, Lock(lock_path), **FAST)
    locked = lock_path.read_text()
    # The publisher's file changes: a fresh download no longer matches the lock and is refused.
    shutil.rmtree(raw)
    server.routes["/cuhk.zip"] = Route(changed)
    with pytest.raises(MissingDataError, match=f"expected {sha(original)}, got {sha(changed)}"):
        ensure_dataset("cuhk", files, ["image"], raw, Lock(lock_path), **FAST)
    assert not (raw / "cuhk" / "BlurDatasetImage.zip").exists() and lock_path.read_text() == locked
    # A copy placed by hand that differs from the lock is an error too, and the copy is left in place.
    (raw / "cuhk" / "BlurDatasetImage.zip").write_bytes(changed)
    with pytest.raises(ChecksumError) as err:
        ensure_dataset("cuhk", files, ["image"], raw, Lock(lock_path), **FAST)
    assert str(raw / "cuhk" / "BlurDatasetImage.zip") in str(err.value) and str(lock_path) in str(err.value)
    assert (raw / "cuhk" / "BlurDatasetImage.zip").read_bytes() == changed and lock_path.read_text() == locked
    assert not (raw / "cuhk" / "BlurDatasetImage").exists()


def test_placed_folders_and_archives_are_used_as_they_are(server, tmp_path):
    raw, lock_path = tmp_path / "raw", tmp_path / "lock.yaml"
    files = [spec("BlurDatasetImage.zip", [server.url("/never.zip")], provides=("image", "gt"))]
    # An extracted folder, nested one level down: used without asking the server anything.
    (raw / "cuhk" / "mine" / "image").mkdir(parents=True)
    (raw / "cuhk" / "mine" / "image" / "a.png").write_bytes(png_bytes())
    # An archive under a name of the user's choosing provides the other folder (macOS's metadata ignored).
    (raw / "cuhk" / "masks-copy.tar.gz").write_bytes(make_tar_gz({"gt/a.png": png_bytes(255, mode="L"),
                                                                  "__MACOSX/gt/._a.png": b"\x00\x05"}))
    found = ensure_dataset("cuhk", files, ["image", "gt"], raw, Lock(lock_path), **FAST)
    assert found == {"image": raw / "cuhk" / "mine" / "image", "gt": raw / "cuhk" / "masks-copy" / "gt"}
    assert server.log == []
    entry = yaml.safe_load(lock_path.read_text())["files"]["cuhk/masks-copy.tar.gz"]
    assert entry["origin"].startswith("found in")


def test_truncated_archives_are_named_and_leave_nothing_extracted(tmp_path):
    lock_path = tmp_path / "lock.yaml"
    for name, data in (("BlurDatasetImage.zip", image_zip(20)), ("gt.tar.gz", make_tar_gz({"gt/a.png": png_bytes()}))):
        root = tmp_path / name.split(".")[0]
        root.mkdir()
        (root / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ArchiveError) as err:
            ensure_dataset(root.name, [spec(name, [])], ["image"], tmp_path, Lock(lock_path))
        assert str(root / name) in str(err.value) and "truncated or corrupt" in str(err.value)
        assert sorted(p.name for p in root.iterdir()) == [name]     # no folder, no .partial
    assert not lock_path.exists()                                  # a broken copy is never recorded


def test_a_web_page_saved_as_an_archive_is_named(tmp_path):
    page = tmp_path / "dd_dp_dataset_canon.zip"
    page.write_text("<!DOCTYPE html><html><body>sync.com</body></html>")
    with pytest.raises(ArchiveError, match="web page saved instead of the file"):
        archive_kind(page)


def test_rar_archives_extract_and_a_missing_rar_tool_is_explained(tmp_path, monkeypatch):
    stored = tmp_path / "CUHK.rar"
    stored.write_bytes(make_rar({"CUHK/xu100-source/1.png": png_bytes(), "CUHK/xu100-gt/1.png": png_bytes(255, mode="L")}))
    extract(stored, tmp_path / "CUHK")
    assert (tmp_path / "CUHK" / "CUHK" / "xu100-gt" / "1.png").read_bytes() == png_bytes(255, mode="L")
    compressed = tmp_path / "DUT.rar"
    compressed.write_bytes(make_rar({"DUT/dut500-source/1.png": png_bytes()}, method=0x33))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))           # no unrar, unar, 7z or bsdtar
    import rarfile
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)
    with pytest.raises(ArchiveError, match="unrar, unar, 7z") as err:
        extract(compressed, tmp_path / "DUT")
    assert str(compressed) in str(err.value)
    assert not (tmp_path / "DUT").exists() and not (tmp_path / ".DUT.partial").exists()


def test_paper_config_offline_names_every_page_file_and_path(tmp_path):
    config = load([ROOT / "config" / "config.yaml"])
    for files in config["data"]["datasets"].values():
        for entry in files:
            entry["urls"] = [closed_port_url("/" + (entry["name"] or "x.zip"))] if entry["urls"] else []
    config["data"]["sets"] = {"train": "original", "cuhk": "original", "dut": "original", "dp": "dpdd", "fullclear": "packed"}
    with pytest.raises(MissingDataError) as err:
        download(config, raw_dir=tmp_path / "raw", lock_file=tmp_path / "lock.yaml", progress=False, **FAST)
    text = str(err.value)
    raw = (tmp_path / "raw").resolve()
    for line in ("visit https://ln2.sync.com/dl/c45358c50", f"put it at {raw / 'dpdd' / 'dd_dp_dataset_canon.zip'}",
                 f"put it at {raw / 'cuhk' / 'BlurDatasetImage.zip'}", "cannot connect", "ice.dlut.edu.cn",
                 f"- packed: no folder FC below {raw / 'packed'}/ (needed for fullclear (packed))",
                 "visit https://pan.baidu.com/s/1_3Z7w9IrlqOU25QbVdhytQ"):
        assert line in text, line
    assert "1204source" not in text and "xu100" not in text     # only what the chosen sets need


def test_download_then_prepare_from_a_local_mirror(server, tmp_path):
    """Original layouts for CUHK (zip), DUT (tar.gz) and DPDD (zip), the packed FC (rar), through the CLI."""
    test_names = [Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")]
    half = Image.new("L", (12, 8), 0)
    half.paste(255, (0, 0, 6, 8))
    buffer = io.BytesIO()
    half.save(buffer, format="PNG")
    cuhk_images = {f"image/{p.name}": p.read_bytes() for p in (FIXTURES / "cuhk_original" / "image").iterdir()}
    cuhk_images.update({f"image/{stem}.png": png_bytes() for stem in test_names})
    cuhk_gt = {f"gt/{p.name}": p.read_bytes() for p in (FIXTURES / "cuhk_original" / "gt").iterdir()}
    cuhk_gt.update({f"gt/{stem}.png": buffer.getvalue() for stem in test_names})
    dut = {}
    for i in range(3):
        dut[f"DUT/DUT600S_Training/t{i}.png"] = png_bytes()
        dut[f"DUT/DUT500S-Testing/{i}.png"] = png_bytes()
        dut[f"DUT/DUT500GT-Testing/{i}.png"] = png_bytes(255, mode="L")
    dpdd = {f"dd_dp_dataset_png/test_c/{column}/{row[column]}": png_bytes(size=(6, 4))
            for row in split_rows("dpdd_test_pairs.csv") for column in ("source", "target")}
    fc = {f"train_data/FCFB/FC/{i}.png": png_bytes(20 * i) for i in range(4)}
    server.routes.update({"/img.zip": Route(make_zip(cuhk_images)), "/gt.zip": Route(make_zip(cuhk_gt)),
                          "/dut.tgz": Route(make_tar_gz(dut)), "/dpdd.zip": Route(make_zip(dpdd)),
                          "/sg.rar": Route(make_rar(fc))})
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["data"].update(
        raw_dir=str(tmp_path / "raw"), lock_file=str(tmp_path / "datasets.lock.yaml"), allow_subset=True,
        sets={"train": "original", "cuhk": "original", "dut": "original", "dp": "dpdd", "fullclear": "packed"},
        datasets={"cuhk": [spec("BlurDatasetImage.zip", [server.url("/img.zip")]),
                           spec("BlurDatasetGT.zip", [server.url("/gt.zip")], provides=["gt"])],
                  "dut": [spec("DUT.tar.gz", [server.url("/dut.tgz")],
                               provides=["DUT600S_Training", "DUT500S-Testing", "DUT500GT-Testing"])],
                  "dpdd": [spec("dd_dp_dataset_canon.zip", [server.url("/dpdd.zip")],
                                provides=["test_c/source", "test_c/target"])],
                  "packed": [spec("SG.rar", [server.url("/sg.rar")], provides=["FC"])]})
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    assert cli.main(["download", "-c", str(config_file), "--out", str(tmp_path / "raw.json")]) == 0
    lock = yaml.safe_load((tmp_path / "datasets.lock.yaml").read_text())["files"]
    assert set(lock) == {"cuhk/BlurDatasetImage.zip", "cuhk/BlurDatasetGT.zip", "dut/DUT.tar.gz",
                         "dpdd/dd_dp_dataset_canon.zip", "packed/SG.rar"}
    assert cli.main(["prepare", "-c", str(config_file), "--raw", str(tmp_path / "raw"),
                     "--out", str(tmp_path / "datasets")]) == 0
    manifest = json.loads((tmp_path / "datasets" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 6 + 3, "fullclear": 4, "cuhk": 100, "dut": 3, "dp": 76}
    assert manifest["train_parts"] == {"train from CUHK": 6, "train from DUT": 3}
    # A second download run finds everything in place and asks the server nothing more.
    before = len(server.log)
    assert cli.main(["download", "-c", str(config_file), "--out", str(tmp_path / "raw.json")]) == 0
    assert len(server.log) == before
