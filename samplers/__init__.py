"""The design card's name for the reverse-diffusion samplers; they live in ``diffrestore.sampling``."""

from diffrestore.sampling import *  # noqa: F401,F403
from diffrestore.sampling import __all__  # noqa: F401
