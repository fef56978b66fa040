"""The paper profile's raw datasets: find, download, verify and extract them (REFERENCE.md section 6).

Each raw dataset has a folder under `data.raw_dir` (packed, cuhk, dut, dpdd) and a list of files in
`data.datasets`; `data.sets` decides which folders are needed (apl/data/layout.py RAW_NEEDS). For each
dataset, stopping as soon as every needed folder is found somewhere below its folder:

1. folders already there (placed by hand, or extracted by an earlier run) are used as they are;
2. archives already there (placed by hand, or downloaded earlier) are verified and extracted;
3. files that provide a missing folder are downloaded from their direct mirrors, in order (resumed
   where an earlier attempt stopped, with a progress bar), verified and extracted;
4. whatever is still missing ends in one message naming, per file, the page to visit, the file to
   download and the exact path to put it at.

The authors' released checkpoints (config release.dbd / release.deblur, optional) are never downloaded:
their share pages need a browser. Both the message and a successful run name those pages and the paths
to put the files at while they are absent (apl.data.release_files.release_instructions).

Verification: against the file's published SHA-256 (config) or, where none is published, the one
recorded in `data.lock_file` the first time a copy of it downloaded (or was found) complete and
extracted cleanly. A mismatch is an error; neither the file nor the lock entry is ever overwritten.
Extraction goes to a hidden `.<stem>.partial` folder, renamed to `<stem>/` only once complete, so a
half-extracted archive never looks finished.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import yaml

from apl.data.layout import chosen_layouts, fullclear_folder, raw_needs, raw_users
from apl.data.release_files import release_instructions
from apl.io import write_text

log = logging.getLogger("apl.download")

ARCHIVE_SUFFIXES = (".zip", ".rar", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
RAR_TOOLS = ("unrar, unar, 7z / 7zz or bsdtar on PATH (Debian/Ubuntu: apt-get install unar, or "
             "apt-get install libarchive-tools for bsdtar)")
CHUNK = 1 << 16
MAX_DEPTH = 6                  # how deep below a dataset's folder its needed folders are looked for
USER_AGENT = "apl-reproduction-downloader (python-requests)"


class MissingDataError(FileNotFoundError):
    """Needed raw folders are absent and could not be downloaded; the message says what to put where."""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the published or recorded one."""


class ArchiveError(ValueError):
    """An archive cannot be read or extracted (truncated, corrupt, or no extractor); names the file."""


class DownloadError(RuntimeError):
    """One URL failed (HTTP error, web page instead of a file, connection lost too often)."""


class _Interrupted(Exception):
    """The transfer stopped early; what arrived is kept and the next attempt resumes from it."""


# ---------------------------------------------------------------------------------------------- lock


