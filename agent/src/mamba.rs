//! Mamba-1 (S6) selective state-space blocks, as the reference `mamba_simple.py` defines them.
//!
//! Dimension letters: `b` batch, `l` sequence length, `d` d_model, `e` d_inner, `n` d_state,
//! `r` dt_rank, `k` d_conv, `c` chunk length.
//!
//! Three paths that must agree (tests check it):
//! 1. [`selective_scan_ref`]: the sequential recurrence, one timestep at a time (the oracle).
//! 2. [`selective_scan_chunked`]: a blocked parallel scan: all chunks of `c` steps scanned at
//!    once, then the state carried across chunks and added to their outputs.
//! 3. [`MambaBlock::step`]: one timestep with a constant-size conv and SSM state.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn, nn::Module};

/// Sizes and initialisation of a Mamba backbone (reference defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MambaConfig {
    /// Model width `d`.
    pub d_model: i64,
    /// Residual blocks.
    pub n_layers: i64,
    /// SSM state size `n` per channel.
    pub d_state: i64,
    /// Width of the causal depthwise convolution.
    pub d_conv: i64,
    /// `d_inner = expand · d_model`.
    pub expand: i64,
    /// Rank of the Δ projection; `None` = ceil(d_model / 16).
    pub dt_rank: Option<i64>,
    /// Range Δ is initialised in (log-uniform).
    pub dt_min: f64,
    pub dt_max: f64,
    /// Timesteps per chunk of the parallel scan (scanned one step at a time, all chunks at once).
    pub chunk_size: i64,
    /// Chunks the parallel scan processes together; blocks of `chunk_size · chunks_per_block`
    /// steps run one after another, which bounds the scan's working memory.
    pub chunks_per_block: i64,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
    /// Input-dependent Δ, B, C (Mamba). `false` makes them learned constants: a linear
    /// time-invariant SSM (S4-like), the ablation that cannot do selective copying.
    pub selective: bool,
}

impl Default for MambaConfig {
    fn default() -> Self {
        MambaConfig {
            d_model: 256,
            n_layers: 2,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            dt_rank: None,
            dt_min: 0.001,
            dt_max: 0.1,
            chunk_size: 16,
            chunks_per_block: 64,
            norm_eps: 1e-5,
            selective: true,
        }
    }
}

impl MambaConfig {
    pub fn d_inner(&self) -> i64 {
        self.expand * self.d_model
    }

    pub fn dt_rank(&self) -> i64 {
        self.dt_rank.unwrap_or((self.d_model + 15) / 16)
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("chunk_size", self.chunk_size),
            ("chunks_per_block", self.chunks_per_block),
        ];
        for (key, v) in positive {
            if v <= 0 {
                return Err(format!("mamba.{key} = {v} must be positive"));
            }
        }
        if !(self.dt_min > 0.0 && self.dt_min <= self.dt_max) {
            return Err(format!("mamba.dt_min/dt_max = {}/{} must satisfy 0 < min <= max", self.dt_min, self.dt_max));
        }
        Ok(())
    }
}

/// Which scan computes the sequence path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Sequential recurrence (slow, obviously right).
    Reference,
    /// Blocked parallel scan over chunks ([`selective_scan_chunked`]): the training path.
    Chunked,
}

/// `h0`, or zeros `[b, e, n]` shaped from `u: [b, l, e]` and `a: [e, n]`.
fn initial_state(u: &Tensor, a: &Tensor, h0: Option<&Tensor>) -> Tensor {
    match h0 {
        Some(h) => h.shallow_clone(),
        None => {
            let (b, _, e) = u.size3().expect("u is [b, l, e]");
            Tensor::zeros([b, e, a.size()[1]], (u.kind(), u.device()))
        }
    }
}

