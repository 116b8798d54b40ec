"""Images in: decode_image on files and bytes (bad ones named), and the preprocessing's
geometry and normalisation checked against slicing and arithmetic done by hand."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image
from torch import nn

import fastcnn
from fastcnn.errors import InputError
from fastcnn.preprocess import (
    CROP_RATIO,
    NoPreprocessing,
    Preprocessing,
    decode_image,
    preprocessing_for,
)
from fastcnn.zoo.registry import IMAGENET_MEAN, IMAGENET_STD


def _gradient(height: int, width: int) -> np.ndarray:
    """A uint8 H x W x 3 image whose every pixel differs from its neighbours, so a crop one
    pixel off shows."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, (rows + 3 * cols) % 256], axis=-1).astype(np.uint8)


def _by_hand(array: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    scaled = torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)
    return (scaled - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- decode_image ----

def test_decode_reads_a_file_and_its_bytes(tmp_path):
    array = _gradient(20, 30)
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    for source in (path, str(path), path.read_bytes()):
        image = decode_image(source)
        assert image.size == (30, 20) and np.array_equal(np.asarray(image), array)


def test_decode_names_the_file_that_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(InputError, match="notes.jpg is not an image"):
        decode_image(path)
    with pytest.raises(InputError, match=r"^the request body is not an image \(no format Pillow reads\)$"):
        decode_image(b"not an image", name="the request body")  # no BytesIO repr in the message


def test_decode_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="missing.png: no such file"):
        decode_image(tmp_path / "missing.png")


def test_decode_names_a_truncated_file(tmp_path):
    path = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible
    path.write_bytes(_png_bytes(Image.fromarray(noise))[:6000])
    with pytest.raises(InputError, match="cut.png"):
        decode_image(path)


def test_decode_refuses_a_decompression_bomb_before_decoding_it():
    # a 1-bit 10000 x 10000 PNG of zeros is a few kB of file and 100 megapixels
    bomb = _png_bytes(Image.new("1", (10000, 10000)))
    assert len(bomb) < 100_000
    with pytest.raises(InputError, match="10000 x 10000 = 100000000 pixels, more than the 89478485"):
        decode_image(bomb)
    with pytest.raises(InputError, match="the image bytes is too large to decode"):  # Pillow's own refusal
        decode_image(_png_bytes(Image.new("1", (20000, 20000))))
    with pytest.raises(InputError, match="more than the 100"):
        decode_image(_png_bytes(Image.new("RGB", (20, 20))), max_pixels=100)


def test_decode_refuses_what_is_neither_path_nor_bytes():
    with pytest.raises(InputError, match="path or bytes, got int"):
        decode_image(3)


# ---- Preprocessing ----

def test_a_square_image_at_the_resize_size_is_only_centre_cropped():
    array = _gradient(256, 256)
    batch = Preprocessing(224, 224, IMAGENET_MEAN, IMAGENET_STD)([array])
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0], _by_hand(array[16:240, 16:240]))


def test_the_shorter_side_goes_to_crop_over_ratio_and_the_crop_is_central():
    preprocessing = Preprocessing(224, 224, IMAGENET_MEAN, IMAGENET_STD)
    assert preprocessing.resize_to == (256, 256) and CROP_RATIO == 0.875
    assert Preprocessing(299, 299, (0.5,) * 3, (0.5,) * 3).resize_to == (342, 342)  # torchvision's Inception
    wide = Image.fromarray(_gradient(512, 1024))  # halves to 256 x 512 exactly
    expected = np.asarray(wide.resize((512, 256), Image.Resampling.BILINEAR))[16:240, 144:368]
    torch.testing.assert_close(preprocessing(wide)[0], _by_hand(expected))


def test_solid_colour_normalises_to_the_models_mean_and_std():
    info = fastcnn.model_info("inception_v3")
    batch = Preprocessing.for_model(info)(Image.new("RGB", (500, 400), (255, 0, 128)))
    assert batch.shape == (1, 3, 299, 299)
    expected = [(255 / 255 - 0.5) / 0.5, (0 - 0.5) / 0.5, (128 / 255 - 0.5) / 0.5]
    torch.testing.assert_close(batch[0].mean(dim=(1, 2)), torch.tensor(expected))


