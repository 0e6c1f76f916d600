// The time loop of a top-down LSTM net (latticeprune.nets.HierarchicalRNN), forward and
// back-propagation through time, for latticeprune/top_down_kernel.py (which states the algorithm
// and its cost). Layer l at step t reads [below, h, above]: layer l - 1 at t (the bottom layer
// reads the input x at t), itself and layer l + 1 at t - 1. Gate blocks are in
// torch's order (i, f, g, o). The products are torch's (MKL's packed GEMM where a packed copy
// of the weight is given, else addmm); each new state is written straight into the inputs
// that read it. Built with AVX2 / AVX-512 flags, the gates' non-linearities and the cell
// update are one pass on ATen's vector types; otherwise torch's sigmoid and tanh, then loops
// of ours. The gate gradients are one loop of ours, which also sums the bias gradient.
// The ATen headers of what it calls and torch's pybind11 casters, not <torch/extension.h>
// (the whole C++ frontend): the first build takes about half the time.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/tanh.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

using at::Tensor;

namespace {

// Where a layer's new state goes: rows of a matrix, row_stride apart.
template <typename T>
struct Destination {
  T* data;
  int64_t row_stride;
};

}  // namespace

// cell_forward(g, c_prev, c, tanh_c, to, H): one layer and step after its GEMM. The gates g
// (batch x 4H pre-activations) are activated in place (sigmoid, sigmoid, tanh, sigmoid); then
// c = f * c_prev + i * g, tanh_c = tanh(c), and h = o * tanh(c) is written to every
// destination (the layer's own and its neighbours' next inputs, the output), so that no step
// concatenates its inputs.
#if defined(CPU_CAPABILITY_AVX2) || defined(CPU_CAPABILITY_AVX512)
// Built for the CPU's vector instructions (top_down_kernel.py passes them): one pass over each
// row on ATen's vector types.
#include <ATen/cpu/vec/vec.h>

namespace {

template <typename T>
using Vec = at::vec::Vectorized<T>;

// NaN in, NaN out, as torch's sigmoid (exp_u20 alone turns NaN into a number).
template <typename T>
Vec<T> vec_sigmoid(const Vec<T>& x) {
  const Vec<T> y = (Vec<T>(T(1)) + x.neg().exp_u20()).reciprocal();
  return Vec<T>::blendv(y, x, x.isnan());
}

// tanh(x) = 2 sigmoid(2x) - 1.
template <typename T>
Vec<T> vec_tanh(const Vec<T>& x) {
  return Vec<T>(T(2)) * vec_sigmoid(x * Vec<T>(T(2))) - Vec<T>(T(1));
}

template <typename T>
void cell_forward(Tensor& gates, const Tensor& c_prev, const Tensor& c_new, Tensor& tanh_c,
                  const std::vector<Destination<T>>& to, int64_t H) {
  constexpr int64_t width = Vec<T>::size();
  const int64_t batch = gates.size(0);
  T* a = gates.data_ptr<T>();
  const T* cp = c_prev.data_ptr<T>();
  T* c = c_new.data_ptr<T>();
  T* tc = tanh_c.data_ptr<T>();
  for (int64_t b = 0; b < batch; ++b) {
    T* i = a + b * 4 * H;
    T* f = i + H;
    T* g = i + 2 * H;
    T* o = i + 3 * H;
    for (int64_t j = 0; j < H; j += width) {
      const int64_t n = std::min(width, H - j);
      const Vec<T> vi = vec_sigmoid(Vec<T>::loadu(i + j, n));
      const Vec<T> vf = vec_sigmoid(Vec<T>::loadu(f + j, n));
      const Vec<T> vg = vec_tanh(Vec<T>::loadu(g + j, n));
      const Vec<T> vo = vec_sigmoid(Vec<T>::loadu(o + j, n));
      const Vec<T> vc = vf * Vec<T>::loadu(cp + b * H + j, n) + vi * vg;
      const Vec<T> vt = vec_tanh(vc);
      const Vec<T> vh = vo * vt;
      vi.store(i + j, n);
      vf.store(f + j, n);
      vg.store(g + j, n);
      vo.store(o + j, n);
      vc.store(c + b * H + j, n);
      vt.store(tc + b * H + j, n);
      for (const Destination<T>& d : to) vh.store(d.data + b * d.row_stride + j, n);
    }
  }
}

}  // namespace
#else
// Elsewhere: torch's sigmoid and tanh, then loops of ours.
namespace {

template <typename T>
void cell_forward(Tensor& gates, const Tensor& c_prev, const Tensor& c_new, Tensor& tanh_c,
                  const std::vector<Destination<T>>& to, int64_t H) {
  gates.narrow(1, 0, 2 * H).sigmoid_();
  gates.narrow(1, 2 * H, H).tanh_();
  gates.narrow(1, 3 * H, H).sigmoid_();
  const int64_t batch = gates.size(0);
  const T* __restrict a = gates.data_ptr<T>();
  const T* __restrict cp = c_prev.data_ptr<T>();
  T* __restrict c = c_new.data_ptr<T>();
  for (int64_t b = 0; b < batch; ++b) {
    const T* i = a + b * 4 * H;
    const T* f = i + H;
    const T* g = i + 2 * H;
    for (int64_t j = 0; j < H; ++j) c[b * H + j] = f[j] * cp[b * H + j] + i[j] * g[j];
  }
  at::tanh_out(tanh_c, c_new);
  const T* __restrict tc = tanh_c.data_ptr<T>();
  for (int64_t b = 0; b < batch; ++b) {
    const T* o = a + b * 4 * H + 3 * H;
    T* __restrict first = to[0].data + b * to[0].row_stride;
    for (int64_t j = 0; j < H; ++j) first[j] = o[j] * tc[b * H + j];
    for (size_t k = 1; k < to.size(); ++k) {
      T* __restrict other = to[k].data + b * to[k].row_stride;
      for (int64_t j = 0; j < H; ++j) other[j] = first[j];
    }
  }
}

}  // namespace
#endif

