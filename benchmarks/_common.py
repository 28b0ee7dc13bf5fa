"""What every benchmark shares: timing with device syncs, the machine header, tables and RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# Dense bf16 tensor-core peak (no sparsity), FLOP/s, from the vendors' data sheets.
BF16_PEAK = {"H100 80GB HBM3": 989.4e12, "H100 SXM": 989.4e12, "H100 PCIe": 756.0e12, "H100 NVL": 835.0e12,
             "H200": 989.4e12, "A100": 312.0e12, "L40S": 362.0e12, "RTX 4090": 165.2e12}


def with_root_on_path() -> dict:
    """The environment for a child process that imports this checkout (before any other path: the GPU
    machines add their wheels' folder to PYTHONPATH)."""
    paths = [str(RESULTS.parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3) -> float:
    """Median wall seconds of ``fn()`` after ``warmup`` untimed calls, with the device synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - tic)
    return sorted(times)[len(times) // 2]


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` (matmuls and convolutions, 2 per multiply-add) by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    # Eager: the first call of a compiled model must not be traced under the counter's dispatch mode,
    # where a failure (suppressed by the trainer) would leave the model eager for the whole benchmark.
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def bf16_peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    matches = [peak for key, peak in BF16_PEAK.items() if key in name]
    return matches[0] if matches else None


def machine_header(device: torch.device) -> str:
    """One line naming the date, hardware and software versions a result was measured with."""
    import diffusers

    if device.type == "cuda":
        hardware = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(device)}"
    else:
        hardware = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    versions = f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}"
    return f"{datetime.date.today().isoformat()} · {hardware} · {versions}"


def markdown_table(rows: Sequence[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def report(title: str, header: str, settings: str, rows: Sequence[dict], append: bool,
           results: Path | None = None) -> None:
    """Print the result table; with ``append`` also add it to ``results`` (default benchmarks/RESULTS.md)."""
    text = f"### {title}\n\n{header}\n\n{settings}\n\n{markdown_table(rows)}\n"
    print(text, flush=True)
    if append and int(os.environ.get("RANK", "0")) == 0:
        with open(results or RESULTS, "a") as handle:
            handle.write("\n" + text)
