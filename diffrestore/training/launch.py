"""``python train.py --processes N``: train.py's own launcher of ``accelerate launch``.

``accelerate launch`` turns any failing exit status of its script into a traceback of its own and exit 1,
so a one-line error of train.py (a missing data folder, a bad key) reached the user as 20 lines and the
wrong status. Under this launcher the workers record the status of an error they reported (its one line,
printed by the main process) in a file and exit 0, so accelerate adds nothing, and the launcher exits
with the recorded status.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

STATUS_FILE_ENV = "DIFFRESTORE_TRAIN_STATUS_FILE"


def launched() -> bool:
    """This process is a worker of a launcher (this one or accelerate's): it trains, it does not launch."""
    return any(name in os.environ for name in (STATUS_FILE_ENV, "LOCAL_RANK", "ACCELERATE_MIXED_PRECISION"))


def is_main_process() -> bool:
    """Before the Accelerator exists: rank 0 of a launch, or no launch."""
    return os.environ.get("RANK", "0") == "0"


def report_status(code: int) -> int:
    """The exit status for this process: under :func:`launch` ``code`` is recorded and 0 returned."""
    status_file = os.environ.get(STATUS_FILE_ENV)
    if not status_file or code == 0:
        return code
    Path(status_file).write_text(f"{code}\n")
    return 0


def accelerate_command(script: Path, args: Sequence[str], processes: int, cpu: bool) -> list[str]:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    # one process: the simple launcher (--cpu honoured); several: DDP (on CPUs through ACCELERATE_USE_CPU)
    mode = ["--multi_gpu"] if processes > 1 else (["--cpu"] if cpu else [])
    threads = ["--num_cpu_threads_per_process", str(max(1, (os.cpu_count() or 1) // processes))] if cpu else []
    return [accelerate, "launch", "--quiet", *mode, *threads, "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), *args]


def launch(script: Path, args: Sequence[str], processes: int) -> int:
    """Run ``script args`` under ``accelerate launch`` on ``processes`` processes; its exit status."""
    import torch

    cpu = not torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="diffrestore-train-") as folder:
        status_file = Path(folder) / "status"
        env = dict(os.environ, **{STATUS_FILE_ENV: str(status_file)}, **({"ACCELERATE_USE_CPU": "1"} if cpu else {}))
        process = subprocess.Popen(accelerate_command(script, args, processes, cpu), env=env)
        while True:
            try:
                code = process.wait()
                break
            except KeyboardInterrupt:  # the workers got it too: they save a checkpoint and report
                continue
        return int(status_file.read_text()) if status_file.is_file() else code
