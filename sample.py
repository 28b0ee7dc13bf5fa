#!/usr/bin/env python
"""Restore faces from a checkout: ``python sample.py --lq photos/ [options]``, the same as the
``diffrestore`` command (``diffrestore --help``; the code is ``diffrestore/cli.py``)."""

import sys

from diffrestore.cli.restore import main

if __name__ == "__main__":
    sys.exit(main())