namespace {

// Rows of a (batch x width) matrix, row_stride apart (0: one row, shared by every b).
template <typename T>
struct Rows {
  const T* data;
  int64_t row_stride;
  const T* row(int64_t b) const { return data + b * row_stride; }
};

// Gradients of the gates' pre-activations d (batch x 4H) from the gradient of h, the sum of
// four sources (missing ones point at zeros), and dc (the cell state's gradient from step
// t + 1; on return, to step t - 1); d's rows are added to db (the bias's gradient).
template <typename T>
void cell_backward(const T* __restrict a, const T* __restrict tanh_c, const T* __restrict c_prev,
                   const Rows<T> (&dh)[4], T* __restrict dc, T* __restrict d,
                   T* __restrict db, int64_t batch, int64_t H) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* i = a + b * 4 * H;
    const T* f = i + H;
    const T* g = i + 2 * H;
    const T* o = i + 3 * H;
    const T* tc = tanh_c + b * H;
    const T* cp = c_prev + b * H;
    const T* __restrict dh0 = dh[0].row(b);
    const T* __restrict dh1 = dh[1].row(b);
    const T* __restrict dh2 = dh[2].row(b);
    const T* __restrict dh3 = dh[3].row(b);
    T* dcb = dc + b * H;
    T* di = d + b * 4 * H;
    T* df = di + H;
    T* dg = di + 2 * H;
    T* d_o = di + 3 * H;
    for (int64_t j = 0; j < H; ++j) {
      const T dhj = dh0[j] + dh1[j] + dh2[j] + dh3[j];
      const T dcell = dcb[j] + dhj * o[j] * (T(1) - tc[j] * tc[j]);
      d_o[j] = dhj * tc[j] * o[j] * (T(1) - o[j]);
      df[j] = dcell * cp[j] * f[j] * (T(1) - f[j]);
      di[j] = dcell * g[j] * i[j] * (T(1) - i[j]);
      dg[j] = dcell * i[j] * (T(1) - g[j] * g[j]);
      dcb[j] = dcell * f[j];
    }
    for (int64_t k = 0; k < 4 * H; ++k) db[k] += di[k];
  }
}

