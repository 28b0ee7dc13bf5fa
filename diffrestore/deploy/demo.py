"""``diffrestore-demo``: the restorer in a web page (Gradio; ``pip install -e ".[demo]"``).

    diffrestore-demo [--host 127.0.0.1] [--port 7860] [--model NAME|DIR] [--device auto] [key=value ...]

Upload photos or aligned faces (or click an example of ``examples/lq``), choose the mode (auto, aligned,
whole photo), the fidelity (the CLI's ``--fidelity``), the preset and the seed, press Restore: a
before/after slider for each photo and each face it found, the restored images to download, and the
CLI's messages for files it cannot use. ``key=value`` overrides any ``RestoreOptions`` field after
the page's settings (``steps=2`` makes a cheap demo for tests). It serves 127.0.0.1 unless ``--host``
says otherwise, refuses uploads over ``--max-upload-mb`` and images over ``--max-side`` pixels a side,
and writes only under its own temporary folder (Gradio's uploads included), removed when it stops.
A face restored here is the face ``diffrestore --lq FILE`` gives with the same settings (same seed key).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor

from ..cli.files import UsageError
from ..cli.options import DEFAULT_PRESET, PRESET_DIR, check_options, fidelity_options, load_preset
from ..config import merge_config
from ..io import ImageLoadError, load_image, tensor_to_pil
from ..pipeline import RestoreOptions
from ..pipeline.restore import FaceRestorer, Restoration
from ..sampling import respaced_timesteps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lq"
MODES = {"auto": None, "aligned": True, "whole photo": False}
DEFAULT_FIDELITY = 0.5  # the default preset's start_t (see cli.options.FIDELITY_MAX_START_T)
Progress = Callable[[float, str], None]


@dataclass
class DemoSettings:
    """What the command line fixes for the whole session."""

    model: Optional[str] = None
    device: str = "auto"
    dtype: str = "auto"
    max_upload_mb: float = 20.0
    max_side: int = 4096
    max_files: int = 8
    overrides: list[str] = field(default_factory=list)


@dataclass
class Request:
    """What the page asks for."""

    mode: str = "auto"
    fidelity: float = DEFAULT_FIDELITY
    preset: str = DEFAULT_PRESET.stem
    seed: int = 0


def presets() -> list[str]:
    """The preset names of the checkout (``configs/sample``); an installed wheel has only the defaults."""
    names = sorted(path.stem for path in PRESET_DIR.glob("*.yaml")) if PRESET_DIR.is_dir() else []
    return names or [DEFAULT_PRESET.stem]


def example_files() -> list[Path]:
    return sorted(path for path in EXAMPLES.glob("*") if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))


def restore_options(settings: DemoSettings, request: Request) -> RestoreOptions:
    """The preset, then the page's fidelity, seed and mode, then the command line's ``key=value``."""
    if request.mode not in MODES:
        raise UsageError(f"mode {request.mode!r}: must be one of {', '.join(MODES)}")
    if request.preset not in presets():
        raise UsageError(f"preset {request.preset!r}: must be one of {', '.join(presets())}")
    preset = PRESET_DIR / f"{request.preset}.yaml"
    flags = {**fidelity_options(float(request.fidelity)), "seed": int(request.seed), "aligned": MODES[request.mode],
             "model": settings.model, "device": settings.device, "dtype": settings.dtype}
    cfg = merge_config(load_preset(preset if preset.is_file() else None), flags, list(settings.overrides),
                       source="demo")
    options = RestoreOptions(**OmegaConf.to_container(cfg, resolve=True))
    check_options(options)
    return options


def check_upload(path: Path, settings: DemoSettings) -> Image.Image:
    """The uploaded image, or ``ImageLoadError`` naming the file as the user called it."""
    name = path.name
    size_mb = path.stat().st_size / 2 ** 20
    if size_mb > settings.max_upload_mb:
        raise ImageLoadError(name, f"{size_mb:.1f} MB; the demo takes files up to {settings.max_upload_mb:g} MB "
                                   "(diffrestore --lq FILE takes any size)")
    try:
        with Image.open(path) as header:
            width, height = header.size
    except Exception:  # noqa: BLE001 - load_image below says what is wrong, in the CLI's words
        width = height = 0
    if max(width, height) > settings.max_side:
        raise ImageLoadError(name, f"{width}x{height} px; the demo takes images up to {settings.max_side} px a "
                                   "side (diffrestore --lq FILE takes any size)")
    try:
        return load_image(path)
    except ImageLoadError as err:
        raise ImageLoadError(name, err.problem) from err


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with a repeated one numbered (``face.png``, ``face (2).png``): each names its own results."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{Path(name).stem} ({seen[name]}){Path(name).suffix}")
    return unique


class ProgressRestorer(FaceRestorer):
    """A ``FaceRestorer`` that reports the pipeline's denoising steps to ``progress``."""

    progress: Optional[Progress] = None

    def restore_batch(self, faces: Tensor, generators: list) -> Tensor:
        if self.progress is None:
            return super().restore_batch(faces, generators)
        report, total = self.progress, len(respaced_timesteps(int(self.options.start_t), int(self.options.steps)))

        def on_step(pipe: Any, step: int, timestep: int, state: dict) -> dict:
            report((step + 1) / total, f"denoising {len(faces)} face(s): step {step + 1} of {total}")
            return {}

        return self.pipeline(faces, self.options, generator=generators, output_type="pt",
                             callback_on_step_end=on_step).images


