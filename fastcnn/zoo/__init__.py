"""The reference zoo: PyTorch models of the classic CNN families, faithful to their papers.

Each family lives in its own module and registers its builders on import; the list below
is the whole zoo.
"""
from fastcnn.zoo import (  # noqa: F401  (imported to register their models)
    alexnet,
    densenet,
    googlenet,
    bn_inception,
    inception_v3,
    inception_v4,
    inception_resnet,
    lenet,
    nin,
    resnet,
    senet,
    squeezenet,
    vgg,
    zfnet,
)
from fastcnn.zoo.factory import create_model
from fastcnn.zoo.registry import ModelInfo, list_models, model_info

# One model per family, for reports and checks that cannot afford the whole zoo.
ONE_PER_FAMILY = ("lenet5", "alexnet", "zfnet", "vgg16", "nin", "googlenet", "bn_inception", "inception_v3",
                  "inception_v4", "inception_resnet_v2", "resnet50", "preact_resnet50", "densenet121",
                  "se_resnet50", "squeezenet1_1")

__all__ = ["ONE_PER_FAMILY", "create_model", "list_models", "model_info", "ModelInfo"]