class Lock:
    """The lock file: {"<dataset>/<file>": {sha256, bytes, origin, recorded}}; entries are only ever added."""

    HEADER = ("# SHA-256 of the raw dataset archives that have no published checksum (written by `apl download`):\n"
              "# the first complete copy of each that extracted cleanly was recorded here. Commit this file: later\n"
              "# downloads and placed archives must match it, and a mismatch stops the run. Remove an entry by\n"
              "# hand only if you know the publisher changed the file.\n")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.files: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = yaml.safe_load(self.path.read_text()) or {}
            except yaml.YAMLError as err:
                raise ValueError(f"lock file {self.path} is not valid YAML: {err}") from None
            files = data.get("files") if isinstance(data, dict) else None
            if not isinstance(files, dict) or any(not isinstance(v, dict) or "sha256" not in v for v in files.values()):
                raise ValueError(f"lock file {self.path} must hold `files: {{<dataset>/<file>: {{sha256: ...}}}}`")
            self.files = files

    def sha256(self, key: str) -> str | None:
        entry = self.files.get(key)
        return entry["sha256"] if entry else None

    def record(self, key: str, sha256: str, size: int, origin: str) -> None:
        if key in self.files:
            if self.files[key]["sha256"] != sha256:   # callers verify first; this is a last guard
                raise ChecksumError(f"{self.path}: refusing to overwrite the entry {key}")
            return
        self.files[key] = {"sha256": sha256, "bytes": size, "origin": origin,
                           "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
        body = yaml.safe_dump({"files": dict(sorted(self.files.items()))}, sort_keys=False, width=200)
        write_text(self.path, self.HEADER + body)
        log.info("recorded the SHA-256 of %s in %s (commit it)", key, self.path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(key: str, published: str | None, lock: Lock) -> tuple[str | None, str]:
    """The checksum a file must have and where it comes from (None: first sight, to be recorded)."""
    recorded = lock.sha256(key)
    if published and recorded and published != recorded:
        raise ChecksumError(f"{key}: data.datasets publishes SHA-256 {published} but {lock.path} recorded "
                            f"{recorded}; one of them is wrong: correct it by hand")
    if published:
        return published, "its published SHA-256 (config data.datasets)"
    if recorded:
        return recorded, f"the SHA-256 recorded in {lock.path}"
    return None, ""


# ------------------------------------------------------------------------------------------ download


def _part_paths(dest: Path, url: str) -> tuple[Path, Path]:
    tag = hashlib.sha1(url.encode()).hexdigest()[:10]
    part = dest.with_name(f"{dest.name}.{tag}.part")
    return part, part.with_name(part.name + ".json")


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of a Content-Range header such as `bytes 100-199/200` or `bytes */200`."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[6:].partition("/")
    start = int(span.split("-")[0]) if span != "*" else None
    return start, int(total) if total.isdigit() else None


def _validator(state: Path) -> str | None:
    """The ETag / Last-Modified the partial download was made under (None if unknown)."""
    try:
        return json.loads(state.read_text()).get("validator")
    except (OSError, ValueError, AttributeError):
        return None


def fetch(url: str, dest: Path, expected: str | None = None, *, attempts: int = 3, timeout: float = 60.0,
          retry_wait: float = 2.0, progress: bool = True, session=None) -> str:
    """Download `url` to `dest`; return its SHA-256.

    The transfer goes to `<dest>.<tag>.part` (one per URL) and resumes from it with an HTTP Range
    request, both after a dropped connection (up to `attempts` times) and in a later run; `If-Range`
    makes the server send the whole file again if it changed meanwhile. `dest` appears only once the
    whole file arrived and matches `expected` (when given). Raises DownloadError or ChecksumError.
    """
    import requests
    from tqdm import tqdm

    part, state = _part_paths(dest, url)
    session = session or requests.Session()
    transient = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                 requests.exceptions.Timeout, _Interrupted)
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            validator = _validator(state)
            if validator:
                headers["If-Range"] = validator
        received = 0
        try:
            with session.get(url, headers=headers, stream=True, timeout=(min(timeout, 15.0), timeout)) as response:
                if response.status_code == 416 and have:            # nothing after `have`: complete, or stale
                    if _content_range(response.headers.get("Content-Range"))[1] == have:
                        break
                    part.unlink()
                    raise _Interrupted("the partial download no longer fits the file on the server; restarting")
                if response.status_code not in (200, 206):
                    raise DownloadError(f"HTTP {response.status_code} {response.reason}")
                if response.headers.get("Content-Type", "").startswith("text/html"):
                    raise DownloadError("the server sent a web page (text/html), not the file: the link is dead "
                                        "or it is a share page that needs a browser")
                start, _ = _content_range(response.headers.get("Content-Range"))
                resumed = response.status_code == 206 and start == have
                if response.status_code == 206 and not resumed:
                    part.unlink()
                    raise _Interrupted(f"the server resumed at byte {start}, not {have}; restarting")
                have = have if resumed else 0
                length = response.headers.get("Content-Length")
                total = have + int(length) if length and length.isdigit() else None
                validator = response.headers.get("ETag", "")
                validator = validator if validator and not validator.startswith("W/") else \
                    response.headers.get("Last-Modified")
                write_text(state, json.dumps({"url": url, "validator": validator}))
                if resumed:
                    log.info("%s: resuming at byte %d", url, have)
                with open(part, "ab" if resumed else "wb") as out, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=dest.name, disable=not progress, file=sys.stderr,
                             mininterval=0.5 if sys.stderr.isatty() else 10.0) as bar:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and part.stat().st_size < total:
                    raise _Interrupted(f"the connection closed at byte {part.stat().st_size} of {total}")
            break
        except transient as err:
            size = part.stat().st_size if part.exists() else 0
            kept = f"; {size} bytes are kept in {part} and the next run resumes from there" if size else ""
            # A connection that never started (offline, refused, unknown host) is not retried: next mirror.
            if isinstance(err, requests.exceptions.ConnectionError) and not received:
                raise DownloadError(f"cannot connect ({_short(err)}){kept}") from None
            if attempt == attempts:
                raise DownloadError(f"the transfer stopped {attempts} times ({_short(err)}){kept}") from None
            log.warning("%s: %s; resuming from byte %d (attempt %d of %d)", url, _short(err), size, attempt + 1, attempts)
            time.sleep(retry_wait * attempt)
        except requests.exceptions.RequestException as err:
            raise DownloadError(_short(err)) from None
    observed = sha256_of(part)
    if expected and observed != expected:
        part.unlink()
        state.unlink(missing_ok=True)
        raise ChecksumError(f"SHA-256 mismatch: expected {expected}, got {observed}; the download was deleted")
    os.replace(part, dest)
    state.unlink(missing_ok=True)
    return observed


