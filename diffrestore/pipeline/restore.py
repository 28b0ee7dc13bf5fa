"""Restore faces in images: the driver behind ``sample.py`` and the evaluation helpers.

``FaceRestorer(pipeline, options)`` restores

- aligned faces (``restore_aligned``): resized to the model's resolution if needed, restored as is
  (``restore_photos`` gives them back at the input's size times ``upscale``);
- whole photos (``restore_photo`` / ``restore_photos``): MTCNN finds every face, each is aligned to
  the pipeline's template at its resolution, ALL faces of all the photos given are restored together
  in batches of ``batch_size``, then warped back and blended with a feathered mask into the photo
  upscaled (bicubic) by ``upscale``, keeping the photo's own detail finer than the model's resolution
  (``detail``, see ``faces.paste_faces``). A photo without faces comes back upscaled and otherwise unchanged.
  ``only_center_face`` restores only the face nearest the photo's centre.

With ``aligned=None`` (the default) each image is classified on its own: it is treated as an aligned
face when it is square and MTCNN finds either no face (too degraded to detect) or exactly one face
whose landmarks already sit on the model's template (scaled to the image size) within a tolerance;
otherwise it is a whole photo. Force a mode with ``aligned=True`` / ``False`` (``--aligned`` / ``--whole``).

``restore_photos`` is three steps that a folder loop runs on different threads (``cli.folder``): ``prepare``
(detect and align one image), ``restore_faces_of`` (the model on the faces of several prepared images) and
``assemble`` (paste back or resize one image). Under CUDA graphs (``compile`` reduce-overhead, or auto on
CUDA) every model call is padded to a power of two faces (at most ``batch_size``), so that few shapes are captured.

Every face gets its own random generator seeded from ``seed`` and a key (the file's relative path and
the face's index), so a face's result does not depend on the batch it was restored in, on the order
of the files, or on whether an interrupted run was resumed. (Bit for bit on the CPU; on CUDA, batch
size and the non-deterministic backward kernels used by identity guidance can change the last bits.)
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..sampling import SCHEDULERS

from .faces import (DetectedFace, FaceDetector, align_faces, alignment_matrix, center_face, paste_faces,
                    upscale_image)
from ..models.builders import load_template
from ..geometry import similarity_transform
from ..io import as_grey, is_grey, pil_to_tensor, tensor_to_pil
from .options import DTYPES, RestoreOptions
from .pipeline_diffrestore import DiffRestorePipeline
from .processing import resize_face


@dataclass
class Restoration:
    image: Image.Image
    num_faces: int
    mode: str  # "aligned" | "whole"
    note: str = ""
    input_faces: Optional[Tensor] = None  # (num_faces, 3, R, R): the aligned crops the model restored
    restored_faces: Optional[Tensor] = None  # (num_faces, 3, R, R): what it made of them
    failure: str = ""  # set when the model's output is unusable (NaN/Inf, constant): nothing to save


@dataclass
class PreparedImage:
    """An image made ready for the model by ``FaceRestorer.prepare`` (thread-safe, so a folder's next
    images are prepared while the model runs): its mode, its faces aligned at the model's resolution
    and what pasting them back needs."""

    photo: Image.Image
    key: str
    mode: str  # "aligned" | "whole"
    matrices: list[np.ndarray]  # whole photos: photo -> face matrices
    note: str
    faces: Optional[Tensor]  # (num_faces, 3, R, R) in [-1, 1]; None when a photo has no face

    @property
    def num_faces(self) -> int:
        return 0 if self.faces is None else len(self.faces)

    @property
    def face_keys(self) -> list[str]:
        if self.mode == "aligned":
            return [self.key]
        return [f"{self.key}#{i}" for i in range(self.num_faces)]


def face_problem(faces: Tensor) -> str:
    """Why restored faces (N, 3, R, R) in [-1, 1] are unusable, or "": broken weights give NaN / Inf or a
    face collapsed to one colour, which would otherwise be saved as a black image."""
    for i, face in enumerate(faces):
        if not torch.isfinite(face).all():
            return f"the model's output for face {i} is not finite (NaN/Inf): are its weights corrupted?"
        if float(face.amax() - face.amin()) < 2 / 255:
            return f"the model's output for face {i} is one flat colour: are its weights corrupted?"
    return ""


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def idle_cores() -> int:
    """The cores the 1-minute load average leaves idle, at least 1 (all of them where it is unknown).

    The default thread count on the CPU (benchmarks/RESULTS.md, "Issue 31: CPU threads", 2 cores): one thread
    beside another busy process was up to 40 % faster than two, two on an idle machine up to 30 % faster."""
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return cores
    return max(1, min(cores, cores - round(busy)))


def set_threads(threads: Optional[int], device: torch.device, pipelined: bool = False) -> None:
    """torch's CPU threads for this process: ``threads``; else ``idle_cores()`` when restoring on the CPU; on a
    GPU one under the threaded folder loop (``pipelined``), whose reader and writer threads would each start
    torch's whole intra-op pool for their resizes (16 x 16 on a 16-core machine: aligned faces 59.9 -> 84.9
    faces/s on an H100, benchmarks/RESULTS.md, session 14), else torch's own default. Process-wide: the command
    calls it, a library user may."""
    if not threads:
        threads = idle_cores() if device.type == "cpu" else 1 if pipelined else None
    if threads is None:
        return
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # torch allows it once, before any inter-op work: later calls keep the first value
        pass


def resolve_compile(mode: Optional[str], device: torch.device) -> Optional[str]:
    """The torch.compile mode of the UNet: ``auto`` is reduce-overhead (CUDA graphs) on CUDA, eager elsewhere."""
    if mode == "auto":
        return "reduce-overhead" if device.type == "cuda" else None
    return mode


def padded_size(count: int, batch_size: int) -> int:
    """The batch ``count`` faces run in under CUDA graphs: the next power of two, at most ``batch_size``
    (a graph is captured per shape: log2(batch_size) + 1 of them at most, a single face stays a batch of 1)."""
    return min(batch_size, 1 << max(0, count - 1).bit_length())


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose auto or one of {sorted(DTYPES)}")
    return DTYPES[name]


def face_seed(seed: int, key: str) -> int:
    """The seed of the face with ``key`` (its file's relative path, ``#i`` for the i-th face of a photo)."""
    return (int(seed) + zlib.crc32(key.encode("utf-8"))) % (2 ** 63)


def framing_matrix(framing: str, image_size: int, template: np.ndarray) -> np.ndarray:
    """Image pixels -> model-face pixels: the similarity from the ``framing`` template (at the
    image's size) onto the model's ``template``."""
    return alignment_matrix(load_template(framing, image_size), template)


class FaceRestorer:
    """Restores aligned faces and whole photos with ``pipeline`` and ``options``. The pipeline is cast
    and moved as the options say; ``options.scheduler`` swaps in another scheduler on a copy of it."""

    def __init__(self, pipeline: DiffRestorePipeline, options: RestoreOptions,
                 detector: Optional[FaceDetector] = None) -> None:
        options.check()
        self.options = options
        self.device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, self.device)
        if pipeline.dtype != dtype:
            pipeline.cast(dtype)
        if options.scheduler is not None:  # a name of SCHEDULERS: options.check() refuses any other
            scheduler = SCHEDULERS[options.scheduler].from_config(pipeline.scheduler.config)
            pipeline = pipeline.with_components(scheduler=scheduler)
        compile_mode = resolve_compile(options.compile, self.device)
        self.pipeline = pipeline.to(self.device).optimize(compile_mode=compile_mode)
        self.fixed_shapes = compile_mode == "reduce-overhead"  # pad batches: no new CUDA graph per size
        self.pipeline.set_progress_bar_config(disable=True)
        self.resolution = int(pipeline.config.resolution)
        template = pipeline.config.template
        self.template = None if template is None else np.asarray(template, dtype=np.float64)
        # MTCNN runs on the CPU unless a GPU is in use: it is small and its CPU path is robust.
        self.detector = detector or FaceDetector("cuda" if self.device.type == "cuda" else "cpu",
                                                 options.min_face_size, options.detection_threshold)

    @classmethod
    def from_options(cls, options: RestoreOptions) -> "FaceRestorer":
        """Load ``options.model`` (None: the bundled model) in the options' dtype."""
        dtype = resolve_dtype(options.dtype, resolve_device(options.device))
        return cls(DiffRestorePipeline.from_pretrained(options.model, dtype=dtype), options)

    # ----------------------------------------------------------------------------------------------
    # the model

    def _restore_faces(self, faces: Tensor, keys: Sequence[str]) -> Tensor:
        """(N, 3, R, R) aligned faces -> restored (N, 3, R, R) float32 on the CPU, in batches."""
        size = self.options.batch_size
        out = []
        for start in range(0, len(faces), size):
            generators = [torch.Generator().manual_seed(face_seed(self.options.seed, key))
                          for key in keys[start:start + size]]
            out.append(self._restore_padded(faces[start:start + size].to(self.device), generators).float().cpu())
        return torch.cat(out) if out else faces.new_zeros((0, 3, self.resolution, self.resolution))

    def _restore_padded(self, faces: Tensor, generators: list[torch.Generator]) -> Tensor:
        """``restore_batch``, run at ``padded_size`` faces under fixed shapes (copies of the last face, whose
        results are dropped: each face has its own generator, so the others do not change)."""
        missing = padded_size(len(faces), self.options.batch_size) - len(faces) if self.fixed_shapes else 0
        if missing <= 0:
            return self.restore_batch(faces, generators)
        padding = faces[-1:].expand(missing, -1, -1, -1)
        spare = [torch.Generator().manual_seed(0) for _ in range(missing)]
        return self.restore_batch(torch.cat([faces, padding]), generators + spare)[:len(faces)]

    def restore_batch(self, faces: Tensor, generators: list[torch.Generator]) -> Tensor:
        """One batch of aligned faces at the model's resolution -> restored, in [-1, 1]: the pipeline
        call with the options' sampling settings (the sweeps' ablations override this)."""
        return self.pipeline(faces, self.options, generator=generators, output_type="pt").images

    # ----------------------------------------------------------------------------------------------
    # public API

    def restore_aligned(self, images: Sequence[Image.Image | Tensor], keys: Optional[Sequence[str]] = None
                        ) -> list[Tensor]:
        """Aligned faces (PIL or (3, H, W) tensors in [-1, 1], any size) -> restored (3, R, R) tensors."""
        keys = list(keys) if keys is not None else [str(i) for i in range(len(images))]
        tensors = [pil_to_tensor(im) if isinstance(im, Image.Image) else im.float().cpu() for im in images]
        if not tensors:
            return []
        batch = torch.stack([resize_face(t, self.resolution) for t in tensors])
        return list(self._restore_faces(batch, keys))

    def restore_framed(self, images: Sequence[Tensor], keys: Sequence[str], framing: str) -> list[Tensor]:
        """Square faces (3, S, S) in [-1, 1] aligned to the ``framing`` template (a test set's, e.g.
        ``ffhq_512``): each is cropped into the model's framing, restored (one batch) and pasted back
        at S px with the photo path's blend, as a photo whose face position is known."""
        o = self.options
        matrices = [framing_matrix(framing, image.shape[-1], self.template) for image in images]
        crops = [align_faces(image, [m], self.resolution) for image, m in zip(images, matrices)]
        faces = self.restore_aligned([crop[0] for crop in crops], list(keys))
        return [paste_faces(upscale_image(image, o.upscale), face[None], [m], o.upscale, o.feather, aligned=crop,
                            detail=o.detail)
                for image, m, crop, face in zip(images, matrices, crops, faces)]

    def restore_photo(self, photo: Image.Image, key: str = "0") -> tuple[Image.Image, int]:
        """A whole photo -> (restored photo upscaled by ``upscale``, number of faces restored)."""
        result = self.restore_photos([photo], [key], aligned=False)[0]
        return result.image, result.num_faces

    def restore_photos(self, photos: Sequence[Image.Image], keys: Optional[Sequence[str]] = None,
                       aligned: Optional[bool] = None) -> list[Restoration]:
        """Restore several images at once (every face of every photo batched together); grey images
        come back grey.
        ``aligned``: True / False forces the mode, None decides per image (see the module docstring)."""
        keys = list(keys) if keys is not None else [str(i) for i in range(len(photos))]
        return self.restore_prepared([self.prepare(photo, key, aligned) for photo, key in zip(photos, keys)])

    def prepare(self, photo: Image.Image, key: str, aligned: Optional[bool] = None) -> PreparedImage:
        """Everything before the model for one image: its mode (detection) and its faces aligned at the
        model's resolution. Safe to call from several threads while the model runs."""
        mode, matrices, note = self._plan(photo, aligned)
        if mode == "aligned":
            faces = resize_face(pil_to_tensor(photo), self.resolution)[None]
        else:
            faces = align_faces(pil_to_tensor(photo), matrices, self.resolution) if matrices else None
        return PreparedImage(photo, key, mode, matrices, note, faces)

    def restore_prepared(self, prepared: Sequence[PreparedImage]) -> list[Restoration]:
        """The model on the faces of all ``prepared`` images together, then each image put back together."""
        return [self.assemble(item, faces) for item, faces in zip(prepared, self.restore_faces_of(prepared))]

    def restore_faces_of(self, prepared: Sequence[PreparedImage]) -> list[Optional[Tensor]]:
        """The model on the faces of all ``prepared`` images together: each image's restored faces (None
        for an image without any), float32 on the CPU."""
        with_faces = [item for item in prepared if item.faces is not None]
        keys = [key for item in with_faces for key in item.face_keys]
        restored = self._restore_faces(torch.cat([item.faces for item in with_faces]), keys) if with_faces else None
        faces, used = [], 0
        for item in prepared:
            faces.append(restored[used:used + item.num_faces] if item.num_faces else None)
            used += item.num_faces
        return faces

    def assemble(self, item: PreparedImage, faces: Optional[Tensor]) -> Restoration:
        """The restored image of ``item`` from its restored ``faces`` (pasted back or resized, checked, grey
        kept grey). Safe to call from several threads (the folder loop does it beside the model)."""
        if item.mode == "aligned":
            result = Restoration(tensor_to_pil(self._upscale_face(faces[0], item.photo.size)), 1, item.mode, item.note)
        else:
            result = self._paste(item.photo, faces, item.faces, item.matrices)
        result.input_faces, result.restored_faces = item.faces, faces
        result.failure = face_problem(faces) if item.num_faces else ""
        if is_grey(item.photo):  # the model tints grey faces (pink lips): a grey photo comes back grey
            result.image = as_grey(result.image)
        return result

    # ----------------------------------------------------------------------------------------------
    # helpers

    def _upscale_face(self, face: Tensor, input_size: tuple[int, int]) -> Tensor:
        """The restored face at the input's (width, height) times ``upscale``."""
        width, height = input_size
        upscale = self.options.upscale
        return resize_face(face, (max(1, round(height * upscale)), max(1, round(width * upscale))))

    def _plan(self, photo: Image.Image, aligned: Optional[bool]) -> tuple[str, list[np.ndarray], str]:
        """(mode, photo -> face matrices, note for the user) of one image."""
        if aligned is False and self.template is None:
            raise ValueError("this pipeline has no face template (config.template): whole photos cannot be aligned")
        if aligned or self.template is None:
            return "aligned", [], self._aligned_note(photo)
        detected = self.detector.detect(photo)
        if aligned is None and self.looks_aligned(photo, detected):
            note = "" if detected else "no face detected; square, so restored as an aligned face (--whole to keep it)"
            return "aligned", [], note
        if self.options.only_center_face and detected:
            detected = [center_face(detected, photo.size)]
        return "whole", [alignment_matrix(face.landmarks, self.template) for face in detected], ""

    @staticmethod
    def _aligned_note(photo: Image.Image) -> str:
        if photo.width != photo.height:
            return f"aligned face is {photo.width}x{photo.height}, not square: resized with its aspect ratio changed"
        return ""

    def looks_aligned(self, photo: Image.Image, detected: Sequence[DetectedFace]) -> bool:
        """Square, and no face found or one face already on the template (scaled to the image)."""
        if photo.width != photo.height:
            return False
        if not detected:
            return True
        if len(detected) != 1 or self.template is None:
            return False
        template = self.template * (photo.width / self.resolution)
        matrix = similarity_transform(detected[0].landmarks, template)
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        angle = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
        centre = (photo.width - 1) / 2
        shift = np.linalg.norm(matrix[:, :2] @ [centre, centre] + matrix[:, 2] - centre) / photo.width
        return abs(np.log(scale)) < 0.15 and abs(angle) < 10 and shift < 0.08

    def _paste(self, photo: Image.Image, faces: Optional[Tensor], aligned: Optional[Tensor],
               matrices: list[np.ndarray]) -> Restoration:
        """``faces``: the restored faces; ``aligned``: the crops they were restored from (for ``detail``)."""
        o = self.options
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        background = upscale_image(pil_to_tensor(photo).to(device), o.upscale)
        if not matrices:
            return Restoration(tensor_to_pil(background), 0, "whole",
                               "no face found: saved the photo upscaled, otherwise unchanged")
        pasted = paste_faces(background, faces.to(device), matrices, o.upscale, o.feather,
                             aligned=aligned.to(device), detail=o.detail)
        return Restoration(tensor_to_pil(pasted), len(matrices), "whole")


def comparison_image(lq: Image.Image, restored: Image.Image) -> Image.Image:
    """LQ (resized to the restored image's size) | restored, side by side."""
    left = lq.resize(restored.size, Image.BICUBIC) if lq.size != restored.size else lq
    canvas = Image.new("RGB", (restored.width * 2, restored.height))
    canvas.paste(left, (0, 0))
    canvas.paste(restored, (restored.width, 0))
    return canvas
