"""Files the pipeline writes atomically get the mode of any new file: 0666 less the user's umask."""
import os
import stat

import numpy as np
import pytest

from apl.data.cache import save_npz
from apl.io import atomic_path, write_image, write_json, write_text
from apl.train.checkpoint import atomic_save


@pytest.fixture
def umask():
    """Set the process umask for one test and put the previous one back."""
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


WRITERS = {
    "json": ("result.json", lambda path: write_json(path, {"a": 1})),
    "text": ("REPORT.md", lambda path: write_text(path, "# report\n")),
    "image": ("map.png", lambda path: write_image(path, np.zeros((4, 4), np.float32))),
    "cache": ("train.npz", lambda path: save_npz(path, images=np.zeros((2, 2), np.uint8))),
    "checkpoint": ("weights.pt", lambda path: atomic_save({"x": 1}, path)),
}


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_atomic_writes_follow_the_umask(tmp_path, umask, kind, mask, expected):
    name, write = WRITERS[kind]
    umask(mask)
    write(tmp_path / "out" / name)
    assert mode(tmp_path / "out" / name) == expected
    assert os.listdir(tmp_path / "out") == [name]   # no temporary file left beside it


def test_overwriting_takes_the_umask_of_the_new_write(tmp_path, umask):
    target = tmp_path / "a.json"
    umask(0o077)
    write_json(target, {"v": 1})
    umask(0o022)
    write_json(target, {"v": 2})
    assert mode(target) == 0o644 and target.read_text().strip().endswith("}")


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_16bit_rgb_png_is_read_by_its_high_byte(tmp_path):
    """DEVIATIONS.md (DP images): Pillow opens a 16-bit RGB PNG as 8-bit RGB keeping value >> 8."""
    import struct
    import zlib

    from apl.io import read_image
    values = np.array([[[0, 255, 256], [257, 32767, 32768], [65535, 128, 383]]], dtype=">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in values)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 3, 1, 16, 2, 0, 0, 0)   # 3x1 pixels, 16 bits, RGB
    path = tmp_path / "rgb16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    assert read_image(path).tolist() == (values.astype(np.int64) >> 8).tolist()