/// Sequential selective scan: `h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t u_t`, `y_t = C_t h_t + D u_t`.
/// `u, dt: [b, l, e]`, `a: [e, n]`, `bm, cm: [b, l, n]`, `d: [e]`, `h0: [b, e, n]`.
/// Returns `y: [b, l, e]` and the last state `[b, e, n]`.
pub fn selective_scan_ref(
    u: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    cm: &Tensor,
    d: &Tensor,
    h0: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let l = u.size()[1];
    let mut h = initial_state(u, a, h0);
    let mut ys = Vec::with_capacity(l as usize);
    for t in 0..l {
        let dt_t = dt.select(1, t); // [b, e]
        let u_t = u.select(1, t); // [b, e]
        let da = (dt_t.unsqueeze(-1) * a).exp(); // [b, e, n]
        let dbu = (&dt_t * &u_t).unsqueeze(-1) * bm.select(1, t).unsqueeze(1); // [b, e, n]
        h = da * h + dbu;
        ys.push((&h * cm.select(1, t).unsqueeze(1)).sum_dim_intlist(-1, false, Kind::Float)); // [b, e]
    }
    let y = Tensor::stack(&ys, 1) + u * d; // [b, l, e]
    (y, h)
}

/// Chunked parallel selective scan, same contract as [`selective_scan_ref`] (`chunk` steps per
/// chunk, `block` chunks scanned together).
///
/// The blocked form of a parallel scan (local scans, carry, fix-up), on each block of
/// `block · chunk` steps:
/// 1. every chunk of the block is scanned from a zero state at once: `chunk` steps of ops on
///    `[b · chunks, e, n]`, parallel over chunks;
/// 2. the state entering each chunk is carried across the block, one small op per chunk:
///    `s_{k+1} = exp(A Σ_{t∈k} Δ_t) s_k + h_end_k`, starting from the block's entering state;
/// 3. each output gets the carried state's share, `C_t · (exp(A Σ_{s∈k, s≤t} Δ_s) s_k)`, again
///    `chunk` steps over all chunks at once.
///
/// Every factor is `exp` of a non-positive number, so it is stable for any decay. The op count
/// per block is ~`9·chunk + chunks` instead of ~`7·chunk·chunks`, and each op works on
/// `[b · block, e, n]` (2 MB at the defaults) whatever the length: blocks run one after another.
/// The log-space form (`logcumsumexp` over whole chunks) was 10× slower than the reference on a
/// 2-core CPU: it makes ~15 passes over `[b, l, e, n]` (experiments/2026-11-29-seq-bench).
#[allow(clippy::too_many_arguments)]
pub fn selective_scan_chunked(
    u: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    cm: &Tensor,
    d: &Tensor,
    h0: Option<&Tensor>,
    chunk: i64,
    block: i64,
) -> (Tensor, Tensor) {
    let l = u.size()[1];
    let span = chunk * block;
    let mut h = initial_state(u, a, h0);
    let mut ys = Vec::with_capacity((l / span + 1) as usize);
    let du = dt * u; // [b, l, e]
    let mut start = 0;
    while start < l {
        let len = span.min(l - start);
        let (y, h_next) = scan_block(
            &dt.narrow(1, start, len),
            &du.narrow(1, start, len),
            a,
            &bm.narrow(1, start, len),
            &cm.narrow(1, start, len),
            &h,
            chunk.min(len),
        );
        ys.push(y);
        h = h_next;
        start += len;
    }
    let y = Tensor::cat(&ys, 1) + u * d; // [b, l, e]
    (y, h)
}

