from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import ROOT


@pytest.fixture
def fault_dir() -> Iterator[Path]:
    """A scratch directory the embedded server's system user can reach (pytest's tmp_path is
    0700 root-only when tests run as root)."""
    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
