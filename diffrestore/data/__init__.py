"""Training and test data: face folders, the degradation model (blur, resize, noise, JPEG) and batches of pairs."""
