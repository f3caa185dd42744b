import torch
import torch.nn as nn


class Model(nn.Module):
    """ReLU of inputs that never change: trials could not tell an input-blind kernel."""

    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.linspace(-3, 3, 4099).reshape(1, 4099)]


def get_init_inputs():
    return []
