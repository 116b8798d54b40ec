"""create_model(weights=...): local files, known names through the hub cache, bad files."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import fastcnn
from fastcnn.zoo import registry, weights

MODEL = "squeezenet1_1"  # small and fast to build


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loads_a_torch_file(tmp_path):
    source = fastcnn.create_model(MODEL, seed=1)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    loaded = fastcnn.create_model(MODEL, seed=2, weights=tmp_path / "w.pth")
    assert _same(source, loaded) and not loaded.training


def test_loads_a_training_checkpoint_wrapping_the_state_dict(tmp_path):
    source = fastcnn.create_model(MODEL, seed=1)
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    assert _same(source, fastcnn.create_model(MODEL, weights=str(tmp_path / "ckpt.pth")))


def test_loads_a_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    source = fastcnn.create_model(MODEL, seed=1)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    assert _same(source, fastcnn.create_model(MODEL, weights=tmp_path / "w.safetensors"))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    torch.save({"conv.weight": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(fastcnn.WeightsError, match="cannot read"):
        fastcnn.create_model(MODEL, weights=tmp_path / "evil.pth")


def test_refuses_weights_of_another_shape(tmp_path):
    torch.save(fastcnn.create_model(MODEL, num_classes=10).state_dict(), tmp_path / "w.pth")
    with pytest.raises(fastcnn.WeightsError, match="do not fit"):
        fastcnn.create_model(MODEL, weights=tmp_path / "w.pth")


def test_refuses_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(fastcnn.WeightsError):
        fastcnn.create_model(MODEL, weights=tmp_path / "junk.pth")
    with pytest.raises(fastcnn.WeightsError, match="neither a file nor a known name"):
        fastcnn.create_model(MODEL, weights=tmp_path / "absent.pth")


@pytest.fixture
def known_weights(monkeypatch, tmp_path):
    """MODEL with a known weight name whose URL points nowhere, and an empty hub cache."""
    url = "https://weights.invalid/fastcnn/tiny-0123abcd.pth"
    info = dataclasses.replace(registry.model_info(MODEL), weights={"test": url})
    monkeypatch.setitem(registry._MODELS, MODEL, info)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints" / "tiny-0123abcd.pth"


def test_known_name_is_fetched_once_then_read_from_the_cache(known_weights, monkeypatch):
    source = fastcnn.create_model(MODEL, seed=1)
    downloads = []

    def fake_download(url, dst, progress=True):
        downloads.append(url)
        torch.save(source.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert _same(source, fastcnn.create_model(MODEL, weights="test"))
    assert _same(source, fastcnn.create_model(MODEL, weights="test"))
    assert len(downloads) == 1 and known_weights.is_file()


def test_failed_download_is_a_weights_error(known_weights, monkeypatch):
    def no_network(url, dst, progress=True):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(fastcnn.WeightsError, match="could not download"):
        fastcnn.create_model(MODEL, weights="test")
    assert not known_weights.exists()


def test_cache_names_stay_unique_for_hugging_face_urls():
    assert weights.cache_name("https://download.pytorch.org/models/resnet50-0676ba61.pth") == \
        "resnet50-0676ba61.pth"
    hf = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
    names = {weights.cache_name(hf.format(r)) for r in ("inception_v4.tf_in1k", "inception_resnet_v2.tf_in1k")}
    assert names == {"timm--inception_v4.tf_in1k--model.safetensors",
                     "timm--inception_resnet_v2.tf_in1k--model.safetensors"}


def test_every_known_weight_url_has_its_own_cache_file():
    urls = [url for name in fastcnn.list_models() for url in fastcnn.model_info(name).weights.values()]
    assert len({weights.cache_name(u) for u in urls}) == len(urls)
