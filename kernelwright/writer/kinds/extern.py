"""Vendor calls (`library` mode): a GEMM or convolution left to cuBLAS/cuDNN through torch; its
operands are read from buffers and its result is a buffer the next kernel reads."""

from __future__ import annotations

from kernelwright.writer.ir import Value
from kernelwright.writer.kinds.base import KernelWriter, tensor_expr


class ExternCall(KernelWriter):
    """No kernel of ours: one line of the launcher."""

    vendor = True
    cpp = True

    def launch(self, precision: str) -> str:
        return f"    buf{self.g.values[0].id} = {vendor_call(self.g.values[0])}"


def vendor_call(v: Value) -> str:
    args = [tensor_expr(a) for a in v.args]
    if v.op in {"mm", "bmm"}:
        return f"torch.{v.op}({args[0]}, {args[1]})"
    if v.op == "addmm":  # (x, w, bias): the bias added in the GEMM's epilogue
        return f"torch.addmm({args[2]}, {args[0]}, {args[1]})"
    a = v.attrs
    nd = len(v.shape) - 2
    if a["transposed"]:
        return (f"torch.nn.functional.conv_transpose{nd}d({args[0]}, {args[1]}, None, "
                f"{a['stride']}, {a['padding']}, {a['output_padding']}, {a['groups']}, "
                f"{a['dilation']})")
    return (f"torch.nn.functional.conv{nd}d({args[0]}, {args[1]}, None, {a['stride']}, "
            f"{a['padding']}, {a['dilation']}, {a['groups']})")
