// The selective scan, forward and backward, as fused loops per (batch, channel) row, for CPUs.
//
// Built on first use by zsl_bench/layers/fused_scan.py (torch.utils.cpp_extension). Rows are spread over the
// intra-op threads; each row is walked in chunks of T steps whose working set (T x N decays and states) stays in
// L1. Per chunk: Δ = softplus(δ + δ_bias), Δ·u and the decays exp(Δ·A) are computed vectorised over the chunk;
// then the recurrence h_t = a_t·h_{t-1} + Δ_t·u_t·B_t runs step by step (one FMA chain per state) with y = Σ C·h;
// then out = (y + D·u)·SiLU(z), vectorised again.
//
// The forward records the state entering every chunk (the carries, [rows, nc, N]). The backward walks the chunks
// from the last to the first: it recomputes the chunk's states from its carry, then runs the adjoint
// G_t = a_{t+1}·G_{t+1} + C_t·gy_t backwards, accumulating every gradient in registers or L1:
//   ∂L/∂(Δ_t A_n) = G_t,n·a_t,n·h_{t-1},n    → dΔ (Σ_n ·A_n) and dA (·Δ_t)
//   ∂L/∂(Δ_t u_t B_t,n) = G_t,n               → dΔ, du (Σ_n ·B), dB (·Δ_t u_t)
//   dC_t,n = gy_t·h_t,n,  dD = Σ gy·u,  dz = g_out·y·SiLU'(z),  dδ = dΔ·σ(δ + δ_bias) = dΔ·(1 − e^{−Δ}).
// dB and dC are shared by the rows of a group: each task (one per thread) accumulates its own copy
// [tasks, B, G, L, N], summed by the caller; dA, dD, dδ_bias come back per row and are summed over the batch.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace {

using OptTensor = std::optional<torch::Tensor>;

// Inputs of one scan: u, delta, z [rows = B·Dm, L]; A [Dm, N]; bt, ct [B, G, L, N]; D, bias [Dm] (may be null).
template <typename T>
struct Scan {
  const T *u, *delta, *A, *bt, *ct, *D, *z, *bias;
  int64_t batch, dm, length, n, groups, chunk, nc;
  bool softplus;

  int64_t rows() const { return batch * dm; }
  int64_t group_of(int64_t row) const { return (row / dm) * groups + (row % dm) / (dm / groups); }  // b·G + g
  const T* bc(const T* base, int64_t row) const { return base + group_of(row) * length * n; }
};

// Per-task scratch for one chunk: Δ, Δ·u, y, gy, dΔ [T]; decays and states [T·N]; state and adjoint [N].
template <typename T>
struct Work {
  std::vector<T> dt, v, y, gy, ddt, a, hs, h, g, an, da;
  Work(int64_t chunk, int64_t n)
      : dt(chunk), v(chunk), y(chunk), gy(chunk), ddt(chunk), a(chunk * n), hs(chunk * n), h(n), g(n), an(n),
        da(n) {}
};

// Δ_t and Δ_t·u_t for steps [t0, t0 + k) of a row (softplus in its overflow-free form).
template <typename T>
void chunk_inputs(const Scan<T>& s, int64_t row, int64_t t0, int64_t k, Work<T>& w) {
  const T* d = s.delta + row * s.length + t0;
  const T* u = s.u + row * s.length + t0;
  const T bias = s.bias != nullptr ? s.bias[row % s.dm] : T(0);
  T* dt = w.dt.data();
  T* v = w.v.data();
  if (s.softplus) {
    for (int64_t t = 0; t < k; ++t) {
      const T x = d[t] + bias;
      dt[t] = std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
    }
  } else {
    for (int64_t t = 0; t < k; ++t) dt[t] = d[t] + bias;
  }
  for (int64_t t = 0; t < k; ++t) v[t] = dt[t] * u[t];
}

