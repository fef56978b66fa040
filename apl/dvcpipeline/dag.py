"""The jobs of one profile's Snakemake DAG, as plain data, read with Snakemake's own DAG builder.

Run as a script (`python -m apl.dvcpipeline.dag --out jobs.json [--configfile config/demo.yaml]`) in the
repository root; generate.py starts it in a subprocess so that each profile gets a fresh Snakemake.
Nothing is executed and no file is touched but the JSON: the DAG is built as for `snakemake -n --forceall`.

Besides each job's command, inputs and outputs, it records which top-level config sections the job's
rule reads: while a rule is defined (its params, inputs, ... are evaluated then) and while Snakemake
evaluates the job's params functions. Those sections are what a change reruns the job for in Snakemake
(its params trigger), so they become the DVC stage's params. This reading hooks three Snakemake
internals (Workflow.configfile, Workflow.rule, Rule.expand_params) in this process only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from apl.dvcpipeline.timestamps import ENV as TIMESTAMPS_ENV



class ConfigReads:
    """Which top-level config keys are read, and in whose name: a rule being defined, or a job."""

    def __init__(self):
        self.context = None
        self.keys = defaultdict(set)

    def read(self, key):
        if self.context is not None:
            self.keys[self.context].add(key)

    def of_job(self, job) -> list[str]:
        return sorted(self.keys[("rule", job.rule.name)] | self.keys[_job_context(job.rule.name, job.wildcards_dict)])


class RecordingConfig(dict):
    """The workflow's `config`, reporting which top-level keys are read (nested values are plain)."""

    def __init__(self, data: dict, reads: ConfigReads):
        super().__init__(data)
        self.reads = reads

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.reads.read(key)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        for key in self:
            self.reads.read(key)
        return super().items()

    def values(self):
        return [value for _, value in self.items()]


def _job_context(rule: str, wildcards) -> tuple:
    return "job", rule, tuple(sorted((str(k), str(v)) for k, v in dict(wildcards).items()))


@contextmanager
def recording(reads: ConfigReads):
    from snakemake.rules import Rule
    from snakemake.workflow import Workflow

    original = Workflow.configfile, Workflow.rule, Rule.expand_params

    def configfile(self, fp):
        original[0](self, fp)
        self.globals["config"] = RecordingConfig(self.globals["config"], reads)

    def rule(self, *args, **kwargs):
        decorate = original[1](self, *args, **kwargs)
        reads.context = ("rule", kwargs.get("name", args[0] if args else None))

        def defined(ruleinfo):
            try:
                return decorate(ruleinfo)
            finally:
                reads.context = None
        return defined

    def expand_params(self, wildcards, *args, **kwargs):
        previous, reads.context = reads.context, _job_context(self.name, wildcards.items())
        try:
            return original[2](self, wildcards, *args, **kwargs)
        finally:
            reads.context = previous

    Workflow.configfile, Workflow.rule, Rule.expand_params = configfile, rule, expand_params
    try:
        yield reads
    finally:
        Workflow.configfile, Workflow.rule, Rule.expand_params = original


def read_dag(snakefile: Path, configfiles: list[Path]) -> dict:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    os.environ[TIMESTAMPS_ENV] = "0"   # reading the DAG touches no file: the workflow's timestamps hook stays off
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api, recording(ConfigReads()) as reads:
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                    config_settings=ConfigSettings(configfiles=list(configfiles)),
                                    snakefile=snakefile, workdir=Path.cwd())
        workflow_api.dag(DAGSettings(forceall=True))
        # The same two calls as `snakemake --dag`: parse, then build the DAG of every job.
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        dag = workflow.dag
        jobs = []
        for level in dag.toposorted():
            for job in sorted(level, key=_job_sort_key):
                _ = job.params   # evaluated now, while config reads are recorded
                jobs.append(_job(job, reads.of_job(job)))
        names = workflow.globals
        needed = ("CONFIG_FILES", "PROFILE", "APL", "DVC_METRICS_OUTPUTS", "DVC_EXTRA_OUTS", "DVC_PLOTS")
        missing = [name for name in needed if name not in names]
        if missing:
            raise RuntimeError(f"the workflow defines no {', '.join(missing)} (workflow/Snakefile, workflow/rules/dvc.smk)")
        return {
            "jobs": jobs,
            "config_files": list(names["CONFIG_FILES"]),
            "profile": names["PROFILE"],
            "apl": names["APL"],
            "dvc": {key: names[key] for key in ("DVC_METRICS_OUTPUTS", "DVC_EXTRA_OUTS", "DVC_PLOTS")},
        }


def _job_sort_key(job) -> tuple:
    return job.rule.name, sorted(job.wildcards_dict.items())


def _job(job, config_keys: list[str]) -> dict:
    names = {}
    for name, value in job.output.items():
        for path in [value] if isinstance(value, str) else value:
            names[str(path)] = name
    return {
        "rule": job.rule.name,
        "wildcards": {key: str(value) for key, value in job.wildcards_dict.items()},
        "input": [str(path) for path in job.input],
        "output": [{"path": str(path), "name": names.get(str(path)), "directory": bool(path.is_directory)}
                   for path in job.output],
        "log": [str(path) for path in job.log],
        "shell": job.shellcmd.strip() if job.shellcmd else None,
        "config_keys": config_keys,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--configfile", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = read_dag(args.snakefile.absolute(), args.configfile)
    args.out.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