// x @ w.T (+ bias): MKL's packed GEMM when packed (from mkl::_mkl_reorder_linear_weight) is
// not empty, else addmm / mm.
Tensor product(const Tensor& x, const Tensor& w, const Tensor& packed, const Tensor& bias) {
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (packed.numel() > 0) {
    static auto op = c10::Dispatcher::singleton()
        .findSchemaOrThrow("mkl::_mkl_linear", "")
        .typed<Tensor(const Tensor&, const Tensor&, const Tensor&,
                      const std::optional<Tensor>&, int64_t)>();
    return op.call(x, packed, w, has_bias ? std::optional<Tensor>(bias) : std::nullopt,
                   x.size(0));
  }
  return has_bias ? at::addmm(bias, x, w.t()) : at::mm(x, w.t());
}

}  // namespace

// What the forward keeps for the backward, per layer: its inputs (T, B, K_l), cell states
// (T + 1, B, H_l) and tanh of them (T, B, H_l); the activated gates, layer-major (L * T of them).
struct Saved {
  std::vector<Tensor> inputs, cells, tanh_cells, gates;
};

// x: (T, B, I) the input, time-major, contiguous (every state starts at zero); weight[l]:
// (4 H_l, K_l) over [below (x for l = 0), h, above (l < L - 1)], contiguous;
// packed[l]: its packed copy or empty; bias[l]: (4 H_l). Returns the top layer's states
// (T, B, H_top) and, when save, what the backward needs.
std::tuple<Tensor, std::shared_ptr<Saved>> forward(
    const Tensor& x,
    const std::vector<Tensor>& weight, const std::vector<Tensor>& packed,
    const std::vector<Tensor>& bias, bool save) {
  const int64_t L = weight.size(), T = x.size(0), B = x.size(1), I = x.size(2);
  std::vector<int64_t> H(L), offset(L);  // offset[l]: where h starts in layer l's inputs
  auto saved = save ? std::make_shared<Saved>() : nullptr;
  // Layer l's inputs at step t: inputs[l][t] when saving, else one of two buffers in turn.
  // Each new state is written straight into the inputs that read it.
  std::vector<Tensor> inputs(L), cells(L), tanh_cells(L), gates;
  for (int64_t l = 0; l < L; ++l) {
    H[l] = weight[l].size(0) / 4;
    offset[l] = l > 0 ? H[l - 1] : I;
    inputs[l] = x.new_empty({save ? T : 2, B, weight[l].size(1)});
    if (inputs[l].size(0) > 0) inputs[l][0].zero_();
    cells[l] = x.new_empty({save ? T + 1 : 2, B, H[l]});
    cells[l][0].zero_();
    tanh_cells[l] = x.new_empty({save ? T : 1, B, H[l]});
  }
  auto step_inputs = [&](int64_t l, int64_t t) { return inputs[l][save ? t : t % 2]; };
  if (save) gates.resize(L * T);
  Tensor out = x.new_empty({T, B, H[L - 1]});
  for (int64_t t = 0; t < T; ++t) {
    step_inputs(0, t).narrow(1, 0, I).copy_(x[t]);
    for (int64_t l = 0; l < L; ++l) {
      Tensor g = product(step_inputs(l, t), weight[l], packed[l], bias[l]);
      const Tensor c_prev = cells[l][save ? t : t % 2];
      const Tensor c_new = cells[l][save ? t + 1 : (t + 1) % 2];
      Tensor tanh_c = tanh_cells[l][save ? t : 0];
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "top_down_lstm_forward", [&] {
        using Out = Destination<scalar_t>;
        auto rows_at = [](const Tensor& m, int64_t column) {
          return Out{m.data_ptr<scalar_t>() + column, m.stride(0)};
        };
        // h_l(t) is read by the output (top layer), layer l + 1 at t (below), itself at
        // t + 1 (recurrent) and layer l - 1 at t + 1 (above).
        std::vector<Out> to;
        if (l == L - 1) to.push_back(rows_at(out[t], 0));
        if (l + 1 < L) to.push_back(rows_at(step_inputs(l + 1, t), 0));
        if (t + 1 < T) {
          to.push_back(rows_at(step_inputs(l, t + 1), offset[l]));
          if (l > 0) to.push_back(rows_at(step_inputs(l - 1, t + 1), offset[l - 1] + H[l - 1]));
        }
        cell_forward<scalar_t>(g, c_prev, c_new, tanh_c, to, H[l]);
      });
      if (save) gates[l * T + t] = g;
    }
  }
  if (save) *saved = Saved{inputs, cells, tanh_cells, gates};
  return {out, saved};
}