def _short(err: BaseException) -> str:
    reason = getattr(err.args[0], "reason", None) if err.args else None     # urllib3's MaxRetryError
    text = str(reason or err) or type(err).__name__
    text = text.split("): ", 1)[-1] if reason else text                    # drop "HTTPSConnection(host=...)"
    return text if len(text) < 300 else text[:300] + "..."


# ------------------------------------------------------------------------------------------- extract


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def archive_kind(path: Path) -> str:
    """zip | tar | rar, from the file's first bytes (not its name); ArchiveError for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    start = head[:40].decode("latin-1").strip()
    hint = " (a web page saved instead of the file?)" if start.lower().startswith(("<!doctype", "<html")) else ""
    raise ArchiveError(f"{path} is not a zip, tar or rar archive{hint}; it starts with {start[:20]!r}. "
                       "Replace it with the real file")


def extract(archive: Path, into: Path) -> None:
    """Extract `archive` into the folder `into`, which appears only once extraction is complete."""
    kind = archive_kind(archive)
    tmp = into.with_name(f".{into.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    log.info("extracting %s into %s", archive, into)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(tmp)           # zipfile drops absolute paths and `..`
        elif kind == "tar":
            with tarfile.open(archive) as handle:
                if hasattr(tarfile, "data_filter"):
                    handle.extractall(tmp, filter="data")
                else:                             # Python < 3.11.4: refuse members that leave `tmp`
                    for member in handle.getmembers():
                        target = (tmp / member.name).resolve()
                        if not target.is_relative_to(tmp.resolve()) or member.issym() or member.islnk():
                            raise tarfile.TarError(f"unsafe member {member.name!r}")
                    handle.extractall(tmp)
        else:
            _extract_rar(archive, tmp)
    except (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArchiveError(f"{archive} is truncated or corrupt ({_short(err)}); delete it and run `apl download` "
                           "again, or replace it with a complete copy") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(into)


def _extract_rar(archive: Path, tmp: Path) -> None:
    try:
        import rarfile
    except ImportError:
        raise ArchiveError(f"{archive}: reading RAR archives needs the rarfile package (pip install rarfile)") from None
    try:
        with rarfile.RarFile(archive) as handle:
            handle.extractall(tmp)
    except rarfile.RarCannotExec:
        raise ArchiveError(f"{archive}: extracting this RAR archive needs {RAR_TOOLS}; or extract it by hand "
                           f"into {archive.parent}/") from None
    except rarfile.Error as err:
        raise ArchiveError(f"{archive} is truncated or corrupt ({_short(err)}); delete it and run `apl download` "
                           "again, or replace it with a complete copy") from None


# ------------------------------------------------------------------------------------------- locate


def _folders_below(root: Path) -> list[Path]:
    """Every folder below `root` up to MAX_DEPTH, skipping hidden ones (partial extractions) and macOS's
    __MACOSX metadata folders (which repeat the archive's folder names)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX") \
            if depth < MAX_DEPTH else []
        found += [Path(dirpath) / d for d in dirnames]
    return found


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())


