"""Are the campaign's warm starts the bundled model's? Run it before a GPU call, with the bundled model in place.

Session 14 found `data/init/vqgan` to be the decoder from before session 10's (copied in the morning of the day
session 10's decoder was bundled, and never refreshed): every GPU val row and every score-model fine-tune of
sessions 11-14 decoded through the old decoder. This compares each staged component, in `data/init/<name>` and
inside the xz tarballs of `.carry*/`, with the bundled model's `checksums.json`.

    python research/init_check.py            # exit 1 if any component differs from the bundled one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path

from diffrestore.pipeline.checksums import file_sha256

WEIGHTS = "diffusion_pytorch_model.safetensors"


def staged_digests(init: Path, carries: list[Path]) -> dict[str, str]:
    """sha256 of each staged component's weights, by where it is staged."""
    digests = {str(folder): file_sha256(folder / WEIGHTS) if (folder / WEIGHTS).is_file() else "no single weights file"
               for folder in init.iterdir() if (folder / "config.json").is_file()}
    for packed in carries:
        with tarfile.open(packed) as archive:
            for member in archive.getmembers():
                if member.name.endswith(WEIGHTS):
                    data = archive.extractfile(member).read()
                    digests[f"{packed}:{Path(member.name).parent}"] = hashlib.sha256(data).hexdigest()
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, default=Path("data/init"))
    parser.add_argument("--carries", type=Path, nargs="*", default=sorted(Path(".").glob(".carry*/*.tar.xz")))
    parser.add_argument("--bundled", type=Path, default=Path("diffrestore/pretrained/celebahq256"))
    args = parser.parse_args()
    if not args.init.is_dir():
        raise SystemExit(f"{args.init}: no staged warm starts (research/LOG.md, 'Next session': the setup makes them)")
    record = json.loads((args.bundled / "checksums.json").read_text())
    differ = 0
    for where, digest in sorted(staged_digests(args.init, args.carries).items()):
        name = Path(where.rsplit(":", 1)[-1]).name
        bundled = record.get(f"{name}/{WEIGHTS}")
        same = digest == bundled
        differ += not same
        state = "the bundled one" if same else f"NOT the bundled one ({digest[:12]} against {str(bundled)[:12]})"
        print(f"{where}: {state}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
