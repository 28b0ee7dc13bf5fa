"""NIQE (no reference) of the restored faces and of their partners, with the shipped pristine model."""

from __future__ import annotations


from .. import niqe as N
from ..registry import Metric, register_metric


def niqe_model(scoring) -> N.NIQEModel:
    def load() -> N.NIQEModel:
        model = scoring.niqe_model
        if isinstance(model, N.NIQEModel):
            return model
        return N.NIQEModel.load(model) if model is not None else N.default_model()

    return scoring.once("niqe", load)


def too_small(scoring) -> str | None:
    patch_size = scoring.niqe_model.patch_size if isinstance(scoring.niqe_model, N.NIQEModel) else N.PATCH_SIZE
    width, height = scoring.first_size()
    if min(width, height) < 2 * patch_size:
        return f"niqe skipped: needs images of at least {2 * patch_size} px a side, these are {width}x{height}"
    return None


def model_protocol(scoring) -> dict:
    model = niqe_model(scoring)
    info = model.provenance or {}
    return {"niqe": f"NIQE (Mittal et al. 2013), {model.patch_size}-px patches, pristine model fitted on "
                    f"{info.get('n_images', '?')} images of {info.get('source', '?')} "
                    f"({info.get('n_patches', '?')} patches); lower is better; not comparable with NIQE of the "
                    "paper's pristine set"}


def scores(faces, scoring) -> dict[str, float]:
    model = niqe_model(scoring)
    row = {"niqe": model.score(faces.restored)}
    row.update({f"niqe_{which}": model.score(image) for which, image in (("gt", faces.gt), ("lq", faces.lq))
                if image is not None})
    return row


register_metric(Metric(
    "niqe", ("niqe", "niqe_gt", "niqe_lq"), "lower",
    "NIQE, distance of the image's natural-scene statistics to a pristine model", reads=("restored", "gt", "lq"),
    unavailable=too_small, optional=True, protocol=model_protocol, per_image=scores))