// grad_out: (T, B, H_top); weight_t[l]: weight[l].t(), contiguous; packed_t[l]: its packed copy
// or empty; saved: what the forward kept; input_grad: whether x needs its gradient. Returns [the
// gradient of x (T, B, I) or an undefined tensor, then per layer the gradients of its weight
// and bias].
std::vector<Tensor> backward(const Tensor& grad_out, const std::vector<Tensor>& weight_t,
                             const std::vector<Tensor>& packed_t, const Saved& saved,
                             bool input_grad) {
  const std::vector<Tensor>& inputs = saved.inputs;
  const std::vector<Tensor>& cells = saved.cells;
  const std::vector<Tensor>& tanh_cells = saved.tanh_cells;
  const std::vector<Tensor>& gates = saved.gates;
  const int64_t L = weight_t.size(), T = inputs[0].size(0), B = inputs[0].size(1);
  std::vector<int64_t> H(L), offset(L);  // offset[l]: where h starts in layer l's inputs
  std::vector<Tensor> dc(L), d_gates(L), d_bias(L);
  // The gradients of each layer's inputs at step t + 1 (previous) and t (now).
  std::vector<Tensor> d_previous(L), d_now(L);
  int64_t widest = 1;
  for (int64_t l = 0; l < L; ++l) H[l] = weight_t[l].size(1) / 4;
  const int64_t I = weight_t[0].size(0) - H[0] - (L > 1 ? H[1] : 0);
  Tensor dx = input_grad ? grad_out.new_empty({T, B, I}) : Tensor();
  for (int64_t l = 0; l < L; ++l) {
    offset[l] = l > 0 ? H[l - 1] : I;
    widest = std::max(widest, H[l]);
    dc[l] = grad_out.new_zeros({B, H[l]});
    d_gates[l] = grad_out.new_empty({T, B, 4 * H[l]});
    d_bias[l] = grad_out.new_zeros({4 * H[l]});
  }
  const Tensor zeros = grad_out.new_zeros({widest});
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "top_down_lstm_backward", [&] {
    const Rows<scalar_t> none{zeros.data_ptr<scalar_t>(), 0};
    auto rows = [](const Tensor& m, int64_t column) {
      return Rows<scalar_t>{m.data_ptr<scalar_t>() + column, m.stride(0)};
    };
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t l = L - 1; l >= 0; --l) {  // layer l + 1 at t reads layer l at t
        // h_l(t) feeds: the output (top layer), layer l + 1 at t (below), itself at t + 1
        // (recurrent) and layer l - 1 at t + 1 (above).
        const Rows<scalar_t> dh[4] = {
            l == L - 1 ? rows(grad_out[t], 0) : none,
            l + 1 < L ? rows(d_now[l + 1], 0) : none,
            d_previous[l].defined() ? rows(d_previous[l], offset[l]) : none,
            l > 0 && d_previous[l - 1].defined()
                ? rows(d_previous[l - 1], offset[l - 1] + H[l - 1]) : none};
        Tensor d = d_gates[l][t];
        cell_backward<scalar_t>(gates[l * T + t].data_ptr<scalar_t>(),
                                tanh_cells[l][t].data_ptr<scalar_t>(),
                                cells[l][t].data_ptr<scalar_t>(), dh, dc[l].data_ptr<scalar_t>(),
                                d.data_ptr<scalar_t>(), d_bias[l].data_ptr<scalar_t>(), B,
                                H[l]);
        d_now[l] = product(d, weight_t[l], packed_t[l], Tensor());
      }
      if (input_grad) dx[t].copy_(d_now[0].narrow(1, 0, I));
      std::swap(d_previous, d_now);
    }
  });
  std::vector<Tensor> result{dx};
  for (int64_t l = 0; l < L; ++l) {
    const Tensor g = d_gates[l].view({T * B, 4 * H[l]});
    result.push_back(at::mm(g.t(), inputs[l].view({T * B, inputs[l].size(2)})));
    result.push_back(d_bias[l]);
  }
  return result;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<Saved, std::shared_ptr<Saved>>(m, "Saved");
  m.def("forward", &forward, "The top-down LSTM's forward over all steps");
  m.def("backward", &backward, "Its back-propagation through time");
}
