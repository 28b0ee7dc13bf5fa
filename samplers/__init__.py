"""Reverse-diffusion samplers: small functions of models, latents and a schedule (no I/O)."""