class DemoApp:
    """The model (loaded once), the session's folder and the restore behind the page's button."""

    def __init__(self, settings: DemoSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.pipeline = None
        self.detector = None

    def restorer(self, options: RestoreOptions, progress: Optional[Progress] = None):
        """A ``FaceRestorer`` with ``options`` on the pipeline loaded at the first request."""
        if self.pipeline is None:
            first = ProgressRestorer.from_options(options)
            self.pipeline, self.detector = first.pipeline, first.detector
        restorer = ProgressRestorer(self.pipeline, options, detector=self.detector)
        restorer.progress = progress
        return restorer

    def restore(self, paths: Sequence[str | Path], request: Request, progress: Optional[Progress] = None
                ) -> "DemoResult":
        """Restore the uploaded files; a bad file is reported by name and the others go on."""
        if not paths:
            raise UsageError("no image: upload photos or aligned faces, or click an example")
        if len(paths) > self.settings.max_files:
            raise UsageError(f"{len(paths)} files; the demo restores up to {self.settings.max_files} at a time")
        options = restore_options(self.settings, request)
        result = DemoResult(self.workdir / uuid.uuid4().hex)
        loaded = []
        for path, name in zip(map(Path, paths), unique_names([Path(path).name for path in paths])):
            try:
                loaded.append((name, check_upload(path, self.settings)))
            except (ImageLoadError, OSError) as err:
                result.failed.append(str(err))
        if loaded:
            restorations = self.restorer(options, progress).restore_photos(
                [image for _, image in loaded], [name for name, _ in loaded], aligned=options.aligned)
            for (name, image), restoration in zip(loaded, restorations):
                result.add(name, image, restoration)
        return result


@dataclass
class DemoResult:
    """What one press of Restore made: before/after pairs (label -> two PNG paths), the restored files and
    the messages, all under ``folder``."""

    folder: Path
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    faces: int = 0
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def save(self, image: Image.Image, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        image.save(path)
        return str(path)

    def add(self, name: str, image: Image.Image, restoration: Restoration) -> None:
        stem = Path(name).stem
        restored = self.save(restoration.image, f"{stem}_restored.png")
        before = image.resize(restoration.image.size, Image.BICUBIC)
        self.pairs[f"{name} (photo)" if restoration.mode == "whole" else name] = (
            self.save(before, f"{stem}_before.png"), restored)
        if restoration.mode == "whole":
            for i in range(restoration.num_faces):
                self.pairs[f"{name} face {i + 1}"] = (
                    self.save(tensor_to_pil(restoration.input_faces[i]), f"{stem}_face{i:02d}_input.png"),
                    self.save(tensor_to_pil(restoration.restored_faces[i]), f"{stem}_face{i:02d}_restored.png"))
        self.files.append(restored)
        self.faces += restoration.num_faces
        if restoration.note:
            self.notes.append(f"{name}: {restoration.note}")

    def message(self) -> str:
        """The CLI's summary: what was done, its notes and each file that failed, one line each."""
        lines = [f"done {len(self.files)} ({self.faces} faces), failed {len(self.failed)}"]
        lines += [f"note: {note}" for note in self.notes] + [f"FAILED {failure}" for failure in self.failed]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the page


def build_demo(app: DemoApp):
    """The Gradio page of ``app``; the button's API name is ``/restore``."""
    import gradio as gr

    def run(files, mode, fidelity, preset, seed, progress=gr.Progress()):
        request = Request(mode, float(fidelity), preset, int(seed))
        try:
            result = app.restore([_path(f) for f in files or []], request,
                                 lambda fraction, text: progress(fraction, desc=text))
        except UsageError as err:
            raise gr.Error(str(err)) from None
        except Exception as err:  # noqa: BLE001 - a message on the page, not a traceback
            raise gr.Error(f"{type(err).__name__}: {err}") from None
        labels = list(result.pairs)
        first = result.pairs[labels[0]] if labels else None
        return (first, gr.update(choices=labels, value=labels[0] if labels else None), result.files,
                result.files, result.message(), result.pairs)

    with gr.Blocks(title="diffrestore", analytics_enabled=False) as demo:
        gr.Markdown("# diffrestore\nBlind face restoration with a latent diffusion prior. Upload photos or "
                    "aligned faces, or click an example, then press **Restore**.")
        pairs = gr.State({})
        with gr.Row():
            with gr.Column():
                files = gr.File(label="Photos or aligned faces", file_count="multiple", file_types=["image"],
                                elem_id="upload")
                mode = gr.Radio(list(MODES), value="auto", label="Mode", elem_id="mode")
                fidelity = gr.Slider(0, 1, value=DEFAULT_FIDELITY, step=0.05, elem_id="fidelity",
                                     label="Fidelity (0: the prior's realism, 1: closest to the input)")
                preset = gr.Dropdown(presets(), value=DEFAULT_PRESET.stem, label="Preset", elem_id="preset")
                seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                button = gr.Button("Restore", variant="primary", elem_id="restore")
                if example_files():
                    gr.Examples([[[str(path)]] for path in example_files()], inputs=[files], label="Examples")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="slider")
                choice = gr.Dropdown([], label="Photo or face", elem_id="choice")
                gallery = gr.Gallery(label="Restored", columns=4, height=240, object_fit="contain", elem_id="gallery")
                downloads = gr.File(label="Download", file_count="multiple", elem_id="downloads")
                message = gr.Textbox(label="Messages", lines=3, elem_id="message")
        button.click(run, [files, mode, fidelity, preset, seed], [slider, choice, gallery, downloads, message, pairs],
                     api_name="restore")
        choice.change(lambda label, known: known.get(label), [choice, pairs], [slider], api_name=False)
    return demo


def _path(file: Any) -> str:
    """An uploaded file as Gradio hands it over (a path, or an object with ``.name``)."""
    return file if isinstance(file, str) else getattr(file, "path", None) or file.name


# --------------------------------------------------------------------------------------------------
# the command


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to serve (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--model", help="pipeline folder, or the name of a bundled model (default: the bundled default)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--max-upload-mb", type=float, default=DemoSettings.max_upload_mb)
    p.add_argument("--max-side", type=int, default=DemoSettings.max_side, help="largest image side, pixels")
    p.add_argument("--max-files", type=int, default=DemoSettings.max_files, help="images per request")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any RestoreOptions field (after the page's)")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> DemoSettings:
    settings = DemoSettings(args.model, args.device, args.dtype, args.max_upload_mb, args.max_side, args.max_files,
                            list(args.overrides))
    for name in ("max_upload_mb", "max_side", "max_files"):
        if getattr(settings, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(settings, name)}: must be > 0")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be in 1..65535")
    restore_options(settings, Request())  # every option checked before anything loads
    return settings


def keep_files_in(workdir: Path) -> None:
    """Send what this process and its libraries write to ``workdir``: Gradio's uploads and served files
    (GRADIO_TEMP_DIR), matplotlib's font cache (Gradio imports it), every later ``tempfile`` user; no
    analytics, no onnxruntime telemetry (diffusers' pipeline loading imports it; it keeps a device id
    under ~/.cache)."""
    scratch = workdir / "tmp"
    scratch.mkdir()
    os.environ.update(GRADIO_TEMP_DIR=str(workdir / "gradio"), GRADIO_ANALYTICS_ENABLED="False",
                      ORT_DISABLE_TELEMETRY="1", TMPDIR=str(scratch),
                      MPLCONFIGDIR=str(workdir / "matplotlib"))
    tempfile.tempdir = str(scratch)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from(args)
    except (UsageError, ValueError) as err:
        print(f"diffrestore-demo: {err}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="diffrestore-demo-"))
    keep_files_in(workdir)
    try:
        app = DemoApp(settings, workdir / "results")
        app.restorer(restore_options(settings, Request()))  # load the model before serving
        demo = build_demo(app)
        demo.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=args.port, max_file_size=int(settings.max_upload_mb * 2 ** 20),
            allowed_paths=[str(app.workdir), *([str(EXAMPLES)] if EXAMPLES.is_dir() else [])], show_error=True)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
