# A syntax error.
# expect: build_error syntax_error
import torch

class ModelNew(nn.Module:
    pass
