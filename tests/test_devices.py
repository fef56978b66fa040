"""One GPU per job (apl/devices.py), on fake devices: no GPU is needed."""
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest
import torch

from apl import devices
from apl.devices import Device, claim

GPUS = [Device(0, "GPU-aaaa", "fake A"), Device(1, "GPU-bbbb", "fake B")]


@pytest.fixture(autouse=True)
def locks(tmp_path, monkeypatch):
    """Every test gets its own lock folder and ends holding no lock."""
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path / "locks"))
    yield tmp_path / "locks"
    devices.release()


def hold_in_subprocess(folder, uuids) -> subprocess.Popen:
    """Another job: a process that claims the given devices and sleeps; returns once it holds them."""
    code = ("import sys, time; from apl.devices import Device, claim\n"
            f"for i, u in enumerate({uuids!r}): claim([Device(i, u)], folder=__import__('pathlib').Path({str(folder)!r}))\n"
            "print('held', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout.readline().strip() == "held"
    return process


def test_concurrent_jobs_get_different_devices_and_wait_when_all_are_taken(locks):
    first, second = claim(GPUS, locks), claim(GPUS, locks)   # two jobs (separate lock descriptors)
    assert (first.device.index, second.device.index) == (0, 1)
    with pytest.raises(TimeoutError):
        claim(GPUS, locks, poll=0.01, timeout=0.1)
    devices.release()
    assert claim(GPUS, locks).device.index == 0


def test_a_device_held_by_another_process_is_skipped_and_freed_by_kill_9(locks):
    other = hold_in_subprocess(locks, ["GPU-aaaa"])
    try:
        assert claim(GPUS, locks).device.index == 1
        devices.release()
        other.send_signal(signal.SIGKILL)   # a job killed hard: the kernel drops its lock
        other.wait()
        assert claim(GPUS, locks).device.index == 0
    finally:
        other.kill()
        other.wait()


def test_a_waiting_job_takes_the_first_device_freed_and_says_it_waited(locks, caplog):
    other = hold_in_subprocess(locks, ["GPU-aaaa", "GPU-bbbb"])
    try:
        subprocess.Popen(["sh", "-c", f"sleep 0.5; kill {other.pid}"])
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="apl.devices"):
            taken = claim(GPUS, locks, poll=0.05, timeout=30)
        assert taken.device.index == 0 and time.monotonic() - started >= 0.4
        assert "all 2 visible GPUs are held by other jobs" in caplog.text and f"pid {other.pid}" in caplog.text
    finally:
        other.kill()
        other.wait()


def test_devices_are_told_apart_by_uuid_not_index(locks):
    # Two SLURM jobs on one node, each seeing only its own GPU as cuda:0: neither waits for the other.
    assert claim([Device(0, "GPU-job1")], locks, timeout=0).device.uuid == "GPU-job1"
    assert claim([Device(0, "GPU-job2")], locks, timeout=0).device.uuid == "GPU-job2"


def test_default_lock_folder_is_shared_by_users(tmp_path, monkeypatch):
    monkeypatch.delenv(devices.LOCK_DIR_ENV)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = devices.lock_dir()
    assert folder == tmp_path / "apl-gpu-locks"
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_ISVTX | 0o777


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda with two fake GPUs; records set_device calls."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(GPUS))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=GPUS[i].uuid, name=GPUS[i].name))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


def test_auto_gives_each_job_its_own_cuda_device_and_logs_it(fake_cuda, caplog):
    with caplog.at_level(logging.INFO, logger="apl.devices"):
        assert devices.for_job("auto") == "cuda:0"
        assert devices.for_job("auto") == "cuda:1"   # a second job while the first runs
    assert fake_cuda == [0, 1]
    assert "device cuda:1 (fake B, GPU-bbbb)" in caplog.text


def test_explicit_settings_and_machines_without_cuda_take_no_lock(fake_cuda, locks, monkeypatch):
    assert devices.for_job("cuda:1") == "cuda:1" and devices.for_job("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.for_job("auto") == "cpu"
    assert fake_cuda == [] and not locks.exists()


def test_jobs_per_gpu_shares_each_gpu_after_spreading_over_all(locks):
    taken = [claim(GPUS, folder=locks, slots=2).device.index for _ in range(4)]
    assert taken == [0, 1, 0, 1]   # the first job on every GPU before a second on any
    with pytest.raises(TimeoutError):
        claim(GPUS, folder=locks, slots=2, poll=0.01, timeout=0.05)   # a fifth job waits
    with pytest.raises(ValueError, match="jobs_per_gpu"):
        claim(GPUS, folder=locks, slots=0)


def test_auto_with_jobs_per_gpu_puts_two_jobs_on_one_gpu(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert [devices.for_job("auto", jobs_per_gpu=2) for _ in range(2)] == ["cuda:0", "cuda:0"]
