//! The feedback convolution: a 2-D convolution whose backward pass sends the teaching signal
//! through its own kernel-shaped `B`.

use crate::conv_cpu;
use crate::feedback::Feedback;
use crate::init::{Init, Rng, is_gpu};
use crate::rule::Rule;
use burn::backend::Dispatch;
use burn::backend::ops::ModuleOps;
use burn::tensor::module::{conv_transpose2d, conv2d, conv2d_weight_backward};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use burn::tensor::{Device, Tensor, s};
use std::sync::OnceLock;

/// Whether a GPU sends conv deltas down through Burn's dedicated input-gradient kernel
/// (`conv2d_x_backward`, autotuned on cubecl: what Burn's own autodiff runs for a conv), unless
/// `BIOFEEDBACK_GPU_CONV_X=transpose` asks for `conv_transpose2d` (the CPU's path), which is how
/// `benches/gpu/run.sh` measures the two side by side.
pub fn gpu_dedicated_x_backward() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BIOFEEDBACK_GPU_CONV_X").map_or(true, |v| v != "transpose"))
}

/// How a GPU computes forward convolutions, from `BIOFEEDBACK_GPU_CONV`: by default every conv
/// goes through Burn's input-gradient kernel, stride-1 convs directly ([`conv2d_by_x_backward`])
/// and strided ones as the sum of their polyphase components ([`conv2d_by_phases`]);
/// `stride1` reroutes only the stride-1 convs, `burn` none (Burn's forward convolution for all).
/// On `wgpu` without cooperative matrices Burn's forward autotune can only pick its direct
/// kernel for a 3x3 conv, while the input-gradient autotune also has an im2col + matmul
/// kernel: on an H100 the ResNet-18 step (224x224, batch 64) ran at 732 images per second with
/// the stride-1 convs rerouted against 355 with the forward kernel (`docs/gpu.md`);
/// `benches/gpu/run.sh` measures the three side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuConv {
    /// Burn's forward convolution for every conv.
    Burn,
    /// Stride-1 convs through the input-gradient kernel, strided ones by Burn's forward.
    StrideOne,
    /// Every conv through the input-gradient kernel (strided ones by phases).
    All,
}

/// The process's [`GpuConv`] (read once from `BIOFEEDBACK_GPU_CONV`).
pub fn gpu_conv() -> GpuConv {
    static MODE: OnceLock<GpuConv> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("BIOFEEDBACK_GPU_CONV").as_deref() {
        Ok("burn") => GpuConv::Burn,
        Ok("stride1") => GpuConv::StrideOne,
        _ => GpuConv::All,
    })
}

/// `conv(x, W)` at stride 1 computed as the input gradient of another convolution: a
/// stride-1 conv with padding `p` is the transposed convolution, padding `k - 1 - p`, by the
/// kernel flipped in space with its channel axes swapped,
///
/// ```text
/// conv(x, W; p) = conv_transpose(x, V; k - 1 - p),   V[i, o, a, b] = W[o, i, k-1-a, k-1-b]
/// ```
///
/// and `conv_transpose(x, V; q)` is what Burn's `conv2d_x_backward` computes for a conv of
/// kernel `V` and padding `q`. `None` for strides other than 1 or `p > k - 1`.
///
/// # Shapes
/// `x`: `[n, c_in, h, w]`, `weight`: `[c_out, c_in, k, k]` → `[n, c_out, h + 2p - k + 1, w + 2p - k + 1]`.
pub fn conv2d_by_x_backward(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    stride: usize,
    padding: usize,
) -> Option<Tensor<4>> {
    if stride != 1 {
        return None;
    }
    stride_one_by_x_backward(x, weight, [padding; 2])
}