// Decays a[t, n] = exp(Δ_t·A[d, n]) for the chunk.
template <typename T, int kN>
void chunk_decays(const Scan<T>& s, int64_t row, int64_t k, Work<T>& w) {
  const int64_t n = kN > 0 ? kN : s.n;
  const T* a_row = s.A + (row % s.dm) * n;
  const T* dt = w.dt.data();
  T* a = w.a.data();
  if (n == 1) {
    for (int64_t t = 0; t < k; ++t) a[t] = std::exp(dt[t] * a_row[0]);
    return;
  }
  for (int64_t t = 0; t < k; ++t)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) a[t * n + i] = std::exp(dt[t] * a_row[i]);
}

// The recurrence over the chunk from the state in w.h (updated in place): states into w.hs, y = Σ C·h into w.y.
template <typename T, int kN>
void chunk_states(const Scan<T>& s, int64_t row, int64_t t0, int64_t k, Work<T>& w) {
  const int64_t n = kN > 0 ? kN : s.n;
  const T* b = s.bc(s.bt, row) + t0 * n;
  const T* c = s.bc(s.ct, row) + t0 * n;
  const T *a = w.a.data(), *v = w.v.data();
  T *hs = w.hs.data(), *y = w.y.data();
  T local[kN > 0 ? kN : 1];  // a fixed N: the states live in registers, not behind the stores below
  T* h = kN > 0 ? local : w.h.data();
  if (kN > 0) std::copy(w.h.begin(), w.h.end(), local);
  for (int64_t t = 0; t < k; ++t) {
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) {
      const T state = a[t * n + i] * h[i] + v[t] * b[t * n + i];
      h[i] = state;
      hs[t * n + i] = state;
      acc += c[t * n + i] * state;
    }
    y[t] = acc;
  }
  if (kN > 0) std::copy(local, local + n, w.h.begin());
}

// out = (y + D·u)·SiLU(z) for the chunk.
template <typename T>
void chunk_output(const Scan<T>& s, int64_t row, int64_t t0, int64_t k, const Work<T>& w, T* out) {
  const T* u = s.u + row * s.length + t0;
  const T dd = s.D != nullptr ? s.D[row % s.dm] : T(0);
  const T* y = w.y.data();
  if (s.z == nullptr) {
    for (int64_t t = 0; t < k; ++t) out[t] = y[t] + dd * u[t];
    return;
  }
  const T* z = s.z + row * s.length + t0;
  for (int64_t t = 0; t < k; ++t) out[t] = (y[t] + dd * u[t]) * (z[t] / (T(1) + std::exp(-z[t])));
}

template <typename T, int kN>
void forward_row(const Scan<T>& s, int64_t row, Work<T>& w, T* out, T* last, T* carries) {
  const int64_t n = kN > 0 ? kN : s.n;
  std::fill(w.h.begin(), w.h.end(), T(0));
  for (int64_t c = 0; c < s.nc; ++c) {
    const int64_t t0 = c * s.chunk, k = std::min(s.chunk, s.length - t0);
    if (carries != nullptr) std::copy(w.h.begin(), w.h.end(), carries + (row * s.nc + c) * n);
    chunk_inputs(s, row, t0, k, w);
    chunk_decays<T, kN>(s, row, k, w);
    chunk_states<T, kN>(s, row, t0, k, w);
    chunk_output(s, row, t0, k, w, out + row * s.length + t0);
  }
  std::copy(w.h.begin(), w.h.end(), last + row * n);
}

// Gradients: du, ddelta, dz [rows, L]; dA [rows, N]; dD, dbias [rows]; dB, dC [tasks, B, G, L, N].
template <typename T>
struct Grads {
  const T *gout, *glast;
  T *du, *ddelta, *dz, *dA, *dD, *dbias, *dB, *dC;
};

// gy = g_out·SiLU(z) (or g_out) for the chunk.
template <typename T>
void chunk_gate(const Scan<T>& s, const Grads<T>& gr, int64_t row, int64_t t0, int64_t k, Work<T>& w) {
  const T* go = gr.gout + row * s.length + t0;
  T* gy = w.gy.data();
  if (s.z == nullptr) {
    std::copy(go, go + k, gy);
    return;
  }
  const T* z = s.z + row * s.length + t0;
  for (int64_t t = 0; t < k; ++t) gy[t] = go[t] * (z[t] / (T(1) + std::exp(-z[t])));
}

