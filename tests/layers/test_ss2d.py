"""SS2D: the cross-scan / cross-merge routes (non-square maps) and the inside of one official SS2D call."""

from __future__ import annotations

import json

import pytest
import torch

from zsl_bench.layers.ss2d import SS2D, cross_merge, cross_scan


@pytest.mark.parametrize(("h", "w"), [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_cross_scan_routes(h: int, w: int) -> None:
    """Route 0: l = h·W + w; route 1: l = w·H + h; routes 2, 3: reversed (README of ref/vmamba)."""
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)  # value = row-major index
    xs = cross_scan(x)[0, :, 0]
    length = h * w
    for i in range(h):
        for j in range(w):
            v = i * w + j
            assert xs[0, i * w + j] == v
            assert xs[1, j * h + i] == v
            assert xs[2, length - 1 - (i * w + j)] == v
            assert xs[3, length - 1 - (j * h + i)] == v


@pytest.mark.parametrize(("h", "w"), [(3, 5), (2, 7)])
def test_cross_merge_maps_every_route_back(h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w)
    torch.testing.assert_close(cross_merge(cross_scan(x), h, w), 4 * x)
    ys = cross_scan(x)
    for k in range(4):  # one route alone must land back on the right pixels
        only = torch.zeros_like(ys)
        only[:, k] = ys[:, k]
        torch.testing.assert_close(cross_merge(only, h, w), x)


def test_ss2d_matches_official_internals(ref_file) -> None:
    """layers.2.blocks.0.op of the tiny golden model: scan inputs, scan outputs, merge and final output."""
    outputs = torch.load(ref_file("vmamba/tiny_outputs.pt"), weights_only=True)
    state = torch.load(ref_file("vmamba/tiny_state_dict.pt"), weights_only=True)
    cfg = json.loads(ref_file("vmamba/tiny_config.json").read_text())
    dbg = outputs["ss2d_debug"]
    prefix = "layers.2.blocks.0.op."
    dim = cfg["derived"]["dims"][2]
    op = SS2D(dim, d_state=cfg["derived"]["d_state"], ssm_ratio=cfg["MODEL"]["VSSM"]["SSM_RATIO"])
    op.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    op.eval()

    with torch.no_grad():
        x = op.act(op.conv2d(op.in_proj(dbg["op_input"])))
        xs = cross_scan(x)
        b, k, e, length = xs.shape
        torch.testing.assert_close(xs.reshape(b, k * e, length), dbg["us"], rtol=1e-5, atol=1e-5)
        x_dbl = torch.einsum("bkel,kce->bkcl", xs, op.x_proj_weight)
        dts, bs, cs = torch.split(x_dbl, [op.dt_rank, op.d_state, op.d_state], dim=2)
        torch.testing.assert_close(bs, dbg["Bs"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cs, dbg["Cs"], rtol=1e-5, atol=1e-5)
        dts = torch.einsum("bkrl,ker->bkel", dts, op.dt_projs_weight).reshape(b, k * e, length)
        torch.testing.assert_close(dts, dbg["dts"], rtol=1e-5, atol=1e-5)
        y = op.scan(x)
        torch.testing.assert_close(y.flatten(2), dbg["y"], rtol=1e-4, atol=1e-4 * dbg["y"].abs().max().item())
        out = op(dbg["op_input"])
    torch.testing.assert_close(out, dbg["op_output"], rtol=1e-4, atol=1e-4 * dbg["op_output"].abs().max().item())
