"""Ray is an extra: ``import fastcnn`` and ``fastcnn.load`` never import it (it takes seconds and
is not installed by a plain ``pip install fastcnn``)."""
from __future__ import annotations

import subprocess
import sys


def test_fastcnn_and_load_do_not_import_ray():
    code = "import sys, fastcnn; fastcnn.load; fastcnn.Engine; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
