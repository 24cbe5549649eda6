"""Logging for workflow entry points: the rule's log file and stderr, nothing else."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def logging_to(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send log records to ``path`` and stderr; log any exception with its traceback, then
    re-raise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    previous = root.level
    root.setLevel(level)
    try:
        yield logging.getLogger("hybridland")
    except BaseException:
        logging.getLogger("hybridland").exception("failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous)
