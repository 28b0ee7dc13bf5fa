#!/usr/bin/env python
"""Write ``checksums.json`` (sha256 of every safetensors file) into pipeline folders, e.g. after
``diffrestore-assemble`` into ``diffrestore/pretrained/NAME``: ``python research/write_checksums.py DIR [DIR ...]``."""

import sys

from diffrestore.pipeline.checksums import write_checksums

if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(write_checksums(folder))