/// One block of [`selective_scan_chunked`]: `dt, du: [b, l, e]`, `bm, cm: [b, l, n]`, entering
/// state `h0: [b, e, n]` → (`C h` without the skip term `[b, l, e]`, leaving state `[b, e, n]`).
fn scan_block(
    dt: &Tensor,
    du: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    cm: &Tensor,
    h0: &Tensor,
    chunk: i64,
) -> (Tensor, Tensor) {
    let (b, l, e) = dt.size3().expect("dt is [b, l, e]");
    let n = a.size()[1];
    let chunks = (l + chunk - 1) / chunk;
    let k = b * chunks;
    // Pad to whole chunks with Δ = 0 and no input: padded steps neither decay nor change the state.
    let pad = chunks * chunk - l;
    let padded = |x: &Tensor| if pad > 0 { x.constant_pad_nd([0, 0, 0, pad]) } else { x.shallow_clone() };
    // Time-major within chunks: [chunk, b·chunks, ·].
    let by_step = |x: &Tensor, w: i64| padded(x).reshape([k, chunk, w]).transpose(0, 1);
    let dt_s = by_step(dt, e); // [c, k, e]
    let du_s = by_step(du, e).unsqueeze(-1); // [c, k, e, 1]
    let b_s = by_step(bm, n).unsqueeze(2); // [c, k, 1, n]
    let c_s = by_step(cm, n).unsqueeze(-1); // [c, k, n, 1]

    // 1. Local scans from zero, all chunks at once.
    let mut h = Tensor::zeros([k, e, n], (dt.kind(), dt.device()));
    let mut local = Vec::with_capacity(chunk as usize);
    for t in 0..chunk {
        let decay = (dt_s.get(t).unsqueeze(-1) * a).exp(); // [k, e, n]
        h = (decay * &h).addcmul(&du_s.get(t), &b_s.get(t));
        local.push(h.bmm(&c_s.get(t))); // [k, e, 1]
    }
    // 2. Carry the entering state across chunks.
    let decay_to = dt_s.cumsum(0, Kind::Float); // [c, k, e]: Σ Δ from the chunk's start
    let h_end = h.view([b, chunks, e, n]);
    let chunk_decay = (decay_to.get(chunk - 1).unsqueeze(-1) * a).exp().view([b, chunks, e, n]);
    let mut s = h0.shallow_clone();
    let mut entering = Vec::with_capacity(chunks as usize);
    for c in 0..chunks {
        let next = h_end.select(1, c).addcmul(&chunk_decay.select(1, c), &s);
        entering.push(s);
        s = next;
    }
    let entering = Tensor::stack(&entering, 1).view([k, e, n]);
    // 3. Add the entering state's share to every output.
    let mut carried = Vec::with_capacity(chunk as usize);
    for t in 0..chunk {
        let decay = (decay_to.get(t).unsqueeze(-1) * a).exp(); // [k, e, n]
        carried.push((decay * &entering).bmm(&c_s.get(t)));
    }
    let y = (Tensor::cat(&local, -1) + Tensor::cat(&carried, -1)) // [k, e, c]
        .transpose(1, 2)
        .reshape([b, chunks * chunk, e])
        .narrow(1, 0, l);
    (y, s)
}

/// The recurrent state of one block: constant size whatever the sequence length.
#[derive(Debug)]
pub struct BlockState {
    /// The last `d_conv` conv inputs: `[b, e, k]`.
    pub conv: Tensor,
    /// The SSM state: `[b, e, n]`.
    pub ssm: Tensor,
}

impl BlockState {
    pub fn bytes(&self) -> usize {
        (self.conv.numel() + self.ssm.numel()) * 4
    }
}

/// One Mamba mixer (`mamba_simple.Mamba`).
#[derive(Debug)]
pub struct MambaBlock {
    in_proj: nn::Linear,
    conv_weight: Tensor, // [e, 1, k]
    conv_bias: Tensor,   // [e]
    x_proj: nn::Linear,
    dt_proj: nn::Linear,
    a_log: Tensor, // [e, n]
    d: Tensor,     // [e]
    out_proj: nn::Linear,
    /// Learned constant B, C `[n]` when not selective.
    b_const: Option<Tensor>,
    c_const: Option<Tensor>,
    cfg: MambaConfig,
}

