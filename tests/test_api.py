"""fastcnn.load(name, weights=...): the same weights create_model takes, refused for other sources."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import fastcnn
from fastcnn.zoo import registry

MODEL = "lenet5"  # the fastest zoo model to export and import


def _batch() -> torch.Tensor:
    return torch.randn(2, *fastcnn.model_info(MODEL).input_size, generator=torch.Generator().manual_seed(0))


def _expected(weights) -> torch.Tensor:
    with torch.no_grad():
        return fastcnn.create_model(MODEL, weights=weights)(_batch())


def test_load_takes_a_local_weight_file(tmp_path):
    path = tmp_path / "lenet.pth"
    torch.save(fastcnn.create_model(MODEL, seed=7).state_dict(), path)
    engine = fastcnn.load(MODEL, weights=path, device="cpu", backend="torch")
    torch.testing.assert_close(engine.infer(_batch()), _expected(path), rtol=1e-4, atol=1e-5)
    random = fastcnn.load(MODEL, device="cpu", backend="torch")
    assert not torch.allclose(random.infer(_batch()), engine.infer(_batch()))


def test_load_fetches_a_known_weight_name_once_into_the_hub_cache(tmp_path, monkeypatch):
    url = "https://weights.invalid/fastcnn/lenet-0123abcd.pth"
    monkeypatch.setitem(registry._MODELS, MODEL, dataclasses.replace(registry.model_info(MODEL), weights={"test": url}))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    downloads = []

    def fake_download(url, dst, progress=True):
        downloads.append(url)
        torch.save(fastcnn.create_model(MODEL, seed=3).state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    engine = fastcnn.load(MODEL, weights="test", device="cpu", backend="torch")
    torch.testing.assert_close(engine.infer(_batch()), _expected("test"), rtol=1e-4, atol=1e-5)
    assert downloads == [url] and (tmp_path / "hub" / "checkpoints" / "lenet-0123abcd.pth").is_file()


def test_weights_that_do_not_fit_are_a_weights_error(tmp_path):
    torch.save(fastcnn.create_model(MODEL, num_classes=3).state_dict(), tmp_path / "w.pth")
    with pytest.raises(fastcnn.WeightsError, match="do not fit lenet5"):
        fastcnn.load(MODEL, weights=tmp_path / "w.pth", device="cpu")
    with pytest.raises(fastcnn.WeightsError, match="neither a file nor a known name"):
        fastcnn.load(MODEL, weights=tmp_path / "absent.pth", device="cpu")


def test_weights_for_a_source_other_than_a_zoo_name_are_refused(tmp_path):
    module = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(fastcnn.InputError, match="weights= is for zoo model names.*got a Conv2d"):
        fastcnn.load(module, weights="w.pth", example_input=torch.zeros(1, 3, 8, 8))
    with pytest.raises(fastcnn.InputError, match="got the file 'model.onnx', which carries its own weights"):
        fastcnn.load("model.onnx", weights="w.pth")
    with pytest.raises(fastcnn.UnknownModelError, match="unknown model 'lenet6'"):
        fastcnn.load("lenet6", weights="w.pth")