// The adjoint over the chunk, backwards in time (module comment); carries G and a_{t+1} across chunks in w.g, w.an.
template <typename T, int kN>
void chunk_adjoint(const Scan<T>& s, const Grads<T>& gr, int64_t row, int64_t t0, int64_t k, const T* h_in,
                   int64_t task, Work<T>& w) {
  const int64_t n = kN > 0 ? kN : s.n;
  const T* b = s.bc(s.bt, row) + t0 * n;
  const T* c = s.bc(s.ct, row) + t0 * n;
  const T* a_row = s.A + (row % s.dm) * n;
  const T* u = s.u + row * s.length + t0;
  const int64_t shared = (task * s.batch * s.groups + s.group_of(row)) * s.length * n + t0 * n;
  T* db = gr.dB + shared;
  T* dc = gr.dC + shared;
  T* du = gr.du + row * s.length + t0;
  const T dd = s.D != nullptr ? s.D[row % s.dm] : T(0);
  const T *a = w.a.data(), *hs = w.hs.data(), *dt = w.dt.data(), *v = w.v.data(), *gy = w.gy.data();
  T* ddt = w.ddt.data();
  T local[3][kN > 0 ? kN : 1];  // a fixed N: G, a_{t+1} and dA live in registers
  T* g = kN > 0 ? local[0] : w.g.data();
  T* an = kN > 0 ? local[1] : w.an.data();
  T* da = kN > 0 ? local[2] : w.da.data();
  if (kN > 0) {
    std::copy(w.g.begin(), w.g.end(), g);
    std::copy(w.an.begin(), w.an.end(), an);
    std::copy(w.da.begin(), w.da.end(), da);
  }
  for (int64_t t = k - 1; t >= 0; --t) {
    const T* hp = t > 0 ? hs + (t - 1) * n : h_in;
    T sda = 0, sgb = 0;
#pragma omp simd reduction(+ : sda, sgb)
    for (int64_t i = 0; i < n; ++i) {
      const T gi = an[i] * g[i] + c[t * n + i] * gy[t];
      g[i] = gi;
      const T dai = gi * a[t * n + i] * hp[i];
      sda += dai * a_row[i];
      da[i] += dai * dt[t];
      sgb += gi * b[t * n + i];
      db[t * n + i] += gi * v[t];
      dc[t * n + i] += gy[t] * hs[t * n + i];
      an[i] = a[t * n + i];
    }
    ddt[t] = sda + u[t] * sgb;
    du[t] = dt[t] * sgb + dd * gy[t];
  }
  if (kN > 0) {
    std::copy(g, g + n, w.g.begin());
    std::copy(an, an + n, w.an.begin());
    std::copy(da, da + n, w.da.begin());
  }
}

// dδ, dz and the row sums behind dD and dδ_bias for the chunk.
template <typename T>
void chunk_finish(const Scan<T>& s, const Grads<T>& gr, int64_t row, int64_t t0, int64_t k, Work<T>& w, T& sum_d,
                  T& sum_bias) {
  const T* u = s.u + row * s.length + t0;
  const T *dt = w.dt.data(), *ddt = w.ddt.data(), *gy = w.gy.data(), *y = w.y.data();
  T* dl = gr.ddelta + row * s.length + t0;
  T sd = 0, sb = 0;
  for (int64_t t = 0; t < k; ++t) {
    const T g = s.softplus ? ddt[t] * -std::expm1(-dt[t]) : ddt[t];
    dl[t] = g;
    sb += g;
    sd += gy[t] * u[t];
  }
  sum_d += sd;
  sum_bias += sb;
  if (s.z == nullptr) return;
  const T dd = s.D != nullptr ? s.D[row % s.dm] : T(0);
  const T* z = s.z + row * s.length + t0;
  const T* go = gr.gout + row * s.length + t0;
  T* dz = gr.dz + row * s.length + t0;
  for (int64_t t = 0; t < k; ++t) {
    const T sig = T(1) / (T(1) + std::exp(-z[t]));
    dz[t] = go[t] * (y[t] + dd * u[t]) * sig * (T(1) + z[t] * (T(1) - sig));
  }
}