def locate(root: Path, needs: list[str]) -> tuple[dict[str, Path], list[str]]:
    """({need: folder} found below `root`, [needs not found]). A need is a folder name or a path tail."""
    folders = _folders_below(root) if root.is_dir() else []
    found, missing = {}, []
    for need in needs:
        tail = tuple(need.split("/"))
        matches = [f for f in folders if f.parts[-len(tail):] == tail and len(f.relative_to(root).parts) >= len(tail)]
        # An archive extracted to <stem>/ whose stem is the need itself wraps the real folder: keep the innermost.
        matches = [m for m in matches if not any(o != m and o.is_relative_to(m) for o in matches)]
        if not matches:
            missing.append(need)
            continue
        if len({tuple(_listing(m)) for m in matches}) > 1:
            raise MissingDataError(f"{need} is in more than one place below {root}, with different files: "
                                   f"{', '.join(str(m) for m in matches)}; keep one of them")
        found[need] = matches[0]
    return found, missing


# ------------------------------------------------------------------------------------------ datasets


def _archives_in(root: Path, files: list[dict]) -> list[Path]:
    """Archives in `root` itself: the configured names first, then any other archive placed there."""
    named = [root / f["name"] for f in files if f["name"] and (root / f["name"]).is_file()]
    others = sorted(p for p in root.iterdir() if p.is_file() and p not in named and not p.name.startswith(".")
                    and p.name.lower().endswith(ARCHIVE_SUFFIXES)) if root.is_dir() else []
    return named + others


def _spec_for(archive: Path, files: list[dict]) -> dict:
    for spec in files:
        if spec["name"] == archive.name:
            return spec
    return {"name": None, "sha256": None}


def _use_archive(dataset: str, archive: Path, spec: dict, lock: Lock, origin: str, downloaded: bool) -> None:
    """Verify `archive` (published / recorded SHA-256), extract it, record its SHA-256 if first seen."""
    key = f"{dataset}/{archive.name}"
    expected, source = expected_sha256(key, spec.get("sha256"), lock)
    observed = sha256_of(archive)
    if expected and observed != expected:
        raise ChecksumError(f"{archive}: SHA-256 {observed} differs from {source} ({expected}). The file was "
                            "left as it is. Delete it and run `apl download` again to fetch it anew; if you are "
                            f"sure the publisher changed it, remove the entry {key} from {lock.path} by hand")
    try:
        extract(archive, archive.parent / archive_stem(archive))
    except ArchiveError:
        if downloaded and not expected:
            archive.unlink()
        raise
    if not expected:
        lock.record(key, observed, archive.stat().st_size, origin)


def _by_hand(files: list[dict], missing: list[str]) -> tuple[list[dict], set[str]]:
    """The files a person must fetch (the only providers of some missing folder) and what they bring along."""
    direct = [spec for spec in files if spec["name"] and spec["urls"]]
    only_by_hand = {need for need in missing if not any(need in spec["provides"] for spec in direct)}
    manual = [spec for spec in files if spec not in direct and set(spec["provides"]) & only_by_hand]
    return manual, {need for spec in manual for need in spec["provides"]}


def ensure_dataset(dataset: str, files: list[dict], needs: list[str], raw_dir: Path, lock: Lock, why: str = "",
                   **fetch_options) -> dict[str, Path]:
    """Return {need: folder} for one raw dataset, extracting and downloading what is missing.

    Nothing is downloaded that a file the user must place by hand anyway will bring (the packed
    archive holds the test sets the M2CS mirror also serves). `why` (for the message) says which
    choice needs these folders; `fetch_options` go to `fetch`.
    """
    root = raw_dir / dataset
    found, missing = locate(root, needs)
    if not missing:
        return found
    root.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    for archive in _archives_in(root, files):
        if not missing:
            break
        into = root / archive_stem(archive)
        if into.exists():
            notes.append(f"{archive.name} was extracted to {into} before, and that folder holds none of them")
            continue
        _use_archive(dataset, archive, _spec_for(archive, files), lock, f"found in {root}", downloaded=False)
        found, missing = locate(root, needs)
    failures: dict[str, list[str]] = {}
    _, brought = _by_hand(files, missing)
    for spec in files:
        wanted = set(spec["provides"]) & (set(missing) - brought)
        if not wanted or not spec["name"] or not spec["urls"] or (root / spec["name"]).exists():
            continue
        dest = root / spec["name"]
        expected, _ = expected_sha256(f"{dataset}/{spec['name']}", spec["sha256"], lock)
        for url in spec["urls"]:
            log.info("downloading %s from %s", spec["name"], url)
            try:
                fetch(url, dest, expected, **fetch_options)
            except (DownloadError, ChecksumError) as err:
                failures.setdefault(spec["name"], []).append(f"{url}: {err}")
                log.warning("%s: %s", url, err)
                continue
            _use_archive(dataset, dest, spec, lock, url, downloaded=True)
            break
        found, missing = locate(root, needs)
    if missing:
        raise MissingDataError(_instructions(dataset, root, files, missing, failures, notes, why))
    return found