@pytest.mark.parametrize("image", [
    Image.new("L", (64, 48), 100),
    Image.new("RGBA", (64, 48), (100, 100, 100, 7)),
    Image.new("P", (64, 48), 0),
    np.full((48, 64), 100, np.uint8),
    np.full((48, 64, 1), 100, np.uint8),
    np.full((48, 64, 4), 100, np.uint8),
], ids=["L", "RGBA", "P", "hw", "hw1", "hwc4"])
def test_grayscale_palette_and_alpha_become_three_channels(image):
    batch = Preprocessing(32, 32, (0.0,) * 3, (1.0,) * 3)([image])
    assert batch.shape == (1, 3, 32, 32)
    assert torch.equal(batch[0, 0], batch[0, 1]) and torch.equal(batch[0, 1], batch[0, 2])


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    image = Image.fromarray(np.full((40, 40), 32768, np.uint16))  # mid-grey in 16 bits
    batch = Preprocessing(32, 32, (0.0,) * 3, (1.0,) * 3)(image)
    torch.testing.assert_close(batch, torch.full((1, 3, 32, 32), 128 / 255))


def test_lenet_gets_one_grayscale_channel():
    batch = Preprocessing.for_model(fastcnn.model_info("lenet5"))([np.zeros((28, 28, 3), np.uint8)])
    assert batch.shape == (1, 1, 32, 32)
    torch.testing.assert_close(batch, torch.full((1, 1, 32, 32), -0.1))


def test_a_batch_of_mixed_sizes_and_a_4d_array():
    preprocessing = Preprocessing(24, 24, IMAGENET_MEAN, IMAGENET_STD)
    assert preprocessing([_gradient(30, 40), Image.fromarray(_gradient(100, 50))]).shape == (2, 3, 24, 24)
    assert preprocessing(np.zeros((5, 30, 30, 3), np.uint8)).shape == (5, 3, 24, 24)


@pytest.mark.parametrize("images, message", [
    ([], "empty list"),
    ("cat.jpg", "got str; decode files first with fastcnn.preprocess.decode_image"),
    ([np.zeros((8, 8, 3), np.float32)], "image 0: expected a uint8 array .0-255., got float32"),
    ([np.zeros((3, 8, 8), np.uint8)], "channels-first: use array.transpose.1, 2, 0."),
    ([np.zeros((8, 8, 2), np.uint8)], r"got shape \(8, 8, 2\)"),
    ([Image.new("RGB", (8, 8)), torch.zeros(3, 8, 8)], "image 1 is a torch tensor"),
    ([None], "image 0: expected a PIL image or a uint8 NumPy array, got NoneType"),
    (42, "got int"),
])
def test_bad_images_are_input_errors_naming_the_problem(images, message):
    with pytest.raises(InputError, match=message):
        Preprocessing(8, 8, IMAGENET_MEAN, IMAGENET_STD)(images)


def test_an_input_shape_without_a_fixed_size_gets_no_preprocessing():
    assert preprocessing_for(None, ("N", 3, 64, 48)) == Preprocessing(64, 48, IMAGENET_MEAN, IMAGENET_STD)
    refusal = preprocessing_for(None, ("N", 3, "H", "W"))
    assert isinstance(refusal, NoPreprocessing)
    with pytest.raises(InputError, match="N x 3 x H x W: resize the images yourself"):
        refusal([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(InputError, match="1 or 3 channels; this model's input has 2"):
        preprocessing_for(None, ("N", 2, 8, 8))([np.zeros((8, 8, 3), np.uint8)])


# ---- engine.preprocess, through fastcnn.load ----

def test_a_zoo_engine_preprocesses_as_its_model_info_says():
    engine = fastcnn.load("lenet5", device="cpu", backend="torch")
    assert engine.preprocessing == Preprocessing.for_model(fastcnn.model_info("lenet5"))
    batch = engine.preprocess([np.zeros((28, 28), np.uint8), Image.new("RGB", (40, 40))])
    assert batch.shape == (2, 1, 32, 32) and engine.infer(batch).shape == (2, 10)


def test_a_float16_engine_gets_a_float16_batch():
    engine = fastcnn.load("lenet5", device="cpu", backend="torch", dtype="float16")
    assert engine.preprocess(Image.new("L", (32, 32))).dtype == torch.float16


def test_a_module_engine_uses_its_input_size_and_imagenet_statistics():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()
    engine = fastcnn.load(module, device="cpu", example_input=torch.zeros(1, 3, 20, 16))
    assert engine.preprocessing == Preprocessing(20, 16, IMAGENET_MEAN, IMAGENET_STD)
    assert engine.preprocess([_gradient(50, 50)]).shape == (1, 3, 20, 16)


def test_an_onnx_file_with_symbolic_height_refuses_to_preprocess(tmp_path):
    node = helper.make_node("Relu", ["input"], ["output"])
    graph = helper.make_graph([node], "relu", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                             ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    engine = fastcnn.load(path, device="cpu", backend="torch")
    with pytest.raises(InputError, match="H x W: resize the images yourself and call engine.infer"):
        engine.preprocess(Image.new("RGB", (8, 8)))
