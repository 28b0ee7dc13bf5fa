"""Write a seeded LQ/HQ pair set from the first N faces of a folder (PairedFaceDataset, no flips)."""
import sys
from pathlib import Path

from diffrestore.data import PairedFaceDataset
from diffrestore.degradations import DegradationConfig
from diffrestore.io import save_image

src, out, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
data = PairedFaceDataset(src, 128, DegradationConfig(), seed=0, flip=False)
for i in range(0, len(data), len(data) // n)[:n]:
    item = data[i]
    name = Path(item["path"]).stem + ".png"
    save_image(item["lq"], out / "lq" / name)
    save_image(item["hq"], out / "hq" / name)
