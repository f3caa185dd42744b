import torch
import torch.nn as nn


class Model(nn.Module):
    """ReLU of a matrix product, irregular sizes."""

    def forward(self, a, b):
        return torch.relu(a @ b)


M = 67
K = 45
N = 53


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
