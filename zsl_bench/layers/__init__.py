"""Building blocks of the Mamba backbones: the selective scan (and causal conv1d) with their CPU and CUDA paths,
SS2D (VMamba), the bidirectional Mamba mixer (Vim), norms and checkpoint loading."""

from zsl_bench.layers.selective_scan import (
    causal_conv1d_silu,
    cuda_kernel_available,
    selective_scan,
    selective_scan_chunked,
    selective_scan_ref,
)

__all__ = [
    "causal_conv1d_silu",
    "cuda_kernel_available",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_ref",
]