impl MambaBlock {
    pub fn new(p: nn::Path, cfg: &MambaConfig) -> MambaBlock {
        let (dm, e, n, k, r) = (cfg.d_model, cfg.d_inner(), cfg.d_state, cfg.d_conv, cfg.dt_rank());
        let no_bias = nn::LinearConfig { bias: false, ..Default::default() };
        let in_proj = nn::linear(&p / "in_proj", dm, 2 * e, no_bias);
        let bound = 1.0 / (k as f64).sqrt();
        let conv_weight = p.var("conv_weight", &[e, 1, k], nn::Init::Uniform { lo: -bound, up: bound });
        let conv_bias = p.var("conv_bias", &[e], nn::Init::Uniform { lo: -bound, up: bound });
        let x_proj = nn::linear(&p / "x_proj", e, r + 2 * n, no_bias);
        let dt_std = (r as f64).powf(-0.5);
        let mut dt_proj = nn::linear(
            &p / "dt_proj",
            r,
            e,
            nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -dt_std, up: dt_std }, ..Default::default() },
        );
        // Δ bias = softplus⁻¹(Δ₀) with Δ₀ log-uniform in [dt_min, dt_max] (reference init).
        tch::no_grad(|| {
            let (lo, hi) = (cfg.dt_min.ln(), cfg.dt_max.ln());
            let dt0 = (Tensor::rand([e], (Kind::Float, p.device())) * (hi - lo) + lo).exp().clamp_min(1e-4);
            let inv = &dt0 + (-(-&dt0).expm1()).log();
            dt_proj.bs.as_mut().expect("dt_proj has a bias").copy_(&inv);
        });
        let a0 = Tensor::arange_start(1, n + 1, (Kind::Float, p.device())).log().unsqueeze(0).repeat([e, 1]);
        let a_log = p.var_copy("a_log", &a0);
        let d = p.ones("d", &[e]);
        let out_proj = nn::linear(&p / "out_proj", e, dm, no_bias);
        let (b_const, c_const) = if cfg.selective {
            (None, None)
        } else {
            (Some(p.randn_standard("b_const", &[n])), Some(p.randn_standard("c_const", &[n])))
        };
        MambaBlock {
            in_proj,
            conv_weight,
            conv_bias,
            x_proj,
            dt_proj,
            a_log,
            d,
            out_proj,
            b_const,
            c_const,
            cfg: cfg.clone(),
        }
    }

    /// `[b, l, e]` conv-activated inputs → (Δ `[b, l, e]`, B `[b, l, n]`, C `[b, l, n]`), or the
    /// same without the `l` axis for one step.
    fn ssm_params(&self, xc: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (r, n) = (self.cfg.dt_rank(), self.cfg.d_state);
        if let (Some(b), Some(c)) = (&self.b_const, &self.c_const) {
            // Time-invariant: Δ from the bias alone, B and C constant (same shapes as selective).
            let mut lead = xc.size();
            lead.pop();
            let bias = self.dt_proj.bs.as_ref().expect("dt_proj has a bias");
            let dt = bias.softplus().expand([&lead[..], &[self.cfg.d_inner()]].concat(), false);
            let shape = [&lead[..], &[n]].concat();
            return (dt, b.expand(&shape, false), c.expand(&shape, false));
        }
        let parts = xc.apply(&self.x_proj).split_with_sizes([r, n, n], -1);
        let dt = parts[0].apply(&self.dt_proj).softplus();
        (dt, parts[1].shallow_clone(), parts[2].shallow_clone())
    }

    /// `x: [b, l, d]` → `[b, l, d]`.
    pub fn forward(&self, x: &Tensor, scan: Scan) -> Tensor {
        let (_, l, _) = x.size3().expect("x is [b, l, d]");
        let (e, k) = (self.cfg.d_inner(), self.cfg.d_conv);
        let xz = x.apply(&self.in_proj).split(e, -1); // 2 × [b, l, e]
        let xc = xz[0]
            .transpose(1, 2)
            .conv1d(&self.conv_weight, Some(&self.conv_bias), [1], [k - 1], [1], e)
            .narrow(2, 0, l)
            .transpose(1, 2)
            .silu(); // [b, l, e]
        let (dt, bm, cm) = self.ssm_params(&xc);
        let a = -self.a_log.exp(); // [e, n]
        let (y, _) = match scan {
            Scan::Reference => selective_scan_ref(&xc, &dt, &a, &bm, &cm, &self.d, None),
            Scan::Chunked => selective_scan_chunked(
                &xc,
                &dt,
                &a,
                &bm,
                &cm,
                &self.d,
                None,
                self.cfg.chunk_size,
                self.cfg.chunks_per_block,
            ),
        };
        (y * xz[1].silu()).apply(&self.out_proj)
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> BlockState {
        let (e, n, k) = (self.cfg.d_inner(), self.cfg.d_state, self.cfg.d_conv);
        BlockState {
            conv: Tensor::zeros([batch, e, k], (Kind::Float, device)),
            ssm: Tensor::zeros([batch, e, n], (Kind::Float, device)),
        }
    }

    /// One timestep: `x: [b, d]` → `[b, d]`, updating `state` in place of the sequence.
    pub fn step(&self, x: &Tensor, state: &mut BlockState) -> Tensor {
        let (e, k) = (self.cfg.d_inner(), self.cfg.d_conv);
        let xz = x.apply(&self.in_proj).split(e, -1); // 2 × [b, e]
        state.conv = Tensor::cat(&[state.conv.narrow(2, 1, k - 1), xz[0].unsqueeze(-1)], 2); // [b, e, k]
        let xc = ((&state.conv * self.conv_weight.squeeze_dim(1)).sum_dim_intlist(-1, false, Kind::Float)
            + &self.conv_bias)
            .silu(); // [b, e]
        let (dt, bm, cm) = self.ssm_params(&xc); // [b, e], [b, n], [b, n]
        let a = -self.a_log.exp(); // [e, n]
        let da = (dt.unsqueeze(-1) * a).exp(); // [b, e, n]
        state.ssm = da * &state.ssm + (&dt * &xc).unsqueeze(-1) * bm.unsqueeze(1);
        let y = (&state.ssm * cm.unsqueeze(1)).sum_dim_intlist(-1, false, Kind::Float) + &xc * &self.d; // [b, e]
        (y * xz[1].silu()).apply(&self.out_proj)
    }
}