def _instructions(dataset: str, root: Path, files: list[dict], missing: list[str], failures: dict[str, list[str]],
                  notes: list[str], why: str) -> str:
    """Per file still needed: the page to visit, the file to download and the exact path to put it at."""
    root = root.resolve()
    lines = [f"- {dataset}: no folder {', '.join(missing)} below {root}/" + (f" (needed for {why})" if why else "")]
    manual, brought = _by_hand(files, missing)
    rest = [spec for spec in files if spec not in manual and set(spec["provides"]) & (set(missing) - brought)]
    for spec in manual + rest:
        provides = [need for need in missing if need in spec["provides"]]
        if spec["name"]:
            name, place = spec["name"], root / spec["name"]
        else:
            name, place = "the archive offered there (any name ending in .zip, .rar or .tar[.gz])", f"{root}/"
        lines += [f"    visit {spec['page']}",
                  f"      download {name}",
                  f"      and put it at {place}",
                  f"      (or extract it yourself anywhere below {root}/ so that "
                  f"{', '.join('.../' + need for need in provides)} exist{'s' if len(provides) == 1 else ''})"]
        lines += [f"      tried {failure}" for failure in failures.get(spec["name"], [])]
    lines += [f"    note: {note}" for note in notes]
    return "\n".join(lines)


def download(config: dict, *, raw_dir: str | Path | None = None, lock_file: str | Path | None = None,
             **fetch_options) -> dict:
    """Make every raw folder the chosen `data.sets` need available; return what was found where."""
    data = config["data"]
    raw_dir = Path(raw_dir or data["raw_dir"])
    lock = Lock(lock_file or data["lock_file"])
    folders, problems = {}, []
    users = raw_users(config)
    for dataset, needs in raw_needs(config).items():
        why = ", ".join(users[dataset])
        try:
            folders[dataset] = ensure_dataset(dataset, data["datasets"][dataset], needs, raw_dir, lock, why,
                                              **fetch_options)
        except MissingDataError as err:
            problems.append(str(err))
    if data["sets"]["fullclear"] == "folder":
        try:
            fullclear_folder(config)     # a user's own photographs: nothing to fetch, only to check
        except (ValueError, FileNotFoundError) as err:
            problems.append(f"- {err}")
    if problems:
        raise MissingDataError("raw datasets are missing, and what a script may fetch was fetched; still to do:\n"
                               + "\n".join(problems) + "\nthen run the same command again. Alternatives: other "
                               "layouts in data.sets, or the embedded demo (snakemake --cores 2 --configfile "
                               "config/demo.yaml)\nOptional:\n" + release_instructions(config))
    return {"raw_dir": str(raw_dir), "sets": chosen_layouts(config),
            "folders": {dataset: {need: str(path) for need, path in found.items()} for dataset, found in folders.items()},
            "lock_file": str(lock.path), "fullclear_dir": data["fullclear_dir"]}


def locate_raw(config: dict, raw_dir: str | Path) -> dict[str, dict[str, Path]]:
    """{dataset: {need: folder}} without downloading or extracting anything (for `apl prepare`)."""
    raw_dir = Path(raw_dir)
    folders, problems = {}, []
    for dataset, needs in raw_needs(config).items():
        found, missing = locate(raw_dir / dataset, needs)
        if missing:
            problems.append(f"- {dataset}: no folder {', '.join(missing)} below {(raw_dir / dataset).resolve()}/")
        folders[dataset] = found
    if problems:
        raise MissingDataError("raw folders missing:\n" + "\n".join(problems) +
                               "\nrun `apl download` (the `download` rule) first: it fetches what it can and says "
                               "where to put the rest")
    return folders
