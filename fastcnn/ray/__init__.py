"""fastcnn on Ray: batch inference on Ray Data, online serving on Ray Serve.

Installed with the extra ``fastcnn[ray]``. ``import fastcnn`` never imports this package (nor
Ray, which takes seconds to import); ``import fastcnn.ray`` does.

- :class:`Predictor`: a callable class for ``ray.data.Dataset.map_batches``; each actor builds
  its engine once (on the GPU when Ray assigned it one) and returns logits or the top-k
  classes per row, keeping each row's id, with an ``error`` column instead of a dead job.
- :func:`classify`: image files (or a dataset of them) -> decode, preprocess, infer -> rows
  of ``id``, the answer and ``error``, optionally written as Parquet.
"""
from fastcnn.ray._require import require_ray

require_ray()

from fastcnn.ray.pipeline import classify  # noqa: E402  (after the check, for its message)
from fastcnn.ray.predictor import Predictor  # noqa: E402

__all__ = ["Predictor", "classify"]
