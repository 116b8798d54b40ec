"""LeNet-5 really learns: a few seconds on scikit-learn's handwritten digits, then a reload.

The 1,797 bundled 8x8 digits are scaled to [0, 1], upscaled to the paper's 32x32 input
bilinearly and normalised with the registered mean/std (background -0.1, ink 1.175). The
network trains with cross-entropy on its outputs, the negative RBF distances.

Over training seeds 0-9 on this split the test accuracy was 95.9-96.5% (96.3% for the seed
used here, 7 test images above the bar), in about 3.5 s of training on 2 cores. That is this
data's ceiling for the paper's network rather than under-training: longer training, weight
decay or other learning rates stay at 96-97%; a ReLU/max-pool CNN of the same size with a
trained linear output gets about 97.5%, an RBF SVM on the raw pixels 98.7%.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastcnn

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

SEED = 0
EPOCHS = 15
BATCH = 32
LEARNING_RATE = 2e-3

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def digits_split() -> Split:
    """Train and test images (N x 1 x 32 x 32, normalised) and labels: a stratified 70/30 split."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # N x 1 x 8 x 8
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    info = fastcnn.model_info("lenet5")
    images = (images - info.mean[0]) / info.std[0]
    labels = torch.tensor(digits.target)
    train, test = train_test_split(torch.arange(len(labels)).numpy(), test_size=0.3,
                                   stratify=digits.target, random_state=0)
    return images[train], labels[train], images[test], labels[test]


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> nn.Module:
    """Adam with a cosine-decayed learning rate; shuffling drawn from ``seed``."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=LEARNING_RATE)
    steps = EPOCHS * -(-len(labels) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    order = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(labels), generator=order).split(BATCH):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


@pytest.mark.slow
def test_lenet5_learns_digits_and_reloads(tmp_path):
    train_x, train_y, test_x, test_y = digits_split()
    model = train(fastcnn.create_model("lenet5", seed=SEED), train_x, train_y, seed=SEED)
    trained_accuracy = accuracy(model, test_x, test_y)
    assert trained_accuracy >= 0.95

    path = tmp_path / "lenet5_digits.pt"
    torch.save(model.state_dict(), path)
    reloaded = fastcnn.create_model("lenet5", weights=path)
    assert accuracy(reloaded, test_x, test_y) == trained_accuracy
