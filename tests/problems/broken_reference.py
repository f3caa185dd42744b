import torch
import torch.nn as nn


class Model(nn.Module):
    """A problem whose own forward fails: its matmul's inner sizes differ (5 and 3)."""

    def forward(self, x):
        return torch.relu(x) @ torch.ones(3, 3)


rows = 8
cols = 5


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