template <typename T, int kN>
void backward_row(const Scan<T>& s, const Grads<T>& gr, const T* carries, int64_t row, int64_t task, Work<T>& w) {
  const int64_t n = kN > 0 ? kN : s.n;
  for (int64_t i = 0; i < n; ++i) {
    w.g[i] = gr.glast != nullptr ? gr.glast[row * n + i] : T(0);
    w.an[i] = T(1);
    w.da[i] = T(0);
  }
  T sum_d = 0, sum_bias = 0;
  for (int64_t c = s.nc - 1; c >= 0; --c) {
    const int64_t t0 = c * s.chunk, k = std::min(s.chunk, s.length - t0);
    const T* h_in = carries + (row * s.nc + c) * n;
    std::copy(h_in, h_in + n, w.h.begin());
    chunk_inputs(s, row, t0, k, w);
    chunk_decays<T, kN>(s, row, k, w);
    chunk_states<T, kN>(s, row, t0, k, w);
    chunk_gate(s, gr, row, t0, k, w);
    chunk_adjoint<T, kN>(s, gr, row, t0, k, h_in, task, w);
    chunk_finish(s, gr, row, t0, k, w, sum_d, sum_bias);
  }
  std::copy(w.da.begin(), w.da.end(), gr.dA + row * n);
  gr.dD[row] = sum_d;
  gr.dbias[row] = sum_bias;
}

// Runs fn(task, row, work) over all rows, split into one contiguous range per intra-op thread.
template <typename T, typename Fn>
void for_rows(const Scan<T>& s, int64_t tasks, Fn fn) {
  const int64_t rows = s.rows();
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    Work<T> w(s.chunk, s.n);
    for (int64_t task = begin; task < end; ++task)
      for (int64_t row = task * rows / tasks; row < (task + 1) * rows / tasks; ++row) fn(task, row, w);
  });
}

template <typename T>
const T* ptr_or_null(const OptTensor& t) {
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

template <typename T>
Scan<T> make_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A, const torch::Tensor& bt,
                  const torch::Tensor& ct, const OptTensor& D, const OptTensor& z, const OptTensor& bias,
                  bool softplus, int64_t chunk, int64_t nc) {
  return Scan<T>{u.data_ptr<T>(), delta.data_ptr<T>(), A.data_ptr<T>(),   bt.data_ptr<T>(),
                 ct.data_ptr<T>(), ptr_or_null<T>(D),   ptr_or_null<T>(z), ptr_or_null<T>(bias),
                 u.size(0),        u.size(1),           u.size(2),         A.size(1),
                 bt.size(1),       chunk,               nc,                softplus};
}

// Calls fn.template operator()<kN>() with kN = N for the common state sizes 1 and 16, else 0 (any N).
template <typename Fn>
void dispatch_n(int64_t n, Fn&& fn) {
  if (n == 1) return fn(std::integral_constant<int, 1>{});
  if (n == 16) return fn(std::integral_constant<int, 16>{});
  fn(std::integral_constant<int, 0>{});
}

void check_inputs(const torch::Tensor& u, const std::vector<torch::Tensor>& tensors, int64_t chunk, int64_t nc) {
  for (const auto& t : tensors) {
    TORCH_CHECK(t.device().is_cpu(), "the fused scan runs on CPU tensors only");
    TORCH_CHECK(t.is_contiguous(), "the fused scan needs contiguous inputs");
    TORCH_CHECK(t.scalar_type() == u.scalar_type(), "the fused scan needs one dtype for all inputs");
  }
  TORCH_CHECK(chunk >= 1 && nc >= 1 && (nc - 1) * chunk < u.size(2) && nc * chunk >= u.size(2),
              "chunk and nc must cover L with no empty chunk");
}

std::vector<torch::Tensor> present(const torch::Tensor& u, const OptTensor& D, const OptTensor& z,
                                   const OptTensor& bias) {
  std::vector<torch::Tensor> all{u};
  for (const auto* t : {&D, &z, &bias})
    if (t->has_value()) all.push_back(t->value());
  return all;
}

}  // namespace

