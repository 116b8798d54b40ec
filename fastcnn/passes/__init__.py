"""IR -> IR rewrites: one pass per module, run in the order of :data:`PASSES`.

The passes decide *what* runs (which ops fuse into one launch, where each tensor lives);
the backends decide *how*. They see only :mod:`fastcnn.ir`.
"""
from fastcnn.passes.pipeline import (
    DISABLE_ENV,
    PASSES,
    PIPELINES,
    PassError,
    check_pass_names,
    disabled_from_env,
    run_pipeline,
)

__all__ = ["DISABLE_ENV", "PASSES", "PIPELINES", "PassError", "check_pass_names", "disabled_from_env", "run_pipeline"]