/// A stride-1 conv of a `kh x kw` kernel with padding `[ph, pw]` through the input-gradient
/// kernel (as [`conv2d_by_x_backward`], for rectangular kernels: the phases of
/// [`conv2d_by_phases`]). `None` if `p > k - 1` or the kernel is larger than the padded input.
fn stride_one_by_x_backward(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    padding: [usize; 2],
) -> Option<Tensor<4>> {
    let [n, _, h, w] = x.dims();
    let [c_out, _, kh, kw] = weight.dims();
    let [ph, pw] = padding;
    if ph + 1 > kh || pw + 1 > kw || h + 2 * ph < kh || w + 2 * pw < kw {
        return None;
    }
    let out = [n, c_out, h + 2 * ph + 1 - kh, w + 2 * pw + 1 - kw];
    let kernel = weight.clone().swap_dims(0, 1).flip([2, 3]);
    let q = [kh - 1 - ph, kw - 1 - pw];
    let shape_of_output = Tensor::<4>::empty(out, &x.device());
    Some(Tensor::from_dispatch(Dispatch::conv2d_x_backward(
        shape_of_output.into_dispatch(),
        kernel.into_dispatch(),
        x.clone().into_dispatch(),
        ConvOptions::new([1, 1], q, [1, 1], 1),
    )))
}

/// `conv(x, W)` at stride `s > 1` as the sum of `s^2` stride-1 convs without padding, one per
/// polyphase component of the padded input (the polyphase decomposition of a strided conv):
///
/// ```text
/// conv(x, W; s, p)[i, j] = sum_{a, b < s} conv(x_p[.., a::s, b::s], W[.., a::s, b::s]; 1, 0)[i, j]
/// ```
///
/// where `x_p` is `x` zero-padded by `p` and `W[.., a::s, b::s]` keeps the taps `a, a + s, ...`
/// of each kernel axis (`ceil((k - a) / s)` of them; a phase without taps, e.g. `a > 0` for a
/// 1x1 kernel, adds nothing). Each stride-1 conv runs through the input-gradient kernel (as
/// [`conv2d_by_x_backward`], with rectangular kernels), so the
/// strided convs of a ResNet (the stem, the first conv of a stage) reach the same im2col +
/// matmul kernels on a GPU as the stride-1 ones. The components' outputs are cropped to the
/// strided conv's `h'`, `w'`. `None` for stride 1 or a kernel larger than the padded input.
///
/// # Shapes
/// `x`: `[n, c_in, h, w]`, `weight`: `[c_out, c_in, k, k]` →
/// `[n, c_out, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`.
pub fn conv2d_by_phases(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    stride: usize,
    padding: usize,
) -> Option<Tensor<4>> {
    let [_, _, h, w] = x.dims();
    let k = weight.dims()[2];
    let s = stride;
    let (hp, wp) = (h + 2 * padding, w + 2 * padding);
    if s < 2 || hp < k || wp < k {
        return None;
    }
    let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
    let padded = if padding > 0 {
        x.clone()
            .pad((padding, padding, padding, padding), PadMode::Constant(0.0))
    } else {
        x.clone()
    };
    let mut sum: Option<Tensor<4>> = None;
    for a in 0..s.min(k) {
        for b in 0..s.min(k) {
            let phase = padded.clone().slice(s![.., .., a..;s, b..;s]);
            let taps = weight.clone().slice(s![.., .., a..;s, b..;s]);
            let y =
                stride_one_by_x_backward(&phase, &taps, [0, 0])?.slice(s![.., .., 0..ho, 0..wo]);
            sum = Some(match sum {
                Some(total) => total + y,
                None => y,
            });
        }
    }
    sum
}

/// A 2-D convolution without bias (ResNets follow every conv by BatchNorm) with a separate
/// feedback kernel.
///
/// `weight` is `[c_out, c_in, k, k]` (Burn's layout). `B` has the kernel's shape: the
/// transpose of the convolution (`W^T` of the unrolled matrix) is the transposed convolution
/// with the same kernel, so *backprop is `B = weight`*.
///
/// ```text
/// forward:   y        = conv(x, W)                   x: [n, c_in, h, w] → y: [n, c_out, h', w']
/// backward:  delta_in = conv_transpose(delta, B)     delta: [n, c_out, h', w'] → [n, c_in, h, w]
///            dW       = corr(x, delta)               the local rule, summed over batch and positions
/// ```
#[derive(Debug, Clone)]
pub struct FeedbackConv2d {
    /// Forward kernel, `[c_out, c_in, k, k]`.
    pub weight: Tensor<4>,
    /// The feedback path: what the kernel `B` (`[c_out, c_in, k, k]`) is and how it learns.
    pub feedback: Feedback<4>,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding, every side.
    pub padding: usize,
}

