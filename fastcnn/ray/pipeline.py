"""``fastcnn.ray.classify``: image files in, one row of answers per file out, on Ray Data.

The job is read -> (decode, preprocess, infer) -> write. Files are read as raw bytes
(``read_binary_files``), not with ``read_images``, because Ray's image reader fails the read
task, and so the job, on the first corrupt file; decoding in the predictor makes a corrupt file
one row's error. Decoding runs in the inference actors: for these CNNs on a CPU, decoding is
small beside the network, and it keeps one stage and one pool to size.

The actors are restarted when they die and their unfinished batches are retried: Ray Data's
defaults for an actor pool (``max_restarts=-1``, ``max_task_retries=-1``; Ray 2.60 deprecates
passing them), on which the promise "every row exactly once" rests; the tests kill an actor
mid-job to keep that promise checked.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import ray

from fastcnn.errors import InputError
from fastcnn.ray.predictor import Predictor

PATH = "path"  # the id column of a job over files: the path each row was read from


def classify(images: "ray.data.Dataset | str | os.PathLike | Sequence[str | os.PathLike]", model: Any, *,
             top_k: int | None = 5, actors: int = 1, cpus_per_actor: float = 1, gpus_per_actor: float = 0,
             batch_size: int = 32, id_column: str | None = None, write_to: str | os.PathLike | None = None,
             **load_options: Any) -> "ray.data.Dataset":
    """Classify every image of a folder, a list of files or a dataset; returns a dataset with
    one row per image: its id, ``error`` ("" where it ran), and ``labels``/``scores``(/``names``)
    or, with ``top_k=None``, ``logits``.

    Args:
        images: a path (file or folder; local, or any filesystem Ray reads such as ``s3://``),
            a list of them, or a ``ray.data.Dataset`` with an id column and a ``bytes``, ``image``
            or ``input`` column (see :class:`Predictor`).
        model: a zoo name or an ``.onnx`` path, loaded in each actor.
        actors: the size of the actor pool (each holds one engine).
        cpus_per_actor: CPUs Ray reserves for each actor. The pool must leave some CPU free for
            the read and write tasks, or the job waits forever (refused here).
        gpus_per_actor: GPUs Ray gives each actor (the engine then runs on CUDA); 0 for the CPU.
        id_column: the dataset's id column; ``"path"`` for files (their path).
        write_to: a folder to write the answers to as Parquet; the dataset returned then
            reads them back (so the job runs once, here).
        load_options: passed to ``fastcnn.load`` in each actor (``weights``, ``backend``...).
    """
    if actors < 1 or batch_size < 1:
        raise InputError(f"classify needs actors >= 1 and batch_size >= 1, got {actors} and {batch_size}")
    _check_cpus_left(actors * cpus_per_actor)
    dataset, id_column = _as_dataset(images, id_column)
    answers = dataset.map_batches(
        Predictor, fn_constructor_kwargs=dict(model=model, top_k=top_k, id_column=id_column, **load_options),
        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
    if write_to is None:
        return answers
    answers.write_parquet(os.fspath(write_to))
    return ray.data.read_parquet(os.fspath(write_to))


def _check_cpus_left(reserved: float) -> None:
    """Refuse an actor pool that takes every CPU of the cluster: Ray Data would then hold the
    read tasks back for want of a CPU while the actors wait for their input, for ever."""
    if not ray.is_initialized():
        ray.init()  # what Ray Data does on first use: join this machine's cluster, or start a local one
    total = ray.cluster_resources().get("CPU", 0)
    if reserved >= total:
        raise InputError(f"the actor pool reserves {reserved:g} CPUs of the cluster's {total:g}, leaving none to "
                         "read and write with: use fewer actors or a smaller cpus_per_actor (e.g. 0.5)")


def _as_dataset(images: Any, id_column: str | None) -> tuple["ray.data.Dataset", str]:
    if isinstance(images, ray.data.Dataset):
        return images, id_column or "id"
    paths = [os.fspath(images)] if isinstance(images, (str, os.PathLike)) else [os.fspath(p) for p in images]
    if not paths:
        raise InputError("classify got an empty list of image paths")
    return ray.data.read_binary_files(paths, include_paths=True), id_column or PATH
