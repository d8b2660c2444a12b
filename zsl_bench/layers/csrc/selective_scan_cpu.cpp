// The selective scan's forward as one fused loop per (batch, channel) row, for CPUs.
//
// Built on first use by zsl_bench/layers/fused_scan.py (torch.utils.cpp_extension). Per row it keeps the N states
// in registers/L1 and, for every time step, computes the decays exp(Δ·A), the update h = a·h + Δ·u·B and the
// read-out y = Σ_n C·h in one pass; rows are spread over the intra-op threads. It only replaces the forward: the
// backward is the torch one of chunked_scan.py, restarted from the chunk carries this kernel records.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

// dt, u: [B, Dm, L]; A: [Dm, N]; bt, ct: [B, G, L, N] (B and C time-major per group); y: [B, Dm, L];
// last: [B, Dm, N]; carries: [B, nc, G, Dg, N] or nullptr (the state entering chunk c, taken before step c·T).
template <typename scalar_t>
void scan_rows(const scalar_t* dt, const scalar_t* u, const scalar_t* A, const scalar_t* bt, const scalar_t* ct,
               scalar_t* y, scalar_t* last, scalar_t* carries, int64_t batch, int64_t dm, int64_t length, int64_t n,
               int64_t groups, int64_t chunk, int64_t nc) {
  const int64_t dg = dm / groups;
  at::parallel_for(0, batch * dm, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> h(n);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / dm, d = row % dm, g = d / dg;
      const scalar_t* a_row = A + d * n;
      const scalar_t* b_rows = bt + (b * groups + g) * length * n;
      const scalar_t* c_rows = ct + (b * groups + g) * length * n;
      const scalar_t* dt_row = dt + row * length;
      const scalar_t* u_row = u + row * length;
      scalar_t* y_row = y + row * length;
      std::fill(h.begin(), h.end(), scalar_t(0));
      scalar_t* hs = h.data();
      for (int64_t t = 0; t < length; ++t) {
        if (carries != nullptr && t > 0 && t % chunk == 0) {
          scalar_t* dst = carries + (((b * nc + t / chunk) * groups + g) * dg + d % dg) * n;
          std::copy(hs, hs + n, dst);
        }
        const scalar_t delta = dt_row[t];
        const scalar_t drive = delta * u_row[t];
        const scalar_t* b_t = b_rows + t * n;
        const scalar_t* c_t = c_rows + t * n;
        scalar_t acc = 0;
        for (int64_t i = 0; i < n; ++i) {
          const scalar_t state = std::exp(delta * a_row[i]) * hs[i] + drive * b_t[i];
          hs[i] = state;
          acc += c_t[i] * state;
        }
        y_row[t] = acc;
      }
      std::copy(hs, hs + n, last + row * n);
    }
  });
}

}  // namespace

// Returns (y [B, Dm, L], last state [B, Dm, N], carries [B, nc, G, Dg, N] — empty unless keep_carries).
std::vector<torch::Tensor> scan_forward(torch::Tensor dt, torch::Tensor u, torch::Tensor A, torch::Tensor bt,
                                        torch::Tensor ct, int64_t chunk, int64_t nc, bool keep_carries) {
  TORCH_CHECK(dt.device().is_cpu(), "the fused scan runs on CPU tensors only");
  TORCH_CHECK(dt.is_contiguous() && u.is_contiguous() && A.is_contiguous() && bt.is_contiguous() &&
                  ct.is_contiguous(),
              "the fused scan needs contiguous inputs");
  TORCH_CHECK(chunk >= 1 && nc >= 1, "chunk and nc must be positive");
  const int64_t batch = dt.size(0), dm = dt.size(1), length = dt.size(2), n = A.size(1), groups = bt.size(1);
  TORCH_CHECK(dm % groups == 0, "the groups must divide the channels");
  auto y = torch::empty_like(dt);
  auto last = torch::empty({batch, dm, n}, dt.options());
  auto carries = keep_carries ? torch::zeros({batch, nc, groups, dm / groups, n}, dt.options())
                              : torch::empty({0}, dt.options());
  AT_DISPATCH_FLOATING_TYPES(dt.scalar_type(), "zsl_bench_scan_forward", [&] {
    scan_rows<scalar_t>(dt.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
                        bt.data_ptr<scalar_t>(), ct.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                        last.data_ptr<scalar_t>(), keep_carries ? carries.data_ptr<scalar_t>() : nullptr, batch,
                        dm, length, n, groups, chunk, nc);
  });
  return {y, last, carries};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "fused selective-scan forward (CPU)");
}