/// The result of [`FeedbackConv2d::backward`].
#[derive(Debug, Clone)]
pub struct ConvBackward {
    /// `dW`, `[c_out, c_in, k, k]`. For Kolen-Pollack also `B`'s gradient.
    pub weight: Tensor<4>,
    /// `conv_transpose(delta, B)`, `[n, c_in, h, w]`, if it was asked for.
    pub delta_in: Option<Tensor<4>>,
}

impl FeedbackConv2d {
    /// A `k x k` convolution from `c_in` to `c_out` channels with weight and (for the rules
    /// that store one) feedback drawn independently from `init` with fan-in `c_in k k` and
    /// fan-out `c_out k k`. A lone conv's output error is its own delta, so `dfa` is `fa`
    /// here; networks of convs refuse `dfa` (see `biofeedback_models::ResNetConfig::init`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        rule: Rule,
        init: Init,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let shape = [c_out, c_in, kernel, kernel];
        let (fan_in, fan_out) = (c_in * kernel * kernel, c_out * kernel * kernel);
        let weight = init.tensor(shape, fan_in, fan_out, rng, device);
        let feedback = Feedback::new(rule, shape, fan_in, fan_out, init, rng, device);
        Self {
            weight,
            feedback,
            stride: stride.max(1),
            padding,
        }
    }

    /// The learning rule of this layer.
    pub fn rule(&self) -> Rule {
        self.feedback.rule()
    }

    /// Input channels.
    pub fn c_in(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output channels.
    pub fn c_out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Kernel side `k`.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    /// `conv(x, W)`.
    ///
    /// # Shapes
    /// `x`: `[n, c_in, h, w]` → `[n, c_out, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if let Some(y) = conv_cpu::conv2d(&x, &self.weight, self.stride, self.padding) {
            return y;
        }
        if is_gpu(&x.device()) {
            let (s, p) = (self.stride, self.padding);
            let rerouted = match gpu_conv() {
                GpuConv::Burn => None,
                _ if s == 1 => conv2d_by_x_backward(&x, &self.weight, s, p),
                GpuConv::StrideOne => None,
                // 1x1 strided convs stay with Burn, whose forward runs them as one matmul.
                GpuConv::All if self.kernel() == 1 => None,
                GpuConv::All => conv2d_by_phases(&x, &self.weight, s, p),
            };
            if let Some(y) = rerouted {
                return y;
            }
        }
        conv2d(x, self.weight.clone(), None, self.options())
    }

    /// The feedback kernel this rule uses now ([`Feedback::matrix`]), `[c_out, c_in, k, k]`.
    pub fn effective_feedback(&self) -> Tensor<4> {
        self.feedback.matrix(&self.weight)
    }

    /// The backward pass through this rule's own feedback kernel; `delta_in` only when
    /// `want_delta_in`.
    ///
    /// # Shapes
    /// `x`: `[n, c_in, h, w]` (the forward input), `delta`: `[n, c_out, h', w']`.
    pub fn backward(&self, x: Tensor<4>, delta: Tensor<4>, want_delta_in: bool) -> ConvBackward {
        let feedback = want_delta_in.then(|| self.effective_feedback());
        self.backward_through(x, delta, feedback)
    }

    /// The backward pass through an explicit kernel (`None`: no `delta_in`);
    /// `Some(weight)` is exact backprop whatever the rule.
    pub fn backward_through(
        &self,
        x: Tensor<4>,
        delta: Tensor<4>,
        feedback: Option<Tensor<4>>,
    ) -> ConvBackward {
        let delta_in = feedback.map(|b| self.delta_through(delta.clone(), b, &x));
        let weight = self.weight_gradient(x, delta);
        ConvBackward { weight, delta_in }
    }

    /// The kernel gradient `corr(x, delta)`, summed over the batch and the positions.
    ///
    /// # Shapes
    /// `x`: `[n, c_in, h, w]`, `delta`: `[n, c_out, h', w']` → `[c_out, c_in, k, k]`.
    pub fn weight_gradient(&self, x: Tensor<4>, delta: Tensor<4>) -> Tensor<4> {
        let (s, p, kernel) = (self.stride, self.padding, self.weight.dims());
        conv_cpu::weight_gradient(&x, &delta, kernel, s, p).unwrap_or_else(|| {
            conv2d_weight_backward(x, self.weight.clone(), delta, self.options())
        })
    }

    /// `conv_transpose(delta, kernel)` at the size of the forward input `x` (only its shape is
    /// read: a strided conv maps several input sizes to one output size): the teaching signal
    /// sent down through `kernel`. On a GPU, Burn's dedicated kernel for it
    /// ([`gpu_dedicated_x_backward`]); on the CPU at stride 1, [`conv_cpu::input_gradient`]
    /// (a forward convolution by the flipped kernel, one GEMM per chunk of images), else
    /// Burn's transposed convolution.
    ///
    /// # Shapes
    /// `delta`: `[n, c_out, h', w']`, `kernel`: `[c_out, c_in, k, k]`, `x`: `[n, c_in, h, w]`
    /// → `[n, c_in, h, w]`.
    pub fn delta_through(&self, delta: Tensor<4>, kernel: Tensor<4>, x: &Tensor<4>) -> Tensor<4> {
        if is_gpu(&delta.device()) && gpu_dedicated_x_backward() {
            return Tensor::from_dispatch(Dispatch::conv2d_x_backward(
                x.clone().into_dispatch(),
                kernel.into_dispatch(),
                delta.into_dispatch(),
                self.options(),
            ));
        }
        let through_gemm = conv_cpu::input_gradient(&delta, &kernel, self.stride, self.padding);
        if let Some(dx) = through_gemm.filter(|dx| dx.dims() == x.dims()) {
            return dx;
        }
        let [_, _, h, w] = x.dims();
        let [_, _, ho, wo] = delta.dims();
        let (s, p, k) = (self.stride, self.padding, self.kernel());
        let reach = |o: usize| (o - 1) * s + k;
        let out_pad = |full: usize, o: usize| (full + 2 * p).saturating_sub(reach(o));
        let options =
            ConvTransposeOptions::new([s, s], [p, p], [out_pad(h, ho), out_pad(w, wo)], [1, 1], 1);
        conv_transpose2d(delta, kernel, None, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_rng;
    use crate::tensor_io::{relative_error as rel_err, to_vec};
    use burn::tensor::Distribution;

    /// Backprop's explicit conv backward equals Burn's autodiff, for every shape a ResNet
    /// uses: 3x3/1, 3x3/2 (odd and even inputs), 1x1/2 shortcuts, the 7x7/2 stem.
    #[test]
    fn backprop_equals_autodiff() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let mut rng = seeded_rng(3);
        for (k, s, p, size) in [
            (3, 1, 1, 8),
            (3, 2, 1, 8),
            (3, 2, 1, 7),
            (1, 2, 0, 8),
            (1, 1, 0, 5),
            (7, 2, 3, 15),
        ] {
            let conv =
                FeedbackConv2d::new(3, 4, k, s, p, Rule::Bp, Init::HeUniform, &mut rng, &device);
            let x =
                Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
            let y = conv.forward(x.clone());
            let g = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
            let back = conv.backward(x.clone(), g.clone(), true);

            let mut conv_ad = conv.clone();
            conv_ad.weight = Tensor::from_data(conv.weight.to_data(), &ad).require_grad();
            let x_ad = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let g_ad = Tensor::<4>::from_data(g.to_data(), &ad);
            let grads = (conv_ad.forward(x_ad.clone()) * g_ad).sum().backward();
            let dw = conv_ad.weight.grad(&grads).unwrap();
            let dx = x_ad.grad(&grads).unwrap();
            let case = format!("k {k} s {s} p {p} input {size}");
            assert!(rel_err(back.weight, dw) < 1e-5, "{case}: kernel gradient");
            assert!(
                rel_err(back.delta_in.unwrap(), dx) < 1e-5,
                "{case}: input gradient"
            );
        }
    }

    /// A stride-1 conv through the input-gradient kernel equals the conv, for the paddings a
    /// network uses (same, valid) and kernels 1, 3, 5 and 7; other strides are declined.
    #[test]
    fn a_stride_one_conv_is_an_input_gradient() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        for (k, p, side) in [(3, 1, 8), (3, 0, 7), (1, 0, 5), (5, 2, 9), (7, 3, 11)] {
            let x = Tensor::<4>::random([2, 3, side, side], normal, &device);
            let w = Tensor::<4>::random([5, 3, k, k], normal, &device);
            let direct = conv2d(
                x.clone(),
                w.clone(),
                None,
                ConvOptions::new([1, 1], [p, p], [1, 1], 1),
            );
            let through = conv2d_by_x_backward(&x, &w, 1, p).expect("stride 1");
            assert_eq!(through.dims(), direct.dims(), "k {k} p {p}");
            assert!(rel_err(through, direct) < 1e-6, "k {k} p {p}");
        }
        let x = Tensor::<4>::random([1, 3, 8, 8], normal, &device);
        let w = Tensor::<4>::random([5, 3, 3, 3], normal, &device);
        assert!(conv2d_by_x_backward(&x, &w, 2, 1).is_none());
    }

    /// A strided conv as the sum of its polyphase components equals the conv: the ResNet
    /// stem (7x7, stride 2, padding 3), the 3x3 stride-2 convs on even and odd sides, without
    /// padding, a 1x1 (phases without taps), stride 3 and a rectangular input; stride 1 is
    /// declined.
    #[test]
    fn a_strided_conv_is_the_sum_of_its_phases() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        // (k, s, p, h, w)
        for (k, s, p, h, w) in [
            (7, 2, 3, 16, 16),
            (3, 2, 1, 8, 8),
            (3, 2, 1, 7, 7),
            (3, 2, 0, 9, 8),
            (1, 2, 0, 6, 7),
            (5, 3, 2, 11, 10),
            (3, 2, 1, 6, 9),
        ] {
            let x = Tensor::<4>::random([2, 3, h, w], normal, &device);
            let wt = Tensor::<4>::random([5, 3, k, k], normal, &device);
            let direct = conv2d(
                x.clone(),
                wt.clone(),
                None,
                ConvOptions::new([s, s], [p, p], [1, 1], 1),
            );
            let phases = conv2d_by_phases(&x, &wt, s, p).expect("strided");
            let case = format!("k {k} s {s} p {p} input {h}x{w}");
            assert_eq!(phases.dims(), direct.dims(), "{case}");
            assert!(rel_err(phases, direct) < 1e-6, "{case}");
        }
        let x = Tensor::<4>::random([1, 3, 8, 8], normal, &device);
        let wt = Tensor::<4>::random([5, 3, 3, 3], normal, &device);
        assert!(conv2d_by_phases(&x, &wt, 1, 1).is_none());
    }

    #[test]
    fn feedback_alignment_sends_delta_through_b() {
        let device = Device::flex();
        let mut rng = seeded_rng(4);
        let conv = FeedbackConv2d::new(3, 5, 3, 1, 1, Rule::Fa, Init::HeUniform, &mut rng, &device);
        let x = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<4>::random([2, 5, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let own = conv.backward(x.clone(), g.clone(), true).delta_in.unwrap();
        let through_b = conv
            .backward_through(x.clone(), g.clone(), conv.feedback.stored().cloned())
            .delta_in
            .unwrap();
        let exact = conv
            .backward_through(x, g, Some(conv.weight.clone()))
            .delta_in
            .unwrap();
        assert_eq!(to_vec(own.clone()), to_vec(through_b));
        assert!(rel_err(own, exact) > 0.5, "B is independent of W");
    }
}
