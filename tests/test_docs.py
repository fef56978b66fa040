"""README.md, docs/ and config/README.md name only what exists: files, config keys, make targets, commands.

Every command line in a ```bash block is checked: `apl ...` by the apl CLI's own argument parser, `snakemake
...` by Snakemake's (its config files must exist), `make X` against the Makefile, `python tests/...` against the
files; a line that needs what a test machine lacks says so in its comment (`needs a GPU`, `needs the datasets`,
`needs the network`, `needs a finished run`, ...). Renaming a file, key or target without the pages fails here.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TRACKED_ROOTS = ("apl/", "config/", "docs/", "tests/", "workflow/", "pipelines/", ".ci/")
TRACKED_FILES = ("Makefile", "dvc.yaml", "environment.yml", "requirements.lock", "requirements-torch.txt",
                 "pyproject.toml", "Snakefile")
CONFIG_ROOTS = ("seeds", "seed", "device", "jobs_per_gpu", "image_size", "scale", "data", "prior", "synthesis",
                "models", "train", "evaluation", "model", "release")
NEEDS = re.compile(r"#.*\bneeds\b", re.IGNORECASE)


def page_ids():
    return [str(page.relative_to(ROOT)) for page in PAGES]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def bash_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        block = re.sub(r"\\\n\s*", " ", block)   # continued lines are one command
        lines += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    return lines


def schema_has(key: str) -> bool:
    node = yaml.safe_load((ROOT / "apl" / "schemas" / "config.schema.yaml").read_text())
    for part in key.split("."):
        properties = node.get("properties")
        if properties is None:
            return isinstance(node.get("additionalProperties"), dict) or "patternProperties" in node
        if part not in properties:
            return False
        node = properties[part]
        if "$ref" in node:
            node = yaml.safe_load((ROOT / "apl" / "schemas" / "config.schema.yaml").read_text())["$defs"][
                node["$ref"].split("/")[-1]]
    return True


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def test_every_page_exists():
    for page in PAGES:
        assert page.exists(), page
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160, "README.md: keep the front page short"


@pytest.mark.parametrize("page", PAGES, ids=page_ids())
def test_named_files_exist(page):
    text = page.read_text()
    links = re.findall(r"\]\(([^)#\s]+)", text)
    names = [span.split()[0] for span in code_spans(text)] + [
        (page.parent / link).resolve().relative_to(ROOT).as_posix() for link in links if "://" not in link]
    missing = []
    for name in names:
        name = name.rstrip(".,:;")
        if any(ch in name for ch in "<>{}*$") or "..." in name:
            continue   # a pattern or a placeholder, not a file
        if name.startswith(TRACKED_ROOTS) or name in TRACKED_FILES:
            if not (ROOT / name).exists():
                missing.append(name)
    assert not missing, f"{page.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids())
def test_named_config_keys_exist(page):
    keys = [span for span in code_spans(page.read_text())
            if re.fullmatch(r"[a-z_0-9]+(\.[a-z_0-9]+)+", span) and span.split(".")[0] in CONFIG_ROOTS]
    missing = [key for key in keys if not schema_has(key)]
    assert not missing, f"{page.name} names config keys the schema does not have: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids())
def test_named_make_targets_exist(page):
    text = page.read_text()
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", text))
    assert named <= make_targets(), f"{page.name} names make targets the Makefile lacks: {named - make_targets()}"


def _check_command(line: str) -> str | None:
    """None when the command line checks out; otherwise what is wrong."""
    from apl.cli import parser
    command = line.split(" #")[0].strip().rstrip("\\").strip()
    if "|" in command or "&&" in command:
        return None if all(_check_command(part) is None for part in re.split(r"\s*(?:\||&&)\s*", command)) else \
            f"a part of {command!r} fails"
    words = shlex.split(command)
    if not words:
        return None
    program = Path(words[0]).name
    if program == "apl":
        try:
            parser().parse_args(words[1:])
        except SystemExit:
            return f"apl does not accept {command!r}"
    elif program == "snakemake":
        configs = [w for w in words[words.index("--configfile") + 1:] if not w.startswith("-")] \
            if "--configfile" in words else []
        missing = [c for c in configs if c.endswith(".yaml") and not (ROOT / c).exists() and "/" in c]
        if missing:
            return f"{command!r}: no such config file {missing}"
        code = "import sys; from snakemake.cli import parse_args; parse_args(sys.argv[1:])"
        if subprocess.run([sys.executable, "-c", code, *words[1:]], cwd=ROOT, capture_output=True).returncode:
            return f"snakemake does not accept {command!r}"
    elif program == "make":
        if not set(words[1:]) - {w for w in words[1:] if "=" in w} <= make_targets():
            return f"no make target in {command!r}"
    elif program.startswith("python"):
        scripts = [w for w in words[1:] if w.endswith(".py")]
        if scripts and not (ROOT / scripts[0]).exists():
            return f"no script {scripts[0]}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=page_ids())
def test_every_command_parses_or_says_what_it_needs(page):
    problems = []
    for line in bash_lines(page.read_text()):
        if NEEDS.search(line):
            continue   # needs a GPU, the datasets, the network or a finished run: documented, not run here
        problem = _check_command(line)
        if problem:
            problems.append(problem)
    assert not problems, f"{page.name}: {problems}"


def test_a_renamed_key_or_file_is_caught(tmp_path):
    """The checks themselves fail on a page that names what does not exist."""
    assert not schema_has("train.no_such_key") and schema_has("train.gws_start") and schema_has("scale.mode")
    assert _check_command("apl predict --no-such-flag") is not None
    assert _check_command("make no-such-target") is not None
    assert _check_command(".venv/bin/snakemake --configfile config/nope.yaml") is not None
    assert _check_command(".venv/bin/apl predict --weights w.pt --input photos/ --out maps/") is None
