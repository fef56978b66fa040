"""The paper profile's raw datasets (REFERENCE.md section 6).

Automatic download with checksums is future work (issue 6); today every dataset is placed by hand
under `data.raw_dir`, and this module checks that it is there and says exactly what to put where.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawDataset:
    name: str
    folder: str                 # under data.raw_dir
    needs: tuple[str, ...]      # sub-folders that must exist once extracted
    page: str
    files: str


RAW_DATASETS = (
    RawDataset("CUHK", "cuhk", ("image", "gt"),
               "http://www.cse.cuhk.edu.hk/~leojia/projects/dblurdetect/dataset.html",
               "BlurDatasetImage.zip and BlurDatasetGT.zip, extracted so that image/ and gt/ are side by side"),
    RawDataset("DUT", "dut", ("DUT600S_Training", "DUT600GT_Training", "DUT500S-Testing", "DUT500GT-Testing"),
               "the DUT-DBD mirrors listed in REFERENCE (e.g. GitHub release assets of jerysaw/M2CS: DUT.rar)",
               "the four DUT folders DUT600S_Training, DUT600GT_Training, DUT500S-Testing, DUT500GT-Testing"),
    RawDataset("DPDD", "dpdd", ("test_c/source", "test_c/target"),
               "https://ln2.sync.com/dl/c45358c50/r7kpybwk-xw8hhszh-qkj249ap-y8k2344d (a share page: open it in a browser)",
               "the Canon set, extracted so that test_c/source and test_c/target exist"),
    RawDataset("full-clear", "fullclear", ("FC",),
               "the SG/APL packed training archive linked from github.com/wdzhao123/APL",
               "the folder train_data/FCFB/FC with the 500 full-clear images"),
)


class MissingDataError(FileNotFoundError):
    pass


def check_raw(raw_dir: str | Path) -> dict[str, Path]:
    """Return {dataset: folder} when every raw dataset is in place, else one error listing what to do."""
    raw_dir = Path(raw_dir)
    found, missing = {}, []
    for dataset in RAW_DATASETS:
        root = raw_dir / dataset.folder
        absent = [need for need in dataset.needs if not (root / need).is_dir()]
        if absent:
            missing.append(f"- {dataset.name}: visit {dataset.page}\n    download {dataset.files}\n"
                           f"    and place them at {root}/ (missing: {', '.join(str(root / a) for a in absent)})")
        else:
            found[dataset.name] = root
    if missing:
        raise MissingDataError("the paper profile's datasets are not in place (automatic download is not yet "
                               "implemented):\n" + "\n".join(missing) +
                               "\nOr run the embedded demo: snakemake --cores 2 --configfile config/demo.yaml")
    return found
