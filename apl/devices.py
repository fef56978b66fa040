"""One GPU per job: with `device: auto`, `apl train` and `apl evaluate` each take a CUDA device no other job holds.

Snakemake's `gpu` resource only counts GPU jobs; it does not say which GPU a job should use, so without
this every job would take cuda:0. A job claims a device by an exclusive lock (flock) on a file named after
the device's UUID in a lock folder shared by every job on the machine. The kernel drops the lock when the
process ends, however it ends (kill -9 included), so a retried or resumed job never meets a stale lock.
Devices are told apart by UUID, not by index: under CUDA_VISIBLE_DEVICES (as SLURM sets it) every job on
a node may see its own GPU as cuda:0, and those must not wait for each other.

When every visible GPU is held, the job waits for one (saying so in its log) rather than share a GPU.
`jobs_per_gpu: K` (config) gives every GPU K lock files ("slots") instead of one, so K jobs share it: the
first job on each GPU comes before the second job on any.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("apl.devices")
LOCK_DIR_ENV = "APL_GPU_LOCK_DIR"   # where the per-device lock files live (default: <tmp>/apl-gpu-locks)
POLL_SECONDS = 5.0
_held: list[int] = []   # file descriptors of the locks this process holds: kept open until it exits


@dataclass(frozen=True)
class Device:
    index: int          # the torch index in this process (cuda:<index>)
    uuid: str           # what identifies the physical GPU across processes
    name: str = ""


@dataclass(frozen=True)
class Claim:
    device: Device
    lock: Path


def lock_dir() -> Path:
    """The lock folder: $APL_GPU_LOCK_DIR, else one in the system's temporary folder, shared by all users."""
    configured = os.environ.get(LOCK_DIR_ENV)
    folder = Path(configured) if configured else Path(tempfile.gettempdir()) / "apl-gpu-locks"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        if not configured:
            try:   # like /tmp: every user may add locks, none may remove another's
                folder.chmod(stat.S_ISVTX | 0o777)
            except PermissionError:
                pass   # made by another user in the meantime
    return folder


def _lock_file(folder: Path, device: Device, slot: int = 0) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device.uuid)
    return folder / (f"gpu-{safe}.lock" if slot == 0 else f"gpu-{safe}.slot{slot}.lock")


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on `path`, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        writable = True
    except PermissionError:   # another user's lock file: flock works on a read-only descriptor too
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    if writable:   # who holds it, for the log of a job that has to wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"


def claim(devices: list[Device], folder: Path | None = None, poll: float = POLL_SECONDS,
          timeout: float | None = None, slots: int = 1) -> Claim:
    """Lock the first free device of `devices` (in order), waiting while all are held; with `slots` K, a
    device is held only once K jobs hold it, and jobs spread over the devices before they double up.

    The lock lasts as long as this process (or until release()). Raises TimeoutError after `timeout`
    seconds (None: wait as long as it takes).
    """
    if not devices:
        raise ValueError("no devices to choose from")
    if slots < 1:
        raise ValueError(f"jobs_per_gpu must be at least 1, got {slots}")
    folder = Path(folder) if folder else lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    started, waiting_logged = time.monotonic(), False
    while True:
        for slot in range(slots):
            for device in devices:
                path = _lock_file(folder, device, slot)
                fd = _try_lock(path)
                if fd is not None:
                    _held.append(fd)
                    return Claim(device, path)
        if timeout is not None and time.monotonic() - started >= timeout:
            raise TimeoutError(f"every GPU stayed held by other jobs for {timeout:.0f} s (locks in {folder})")
        if not waiting_logged:
            holders = "; ".join(f"cuda:{d.index} by {_holder(_lock_file(folder, d, s))}"
                                for s in range(slots) for d in devices)
            log.warning("all %d visible GPUs are held by other jobs (%s); waiting for one to be free. Give Snakemake "
                        "no more GPU jobs than GPUs times jobs_per_gpu (%d): --resources gpu=N", len(devices),
                        holders, slots)
            waiting_logged = True
        time.sleep(poll)


def release() -> None:
    """Drop every lock this process holds (the end of the process does the same)."""
    while _held:
        os.close(_held.pop())


def visible_cuda_devices() -> list[Device]:
    import torch
    devices = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        # torch reports the UUID; without it, the host, CUDA_VISIBLE_DEVICES and the index stand for the GPU
        fallback = f"{socket.gethostname()}-{os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}-{index}"
        uuid = str(getattr(properties, "uuid", "") or fallback)
        devices.append(Device(index, uuid, properties.name))
    return devices


def for_job(setting: str, jobs_per_gpu: int = 1) -> str:
    """The device setting a GPU job runs with: `auto` becomes the CUDA device this process has claimed
    (or `cpu` without CUDA), shared with at most jobs_per_gpu - 1 other jobs; explicit settings (cpu, cuda,
    cuda:N) are the user's choice and kept."""
    if setting != "auto":
        return setting
    import torch
    if not torch.cuda.is_available():
        return "cpu"
    taken = claim(visible_cuda_devices(), slots=jobs_per_gpu)
    torch.cuda.set_device(taken.device.index)   # anything that uses "the current device" uses this one too
    name = f"cuda:{taken.device.index}"
    log.info("device %s (%s, %s), held through %s", name, taken.device.name, taken.device.uuid, taken.lock)
    return name


def cuda_expected(setting: str) -> bool:
    """Whether jobs with this device setting will run on a GPU here, without importing torch (slow to start):
    `auto` counts the GPUs the NVIDIA driver lists, less those hidden by CUDA_VISIBLE_DEVICES."""
    if setting != "auto":
        return setting.startswith("cuda")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
