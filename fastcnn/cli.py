"""The ``fastcnn`` command: a thin shell over the public API."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import fastcnn
from fastcnn.api import import_source
from fastcnn.labels import top_classes
from fastcnn.model_repository import export_model_repository
from fastcnn.passes import PIPELINES, PassError, run_pipeline
from fastcnn.preprocess import decode_image
from fastcnn.runtime.plan import make_plan, no_torch_ops
from fastcnn.zoo import ONE_PER_FAMILY
from fastcnn.zoo.summary import format_table, layer_table


def _cmd_list(args: argparse.Namespace) -> None:
    for name in fastcnn.list_models(args.pattern):
        info = fastcnn.model_info(name)
        c, h, w = info.input_size
        print(f"{name:22s} {c}x{h}x{w}  {info.paper}")


def _cmd_summary(args: argparse.Namespace) -> None:
    info = fastcnn.model_info(args.model)
    model = fastcnn.create_model(args.model, seed=0)
    print(f"{info.name}: {info.paper}; input {' x '.join(map(str, info.input_size))}")
    print(format_table(layer_table(model, info.input_size), model))


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Print ``what...`` to stderr, then the seconds it took, for steps a user waits on."""
    print(f"{what}... ", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        print("failed", file=sys.stderr, flush=True)  # the error then starts a line of its own
        raise
    print(f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> None:
    """The main job: load (export, import, passes, build), run a batch, report latency and
    agreement with PyTorch."""
    is_file = args.model.endswith(".onnx") or Path(args.model).is_file()
    model = None if is_file else fastcnn.create_model(args.model, seed=0)
    dtype = None if args.dtype is None else getattr(torch, args.dtype)
    with _step(f"loading {args.model}"), tempfile.TemporaryDirectory(prefix="fastcnn-run-") as folder:
        # A zoo model is loaded by name, as a user would (its measured default backend, its
        # preprocessing), with the weights of the module it is compared with.
        weights = None if model is None else Path(folder) / "weights.pt"
        if weights is not None:
            torch.save(model.state_dict(), weights)
        engine = fastcnn.load(args.model, device=args.device, backend=args.backend, dtype=dtype, weights=weights)
    with _step(f"building and warming up (backend {engine.backend}, {engine.device})"):
        batch = _random_batch(engine.input_spec, args.batch)
        engine.warmup(autotune=True if args.autotune else None)
        output = engine.infer(batch)
    for choice in engine.kernel_choices if args.autotune else ():
        print(choice)
    with _step(f"running {args.repeat} batches"):
        times = _time_runs(engine, batch, args.repeat)
    _print_report(args, engine, batch, times)
    _print_agreement(model, batch, output)


def _cmd_plan(args: argparse.Namespace) -> None:
    """The launches and memory of a model after a pipeline, as a table (and JSON)."""
    is_file = args.model.endswith(".onnx") or Path(args.model).is_file()
    name = Path(args.model).stem if is_file else fastcnn.model_info(args.model).name
    with _step(f"importing {args.model}"):
        graph = import_source(args.model).clone()
    with _step(f"running the {args.pipeline!r} pipeline"):
        try:
            run_pipeline(graph, args.pipeline)
        except PassError as exc:
            raise fastcnn.UnsupportedModelError(f"{exc}; this is a bug in fastcnn, `--pipeline none` "
                                                "plans the graph as imported") from exc
    plan = make_plan(graph, batch=args.batch, name=name, torch_ops=_torch_ops(args.pipeline))
    print(f"{plan.name}: pipeline {args.pipeline}, batch {plan.batch}, {plan.dtype}")
    print(plan.format_table())
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": args.pipeline, **plan.to_dict()}, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


def _torch_ops(pipeline: str) -> Callable[[Any], str | None]:
    """For the Triton engine's pipeline, which nodes it runs as torch ops (shown ``torch:<op>``)."""
    if pipeline not in ("full", "triton"):
        return no_torch_ops
    from fastcnn.backends.triton_lowering import torch_reason  # needs triton

    return torch_reason


def _random_batch(spec: "fastcnn.runtime.InputSpec", batch: int) -> torch.Tensor:
    """A seeded standard-normal batch matching ``spec`` with ``batch`` as its batch size."""
    dims = [batch if i == 0 else d for i, d in enumerate(spec.shape)]
    if not all(isinstance(d, int) for d in dims):
        raise fastcnn.InputError(f"input {spec.name!r} has dynamic sizes {spec.shape} besides the batch; "
                                 "`fastcnn run` cannot pick them")
    generator = torch.Generator().manual_seed(0)
    return torch.randn(dims, generator=generator).to(spec.dtype)


def _time_runs(engine: fastcnn.Engine, batch: torch.Tensor, repeat: int) -> list[float]:
    """Seconds per ``engine.infer(batch)``, ``repeat`` times, the device synchronized each time."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        engine.infer(batch)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        times.append(time.perf_counter() - start)
    return times


def _print_report(args: argparse.Namespace, engine: fastcnn.Engine, batch: torch.Tensor,
                  times: list[float]) -> None:
    median, best = statistics.median(times), min(times)
    shape = " x ".join(map(str, batch.shape))
    print(f"{args.model}: backend {engine.backend} on {engine.device}, input {shape} "
          f"{str(batch.dtype).removeprefix('torch.')}")
    print(f"latency per batch of {batch.shape[0]}: median {median * 1e3:.2f} ms, min {best * 1e3:.2f} ms "
          f"over {len(times)} runs after warmup; {batch.shape[0] / median:.1f} images/s")


def _print_agreement(model: torch.nn.Module | None, batch: torch.Tensor, output: torch.Tensor) -> None:
    """Relative L2 and max abs error against the zoo model in float32 on the same batch (a lower
    precision shows as its error), and top-1 agreement."""
    if model is None:
        print("agreement with PyTorch: not checked (MODEL is an ONNX file, no PyTorch model to compare with)")
        return
    with torch.no_grad():
        expected = model(batch.detach().cpu().float()).double()
    actual = output.detach().cpu().double()
    rel_l2 = float((actual - expected).norm() / expected.norm().clamp_min(1e-30))
    max_abs = float((actual - expected).abs().max())
    top1 = int((actual.argmax(1) == expected.argmax(1)).sum()) if actual.dim() == 2 else None
    agree = f", top-1 agreement {top1}/{len(actual)}" if top1 is not None else ""
    print(f"agreement with PyTorch: relative L2 error {rel_l2:.2e}, max abs error {max_abs:.2e}{agree}")


def _cmd_classify(args: argparse.Namespace) -> None:
    """The top classes of each image file; a file that is not an image is reported on stderr and
    the others are still classified (the exit status then says something failed)."""
    with _step(f"loading {args.model}"):
        engine = fastcnn.load(args.model, weights=args.weights, device=args.device, backend=args.backend)
    failed = 0
    for start in range(0, len(args.images), CLASSIFY_BATCH):
        decoded = []
        for path in args.images[start:start + CLASSIFY_BATCH]:
            try:
                decoded.append((path, decode_image(path)))
            except fastcnn.FastCNNError as exc:
                print(f"fastcnn: error: {exc}", file=sys.stderr, flush=True)
                failed += 1
        if decoded:
            logits = engine.infer(engine.preprocess([image for _, image in decoded]))
            for (path, _), predictions in zip(decoded, top_classes(logits, args.top), strict=True):
                print(f"{path}:", *(f"  {prediction}" for prediction in predictions), sep="\n", flush=True)
    if failed:
        raise fastcnn.InputError(f"{failed} of {len(args.images)} files could not be classified (above)")


# Images decoded and run per batch: a long list of files never sits in memory at once.
CLASSIFY_BATCH = 16


def _cmd_export_repo(args: argparse.Namespace) -> None:
    """A Triton Inference Server model repository: the graph fastcnn gives ONNX Runtime (its
    onnxruntime pipeline, built on the CPU: the file does not depend on the device) and its config."""
    is_file = args.model.endswith(".onnx") or Path(args.model).is_file()
    name = Path(args.model).stem if is_file else fastcnn.model_info(args.model).name
    with _step(f"loading {args.model}"):
        engine = fastcnn.load(args.model, weights=args.weights, device="cpu", backend="onnxruntime")
    model_dir = export_model_repository(engine, args.folder, name, args.max_batch)
    print(model_dir / "config.pbtxt")
    print(model_dir / "1" / "model.onnx")


def _cmd_serve(args: argparse.Namespace) -> None:
    """One model over HTTP on Ray Serve, requests batched, until Ctrl-C (fastcnn.ray.server)."""
    from fastcnn.ray.server import run_server  # imports Ray (fastcnn[ray]): only this command pays for it

    load_options = {key: value for key, value in (("weights", args.weights), ("backend", args.backend)) if value}
    run_server(args.model, host=args.host, port=args.port, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
               max_body_bytes=args.max_body_mb * 2**20, replicas=args.replicas, gpus_per_replica=args.gpus_per_replica,
               **load_options)


def _cmd_kernels(args: argparse.Namespace) -> None:
    """Compile every kernel variant the Triton backend picks for the models, for one GPU
    architecture, without a GPU; print registers, spills, shared memory, occupancy, math path."""
    from fastcnn.backends.triton_backend import kernel_variants  # needs triton
    from fastcnn.kernels.compile_check import CompileCheckError, compile_calls, format_reports

    arch = int(args.arch.lower().removeprefix("sm_"))
    graphs = []
    for model in args.models or ONE_PER_FAMILY:
        with _step(f"importing {model}"):
            graph = import_source(model)
            run_pipeline(graph, "triton")
        graphs.append(graph)
    with _step("planning"):
        calls = kernel_variants(graphs, args.batch or [1, 64], getattr(torch, args.dtype))
    try:
        with _step(f"compiling {len(calls)} kernel variants for sm_{arch}"):
            reports = compile_calls(calls, arch)
    except CompileCheckError as exc:
        raise fastcnn.UnsupportedModelError(f"a kernel does not compile for sm_{arch}: {exc}") from exc
    print(format_reports(reports))


def _cmd_bench(args: argparse.Namespace) -> None:
    """Every implementation side by side (``bench/test_latency.py``), then the report."""
    from fastcnn.benchmark.command import BenchSettings, default_folder, run_bench

    settings = BenchSettings(tuple(args.models), tuple(args.batch or ()), args.device, tuple(args.dtype or ()),
                             tuple(args.impl or ()), args.rounds, args.seconds)
    folder = Path(args.out) if args.out else default_folder(args.device)
    print(f"fastcnn bench: writing to {folder}", file=sys.stderr, flush=True)
    for kind, path in run_bench(settings, folder).items():
        print(f"{kind}: {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastcnn", description=fastcnn.__doc__)
    parser.add_argument("--version", action="version", version=f"fastcnn {fastcnn.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list the zoo's models")
    listing.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    listing.set_defaults(run=_cmd_list)
    summary = commands.add_parser("summary", help="per-layer table of a zoo model")
    summary.add_argument("model", help="zoo model name (see `fastcnn list`)")
    summary.set_defaults(run=_cmd_summary)
    run = commands.add_parser("run", help="export, import and run a model; print latency and "
                                          "agreement with PyTorch")
    _model_argument(run)
    run.add_argument("--batch", type=_positive_int, default=8, help="batch size (default 8)")
    _engine_options(run)
    run.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                     help="compute dtype (default: the model's, float32)")
    run.add_argument("--repeat", type=_positive_int, default=20, help="timed runs (default 20)")
    run.add_argument("--autotune", action="store_true",
                     help="measure tile configs and cuDNN per layer first (triton on CUDA; cached on disk), "
                          "and print what was chosen")
    run.set_defaults(run=_cmd_run)
    plan = commands.add_parser("plan", help="the kernel launches and activation memory of a model "
                                            "after the passes")
    _model_argument(plan)
    plan.add_argument("--batch", type=_positive_int, default=1, help="batch size (default 1)")
    plan.add_argument("--pipeline", default="full", choices=list(PIPELINES),
                      help="the passes to run first (default full; none: the graph as imported)")
    plan.add_argument("--json", metavar="PATH", help="also write the plan to PATH as JSON")
    plan.set_defaults(run=_cmd_plan)
    classify = commands.add_parser("classify", help="the top classes of image files (ImageNet names for "
                                                    "1000-class models)")
    _model_argument(classify)
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="image files Pillow reads (JPEG, PNG...)")
    _weights_option(classify)
    classify.add_argument("--top", type=_positive_int, default=5, help="classes per image (default 5)")
    _engine_options(classify)
    classify.set_defaults(run=_cmd_classify)
    repo = commands.add_parser("export-repo", help="write a model repository for NVIDIA Triton Inference Server "
                                                   "(DIR/MODEL/config.pbtxt, DIR/MODEL/1/model.onnx)")
    _model_argument(repo)
    repo.add_argument("folder", metavar="DIR", help="the repository folder (made if absent)")
    repo.add_argument("--max-batch", type=_positive_int, default=64, help="the server's max_batch_size (default 64)")
    _weights_option(repo)
    repo.set_defaults(run=_cmd_export_repo)
    serve = commands.add_parser("serve", help="serve a model over HTTP on Ray Serve with dynamic batching "
                                              "(POST /predict, GET /healthz, GET /metrics; needs fastcnn[ray])")
    _model_argument(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    serve.add_argument("--port", type=_positive_int, default=8000, help="default 8000")
    serve.add_argument("--max-batch", type=_positive_int, default=8, help="most requests per engine call (default 8)")
    serve.add_argument("--batch-wait-ms", type=float, default=10.0,
                       help="how long a batch waits for more requests before it runs (default 10)")
    _weights_option(serve)
    _engine_options(serve, device=False)
    serve.add_argument("--replicas", type=_positive_int, default=1, help="copies of the model (default 1)")
    serve.add_argument("--gpus-per-replica", type=float, default=0, help="GPUs per replica (default 0: the CPU)")
    serve.add_argument("--max-body-mb", type=_positive_int, default=20, help="largest request body (default 20 MiB)")
    serve.set_defaults(run=_cmd_serve)
    kernels = commands.add_parser("kernels", help="compile the Triton kernels a GPU would run for models, "
                                                   "without a GPU; print registers, spills, occupancy")
    kernels.add_argument("models", nargs="*", help="zoo names or .onnx files (default: one per family)")
    kernels.add_argument("--arch", default="sm_90", choices=["sm_80", "sm_90"], help="GPU architecture")
    kernels.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    kernels.add_argument("--batch", type=_positive_int, action="append",
                         help="batch size(s) to plan for (repeatable; default 1 and 64)")
    kernels.set_defaults(run=_cmd_kernels)
    bench = commands.add_parser("bench", help="time every implementation (PyTorch, torch.compile, ONNX Runtime, "
                                              "OpenVINO, fastcnn's backends) side by side; "
                                              "write JSON, a table, a chart")
    bench.add_argument("models", nargs="*", help="zoo names (default: a few; the device's default list)")
    bench.add_argument("--batch", type=_positive_int, action="append", help="batch size (repeatable)")
    bench.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when present")
    bench.add_argument("--dtype", action="append", choices=["float32", "float16", "bfloat16"], help="repeatable")
    bench.add_argument("--impl", action="append", help="implementation (repeatable; default: all)")
    bench.add_argument("--rounds", type=_positive_int, help="most timed rounds per implementation (default 15)")
    bench.add_argument("--seconds", type=float, help="time to spend per implementation and case (default 3)")
    bench.add_argument("--out", help="folder for bench.json, report.md and chart.png (default: ./fastcnn-bench/...)")
    bench.set_defaults(run=_cmd_bench)
    return parser


def _model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo model name (see `fastcnn list`), or a path to an .onnx file")


def _weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="zoo models: a state-dict file, or a known weight name such as "
                                          "'torchvision' (fetched once into the torch hub cache); default: random")


def _engine_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """``--backend`` and (unless the command places engines itself) ``--device``, as ``load`` takes them."""
    parser.add_argument("--backend", default=None, help="triton, torch, onnxruntime or openvino (default: "
                                                        "the measured one for the model, device and dtype)")
    if device:
        parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except fastcnn.FastCNNError as exc:
        print(f"fastcnn: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