/// RMSNorm with a learned scale.
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64) -> RmsNorm {
        RmsNorm { weight: p.ones("weight", &[dim]), eps }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let d = *x.size().last().expect("non-scalar");
        x.rms_norm([d], Some(&self.weight), self.eps)
    }
}

/// A stack of residual Mamba blocks with pre-RMSNorm and a final norm.
#[derive(Debug)]
pub struct Mamba {
    norms: Vec<RmsNorm>,
    blocks: Vec<MambaBlock>,
    norm_f: RmsNorm,
}

impl Mamba {
    pub fn new(p: nn::Path, cfg: &MambaConfig) -> Mamba {
        let layers = &p / "layers";
        let mut norms = vec![];
        let mut blocks = vec![];
        for i in 0..cfg.n_layers {
            norms.push(RmsNorm::new(&layers / i / "norm", cfg.d_model, cfg.norm_eps));
            blocks.push(MambaBlock::new(&layers / i / "mixer", cfg));
        }
        Mamba { norms, blocks, norm_f: RmsNorm::new(&p / "norm_f", cfg.d_model, cfg.norm_eps) }
    }

    /// `x: [b, l, d]` → `[b, l, d]`.
    pub fn forward(&self, x: &Tensor, scan: Scan) -> Tensor {
        let mut h = x.shallow_clone();
        for (norm, block) in self.norms.iter().zip(&self.blocks) {
            h = &h + block.forward(&h.apply(norm), scan);
        }
        h.apply(&self.norm_f)
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> Vec<BlockState> {
        self.blocks.iter().map(|b| b.zero_state(batch, device)).collect()
    }

    /// One timestep `[b, d]` → `[b, d]`.
    pub fn step(&self, x: &Tensor, state: &mut [BlockState]) -> Tensor {
        let mut h = x.shallow_clone();
        for ((norm, block), s) in self.norms.iter().zip(&self.blocks).zip(state.iter_mut()) {
            h = &h + block.step(&h.apply(norm), s);
        }
        h.apply(&self.norm_f)
    }
}