// (out [B, Dm, L], last state [B, Dm, N], carries [B, Dm, nc, N] — empty unless keep_carries).
std::vector<torch::Tensor> scan_forward(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor bt,
                                        torch::Tensor ct, OptTensor D, OptTensor z, OptTensor bias, bool softplus,
                                        int64_t chunk, int64_t nc, bool keep_carries) {
  auto all = present(u, D, z, bias);
  all.insert(all.end(), {delta, A, bt, ct});
  check_inputs(u, all, chunk, nc);
  TORCH_CHECK(u.size(1) % bt.size(1) == 0, "the groups must divide the channels");
  const int64_t batch = u.size(0), dm = u.size(1), n = A.size(1);
  auto out = torch::empty_like(u);
  auto last = torch::empty({batch, dm, n}, u.options());
  auto carries = torch::empty({keep_carries ? batch : 0, dm, nc, n}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "zsl_bench_scan_forward", [&] {
    const auto s = make_scan<scalar_t>(u, delta, A, bt, ct, D, z, bias, softplus, chunk, nc);
    scalar_t* kept = keep_carries ? carries.data_ptr<scalar_t>() : nullptr;
    dispatch_n(n, [&](auto kn) {
      const int64_t tasks = std::min<int64_t>(at::get_num_threads(), s.rows());
      for_rows(s, tasks, [&](int64_t, int64_t row, Work<scalar_t>& w) {
        forward_row<scalar_t, decltype(kn)::value>(s, row, w, out.data_ptr<scalar_t>(), last.data_ptr<scalar_t>(),
                                                   kept);
      });
    });
  });
  return {out, last, carries};
}

// (du, ddelta, dz [B, Dm, L] (dz empty without z), dA per row [B, Dm, N], dD and ddelta_bias per row [B, Dm],
//  dB and dC per task [tasks, B, G, L, N]): the caller sums the last three over their first dimension.
std::vector<torch::Tensor> scan_backward(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor bt,
                                         torch::Tensor ct, OptTensor D, OptTensor z, OptTensor bias, bool softplus,
                                         int64_t chunk, int64_t nc, torch::Tensor carries, torch::Tensor gout,
                                         OptTensor glast) {
  auto all = present(u, D, z, bias);
  all.insert(all.end(), {delta, A, bt, ct, carries, gout});
  if (glast.has_value()) all.push_back(glast.value());
  check_inputs(u, all, chunk, nc);
  const int64_t batch = u.size(0), dm = u.size(1), length = u.size(2), n = A.size(1), groups = bt.size(1);
  TORCH_CHECK(carries.numel() == batch * dm * nc * n, "carries must be [B, Dm, nc, N]");
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), batch * dm));
  auto du = torch::empty_like(u), ddelta = torch::empty_like(u);
  auto dz = z.has_value() ? torch::empty_like(u) : torch::empty({0}, u.options());
  auto dA = torch::empty({batch, dm, n}, u.options());
  auto dD = torch::empty({batch, dm}, u.options()), dbias = torch::empty({batch, dm}, u.options());
  auto dB = torch::zeros({tasks, batch, groups, length, n}, u.options()), dC = torch::zeros_like(dB);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "zsl_bench_scan_backward", [&] {
    using T = scalar_t;
    const auto s = make_scan<T>(u, delta, A, bt, ct, D, z, bias, softplus, chunk, nc);
    const Grads<T> gr{gout.data_ptr<T>(),  ptr_or_null<T>(glast), du.data_ptr<T>(),    ddelta.data_ptr<T>(),
                      z.has_value() ? dz.data_ptr<T>() : nullptr, dA.data_ptr<T>(),      dD.data_ptr<T>(),
                      dbias.data_ptr<T>(), dB.data_ptr<T>(),      dC.data_ptr<T>()};
    const T* kept = carries.data_ptr<T>();
    dispatch_n(n, [&](auto kn) {
      for_rows(s, tasks, [&](int64_t task, int64_t row, Work<T>& w) {
        backward_row<T, decltype(kn)::value>(s, gr, kept, row, task, w);
      });
    });
  });
  return {du, ddelta, dz, dA, dD, dbias, dB, dC};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "fused selective-scan forward (CPU)");
  m.def("scan_backward", &scan_backward, "fused selective-scan backward (CPU)");
}
