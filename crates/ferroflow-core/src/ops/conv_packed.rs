//! Float convolutions with a filter packed once, for filters that do not change between
//! calls (the constant filters of a TFLite or ONNX model). The general convolution
//! lowers each tile to a patch matrix and hands it to a gemm that packs both operands on
//! every call: at batch 1 the repacking of the filter costs about as much as the
//! multiply-adds. Here the filter is laid out once in slivers of 16 output channels, and
//! each register tile of output pixels reads its input pixels where they lie (one
//! address per pixel and filter row, a row of zeros for the padding, a copy only for a
//! window across the left or right border): no patch matrix, no
//! repacking, the bias and a ReLU/ReLU6 applied in registers. The same plan as XNNPACK's
//! indirect gemm. The register tiles are written for AVX-512 (8 pixels by 32 channels) and
//! AVX2 + FMA (6 pixels by 16 channels); on other CPUs the filter is not packed and the
//! general kernel runs.

use super::conv::{Conv2dGeom, Padding};
use super::conv_epilogue::{ConvEpilogue, Epilogue};
use super::unary::UnaryOp;
use crate::parallel::{for_each_part, num_threads, Isa, SharedMut};
use crate::{DType, Error, Result, Tensor};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::{conv_packed_avx2, conv_packed_avx512};

/// Most output pixels of a tile on any kernel (the capacity of a tile's row addresses).
const MAX_MR: usize = 8;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(conv_packed_avx512::MR <= MAX_MR && conv_packed_avx2::MR <= MAX_MR);

/// Output channels of a sliver of the packed filter (one vector).
const SLIVER: usize = 16;
/// Tiles of output pixels a task computes before moving to the next slivers: their input
/// rows stay in L2 across the slivers, each pair of slivers in L1 across the tiles.
const CHUNK_TILES: usize = 16;
/// Bytes of a pair of slivers up to which a tile computes all its channels before the
/// next tile (rather than a pair of slivers for all the chunk's tiles before the next).
const SLIVERS_IN_L1_BYTES: usize = 16 << 10;
/// Output bytes from which threads take chunks of tiles as they come free instead of one
/// fixed block each.
const SHARED_MIN_BYTES: usize = 8 << 20;
/// A float convolution filter (HWIO, one group) packed for [`Tensor::conv2d_packed`].
#[derive(Clone)]
pub struct PackedConvFilter {
    /// The filter as given, for the general kernel when the packed one cannot run.
    filter: Tensor,
    /// Per sliver of [`SLIVER`] output channels (zeros past `cout`): per tap, per input
    /// channel, the sliver's filter values.
    slivers: Vec<f32>,
}

impl std::fmt::Debug for PackedConvFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedConvFilter")
            .field("shape", &self.filter.shape())
            .finish()
    }
}

impl PackedConvFilter {
    /// Packs an f32 `[kh, kw, cin, cout]` filter; `None` when this CPU has no packed
    /// kernel (neither AVX-512 nor AVX2 with FMA) or the filter is not f32, in which case
    /// [`Tensor::conv2d_fused`] is the way to run it.
    pub fn new(filter: &Tensor) -> Result<Option<Self>> {
        if filter.rank() != 4 {
            return Err(Error::invalid(
                "conv2d",
                format!(
                    "a packed filter needs rank 4, got shape {:?}",
                    filter.shape()
                ),
            ));
        }
        if filter.dtype() != DType::F32 || Kernel::detect().is_none() {
            return Ok(None);
        }
        let f = filter.shape();
        let (rows, cout) = (f[0] * f[1] * f[2], f[3]);
        let len = rows
            .checked_mul(cout.next_multiple_of(SLIVER))
            .ok_or_else(|| Error::invalid("conv2d", format!("filter {f:?} is too large")))?;
        let w = filter.contiguous_data::<f32>()?;
        let mut slivers = Vec::new();
        slivers
            .try_reserve_exact(len)
            .map_err(|_| Error::invalid("conv2d", format!("no memory to pack filter {f:?}")))?;
        for c0 in (0..cout).step_by(SLIVER) {
            for row in w.chunks_exact(cout) {
                slivers.extend((c0..c0 + SLIVER).map(|c| row.get(c).copied().unwrap_or(0.0)));
            }
        }
        Ok(Some(PackedConvFilter {
            filter: filter.clone(),
            slivers,
        }))
    }

    /// The filter as given (`[kh, kw, cin, cout]`).
    pub fn filter(&self) -> &Tensor {
        &self.filter
    }

    /// Writes the convolution of `x` (geometry `g`, this filter's) and `ep` into `out`
    /// (`n * oh * ow * cout` elements) with the packed kernel; false (and `out` untouched)
    /// when this CPU has none.
    pub(super) fn forward_into(
        &self,
        g: &Conv2dGeom,
        x: &[f32],
        ep: &Epilogue<'_>,
        out: &mut [f32],
    ) -> bool {
        let Some(kernel) = Kernel::detect() else {
            return false;
        };
        forward_into(g, x, &self.slivers, ep, kernel, out);
        true
    }
}

/// The register tile this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Kernel {
    /// Up to 8 pixels by a pair of slivers (`conv_packed_avx512`).
    Avx512,
    /// Up to 6 pixels by one sliver (`conv_packed_avx2`).
    Avx2,
}

impl Kernel {
    /// The kernel compiled for `isa`, `None` for the baseline (which has none).
    fn for_isa(isa: Isa) -> Option<Kernel> {
        match isa {
            Isa::Avx512 => Some(Kernel::Avx512),
            Isa::Avx2 => Some(Kernel::Avx2),
            Isa::Baseline => None,
        }
    }

    /// The kernel for this CPU, `None` where there is none.
    fn detect() -> Option<Kernel> {
        Kernel::for_isa(Isa::best())
    }

    /// Every kernel this CPU can run (the tests run each).
    #[cfg(test)]
    fn runnable() -> Vec<Kernel> {
        Isa::runnable()
            .into_iter()
            .filter_map(Kernel::for_isa)
            .collect()
    }

    /// Most output pixels of one tile.
    fn mr(self) -> usize {
        #[cfg(target_arch = "x86_64")]
        return match self {
            Kernel::Avx512 => conv_packed_avx512::MR,
            Kernel::Avx2 => conv_packed_avx2::MR,
        };
        #[cfg(not(target_arch = "x86_64"))]
        MAX_MR
    }

    /// Slivers one tile computes.
    fn slivers(self) -> usize {
        match self {
            Kernel::Avx512 => 2,
            Kernel::Avx2 => 1,
        }
    }
}

/// A tile's operands: where its input rows are and where its output goes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct Tile<'a> {
    /// Per tap: the address of each pixel's `depth` input values for that tap (a row of
    /// zeros where the tap falls into the padding); entries past the tile's pixels are
    /// unread.
    pub rows: &'a [[*const f32; MAX_MR]],
    /// Input values per tap.
    pub depth: usize,
    /// The first sliver: per tap, per input value, 16 filter values; the next sliver
    /// `sliver_len` values further.
    pub sliver: *const f32,
    pub sliver_len: usize,
    /// 16 values per sliver added to the sums (the bias, zeros past the channels).
    pub bias: *const f32,
    /// 16 values per sliver the sums are multiplied by before the bias is added; null
    /// when there is no scale (the sums start from the bias then).
    pub scale: *const f32,
    /// Lower and upper bound every output is clamped to (a fused ReLU or ReLU6); `None`
    /// stores the sums as they are (NaN included).
    pub clamp: Option<(f32, f32)>,
    /// The first pixel's first output channel of the tile; pixels `out_stride` apart.
    pub out: *mut f32,
    pub out_stride: usize,
    /// Channels of the last sliver written (1 to 16; the rest of it is not stored).
    pub last_lanes: usize,
}

impl Tensor {
    /// [`Tensor::conv2d_fused`] with a packed filter (one group): the same result, faster
    /// for a filter used on many calls. Under a recording tape or a tracer, for an input
    /// that is not f32 and for a pointwise convolution with an output of more than 8 MiB,
    /// it runs as `conv2d_fused` with the filter as given.
    pub fn conv2d_packed(
        &self,
        filter: &PackedConvFilter,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
        epilogue: ConvEpilogue<'_>,
    ) -> Result<Tensor> {
        let kernel = Kernel::detect();
        self.conv2d_packed_on(filter, strides, padding, dilations, epilogue, kernel)
    }

    /// [`Tensor::conv2d_packed`] on register tile `kernel` (one this CPU has).
    fn conv2d_packed_on(
        &self,
        filter: &PackedConvFilter,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
        epilogue: ConvEpilogue<'_>,
        kernel: Option<Kernel>,
    ) -> Result<Tensor> {
        let op = "conv2d";
        let f = &filter.filter;
        let observed = crate::trace::is_tracing() || crate::autodiff::is_recording();
        let g = Conv2dGeom::new(op, self.shape(), f.shape(), strides, padding, dilations)?;
        let ep = epilogue.kernel_form(&[g.n, g.oh, g.ow, g.cout]);
        let (Some(ep), Some(kernel), false, DType::F32) = (ep, kernel, observed, self.dtype())
        else {
            return self.conv2d_fused(f, strides, padding, dilations, epilogue);
        };
        // A pointwise convolution needs no patches, and the general kernel's gemm packs
        // its operands well over many pixels: it was faster for outputs beyond the caches
        // (batch 16 through MobileNetV2).
        let out_bytes = 4 * g.n * g.oh * g.ow * g.cout;
        let general_pointwise = g.is_pointwise() && out_bytes > SHARED_MIN_BYTES;
        if g.groups != 1 || general_pointwise {
            return self.conv2d_fused(f, strides, padding, dilations, epilogue);
        }
        let x = self.contiguous_data::<f32>()?;
        let out = forward(&g, &x, &filter.slivers, &ep, kernel);
        Tensor::from_vec(out, &[g.n, g.oh, g.ow, g.cout])
    }
}

/// How the output is cut between threads: tiles of pixels (as even as the kernel's tile
/// height allows) by slivers of channels, one block of either per thread.
struct Plan {
    /// Output pixels.
    m: usize,
    tiles: usize,
    slivers: usize,
    /// Blocks of tiles and of slivers.
    tile_parts: usize,
    sliver_parts: usize,
}

impl Plan {
    fn new(g: &Conv2dGeom, full_rows: bool, kernel: Kernel) -> Plan {
        let m = g.n * g.oh * g.ow;
        let tiles = m.div_ceil(kernel.mr());
        let slivers = g.cout.div_ceil(SLIVER);
        // One block per thread, block `p` on worker `p` ([`for_each_part`]): the pixels a
        // layer leaves in a core's cache are the ones that core reads next. A block reads
        // its tiles' input rows and its slivers' filter values: cut the larger of the two
        // so that each thread reads only its share of it.
        let rows = g.kh * g.kw * g.cin;
        // Called from outside the pool, a small convolution stays on this thread (handing
        // out its parts would cost more than they gain).
        let threads = match crate::parallel::handoff_pays(m * rows * g.cout) {
            true => num_threads().max(1),
            false => 1,
        };
        // (The filter has `rows * cout` values, the tiles' input rows `m * rows`.)
        let by_slivers = !full_rows && rows > 0 && g.cout > m && slivers >= threads;
        let (tile_parts, sliver_parts) = if by_slivers {
            (1, threads)
        } else {
            (threads.min(tiles).max(1), 1)
        };
        Plan {
            m,
            tiles,
            slivers,
            tile_parts,
            sliver_parts,
        }
    }

    /// Pixels of tile `t`: the tiles share the pixels as evenly as possible.
    fn tile_pixels(&self, t: usize) -> std::ops::Range<usize> {
        t * self.m / self.tiles..(t + 1) * self.m / self.tiles
    }

    fn parts(&self) -> usize {
        self.tile_parts * self.sliver_parts
    }

    /// The tiles and slivers of block `p`.
    fn block(&self, p: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (t, s) = (p / self.sliver_parts, p % self.sliver_parts);
        let even = |i: usize, parts: usize, n: usize| i * n / parts..(i + 1) * n / parts;
        (
            even(t, self.tile_parts, self.tiles),
            even(s, self.sliver_parts, self.slivers),
        )
    }
}

/// The convolution into a new `[pixels, cout]` buffer.
fn forward(
    g: &Conv2dGeom,
    x: &[f32],
    slivers: &[f32],
    ep: &Epilogue<'_>,
    kernel: Kernel,
) -> Vec<f32> {
    let mut out = crate::alloc::overwritable::<f32>(g.n * g.oh * g.ow * g.cout);
    forward_into(g, x, slivers, ep, kernel, &mut out);
    out
}

/// [`forward`] into `out` (`n * oh * ow * cout` elements).
fn forward_into(
    g: &Conv2dGeom,
    x: &[f32],
    slivers: &[f32],
    ep: &Epilogue<'_>,
    kernel: Kernel,
    out: &mut [f32],
) {
    let plan = Plan::new(g, ep.tile().is_some(), kernel);
    assert_eq!(
        out.len(),
        plan.m * g.cout,
        "conv2d: output of the wrong size"
    );
    if out.is_empty() {
        return;
    }
    let mut bias = vec![0.0f32; g.cout.next_multiple_of(SLIVER)];
    if let Some(b) = ep.bias() {
        bias[..g.cout].copy_from_slice(b);
    }
    let scale = ep.scale().map(|s| {
        let mut padded = vec![0.0f32; g.cout.next_multiple_of(SLIVER)];
        padded[..g.cout].copy_from_slice(s);
        padded
    });
    // A residual comes before the activation, so the activation then runs on the block.
    let clamp = match ep.activation().filter(|_| !ep.has_residual()) {
        Some(UnaryOp::Relu) => Some((0.0, f32::INFINITY)),
        Some(UnaryOp::Relu6) => Some((0.0, 6.0)),
        _ => None,
    };
    let zeros = vec![0.0f32; g.kw * g.cin];
    let run = Run {
        kernel,
        g,
        x,
        slivers,
        bias: &bias,
        scale: scale.as_deref(),
        clamp,
        zeros: &zeros,
        border_columns: (0..g.ow).filter(|&ox| !window_inside(g, ox)).count(),
        ep,
        plan: &plan,
        out: SharedMut(out.as_mut_ptr()),
    };
    let parts = plan.parts();
    let all_slivers = 0..plan.slivers;
    if parts > 1 && plan.sliver_parts == 1 && 4 * plan.m * g.cout > SHARED_MIN_BYTES {
        // An output too large for the cores' caches: nothing to keep near a core, so the
        // threads share chunks as they come free (page faults on a new buffer and other
        // processes slow one thread more than another).
        let chunks = plan.tiles.div_ceil(CHUNK_TILES);
        (0..chunks).into_par_iter().for_each(|c| {
            let tiles = c * CHUNK_TILES..((c + 1) * CHUNK_TILES).min(plan.tiles);
            run.tiles(tiles, all_slivers.clone())
        });
    } else if parts > 1 {
        for_each_part(parts, |p| {
            let (tiles, slivers) = plan.block(p);
            run.tiles(tiles, slivers)
        });
    } else {
        run.tiles(0..plan.tiles, all_slivers);
    }
}

/// One call's operands, shared by its blocks.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Run<'a> {
    kernel: Kernel,
    g: &'a Conv2dGeom,
    x: &'a [f32],
    slivers: &'a [f32],
    bias: &'a [f32],
    /// Per output channel, padded like `bias`.
    scale: Option<&'a [f32]>,
    clamp: Option<(f32, f32)>,
    zeros: &'a [f32],
    /// Output columns whose window crosses the left or right border ([`window_inside`]).
    border_columns: usize,
    ep: &'a Epilogue<'a>,
    plan: &'a Plan,
    out: SharedMut<f32>,
}

/// Whether the window row of output column `ox` lies inside the input's width (when the
/// filter rows are read as contiguous runs: no dilation along the width).
fn window_inside(g: &Conv2dGeom, ox: usize) -> bool {
    let start = ox * g.stride.1;
    start >= g.pad.1 && start - g.pad.1 + g.kw <= g.w
}

/// Where a chunk's input rows come from.
struct Rows {
    /// Per tile of the chunk, per tap: one address per pixel.
    addresses: Vec<[*const f32; MAX_MR]>,
    /// Copies of the taps of pixels whose window crosses the left or right border, with
    /// zeros in the padding.
    border: Vec<f32>,
}

impl Run<'_> {
    /// The taps a tile reads and the input values per tap. Without dilation along the
    /// width, a filter row's taps read one contiguous run of `kw * cin` inputs (the
    /// packed filter's order): a tap per filter row, which spares a small `cin` (the 3
    /// channels of an image) the loop overhead of a tap per filter position.
    fn taps_and_depth(&self) -> (usize, usize) {
        let g = self.g;
        if g.dilation.1 == 1 {
            (g.kh, g.kw * g.cin)
        } else {
            (g.kh * g.kw, g.cin)
        }
    }

    /// Output tiles `tiles` by slivers `slivers`.
    fn tiles(&self, tiles: std::ops::Range<usize>, slivers: std::ops::Range<usize>) {
        let (plan, g) = (self.plan, self.g);
        if tiles.is_empty() || slivers.is_empty() {
            return;
        }
        let cols = slivers.start * SLIVER..(slivers.end * SLIVER).min(g.cout);
        let (taps, depth) = self.taps_and_depth();
        let mut rows = Rows {
            addresses: vec![[std::ptr::null::<f32>(); MAX_MR]; taps * CHUNK_TILES],
            border: Vec::new(),
        };
        let mut t0 = tiles.start;
        while t0 < tiles.end {
            let chunk = t0..(t0 + CHUNK_TILES).min(tiles.end);
            let all: [_; CHUNK_TILES] =
                std::array::from_fn(|i| plan.tile_pixels((chunk.start + i).min(chunk.end - 1)));
            let spans = &all[..chunk.len()];
            let pixels = spans[0].start..spans[spans.len() - 1].end;
            self.input_rows(spans, &mut rows);
            // The slivers of each tile: pairs (a last single one) on AVX-512, one by one
            // on AVX2.
            let per_tile = self.kernel.slivers();
            let pairs = (slivers.start..slivers.end)
                .step_by(per_tile)
                .map(|s| (s, per_tile == 2 && s + 2 <= slivers.end));
            let tile = |i: usize, (s, pair): (usize, bool)| {
                let addresses = &rows.addresses[i * taps..(i + 1) * taps];
                self.tile(spans[i].clone(), addresses, depth, s, pair);
            };
            if taps * depth * per_tile * SLIVER * 4 > SLIVERS_IN_L1_BYTES {
                // A tile's slivers stay in cache across the chunk's tiles.
                for pair in pairs {
                    (0..spans.len()).for_each(|i| tile(i, pair));
                }
            } else {
                // Every sliver fits in L1: each tile's output rows are written whole,
                // while they are in L1.
                for i in 0..spans.len() {
                    pairs.clone().for_each(|pair| tile(i, pair));
                }
            }
            self.finish(pixels, cols.clone());
            t0 = chunk.end;
        }
    }

    /// Fills `rows` for the tiles of pixels `spans` (consecutive): per tile, per tap, the
    /// address of each pixel's `depth` inputs for that tap (the zero row in the padding,
    /// a copy for a window across the left or right border).
    fn input_rows(&self, spans: &[std::ops::Range<usize>], rows: &mut Rows) {
        let g = self.g;
        let (sh, sw) = g.stride;
        let (dh, dw) = g.dilation;
        let (pt, pl) = g.pad;
        let (taps, depth) = self.taps_and_depth();
        let row_taps = taps == g.kh;
        let borders = if row_taps { self.border_columns } else { 0 };
        let pixels = spans.iter().map(|s| s.len()).sum::<usize>();
        rows.border.clear();
        let most = pixels.min(borders * (pixels / g.ow.max(1) + 2));
        rows.border.resize(most * taps * depth, 0.0);
        let mut used = 0;
        for (i, tile) in spans.iter().enumerate() {
            let (mut img, rest) = (tile.start / (g.oh * g.ow), tile.start % (g.oh * g.ow));
            let (mut oy, mut ox) = (rest / g.ow, rest % g.ow);
            for r in 0..tile.len() {
                if r > 0 {
                    ox += 1;
                    if ox == g.ow {
                        (ox, oy) = (0, oy + 1);
                        if oy == g.oh {
                            (oy, img) = (0, img + 1);
                        }
                    }
                }
                let copy = row_taps && !window_inside(g, ox);
                for ky in 0..g.kh {
                    let iy = (oy * sh + ky * dh).checked_sub(pt).filter(|&y| y < g.h);
                    let row = |ix: usize| ((img * g.h + iy.unwrap_or(0)) * g.w + ix) * g.cin;
                    if row_taps {
                        let address = match iy {
                            None => self.zeros.as_ptr(),
                            Some(_) if !copy => self.x[row(ox * sw - pl)..].as_ptr(),
                            Some(_) => {
                                let dst = &mut rows.border[used * depth..(used + 1) * depth];
                                for (kx, d) in dst.chunks_exact_mut(g.cin).enumerate() {
                                    match (ox * sw + kx).checked_sub(pl).filter(|&x| x < g.w) {
                                        Some(ix) => d.copy_from_slice(&self.x[row(ix)..][..g.cin]),
                                        None => d.fill(0.0),
                                    }
                                }
                                used += 1;
                                dst.as_ptr()
                            }
                        };
                        rows.addresses[i * taps + ky][r] = address;
                    } else {
                        for kx in 0..g.kw {
                            let ix = (ox * sw + kx * dw).checked_sub(pl).filter(|&x| x < g.w);
                            rows.addresses[i * taps + ky * g.kw + kx][r] = match (iy, ix) {
                                (Some(_), Some(ix)) => self.x[row(ix)..].as_ptr(),
                                _ => self.zeros.as_ptr(),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Computes the register tile of `pixels` by sliver `s` (and `s + 1` when `pair`).
    #[allow(unused_variables)]
    fn tile(
        &self,
        pixels: std::ops::Range<usize>,
        rows: &[[*const f32; MAX_MR]],
        depth: usize,
        s: usize,
        pair: bool,
    ) {
        let g = self.g;
        #[cfg(target_arch = "x86_64")]
        {
            let sliver_len = g.kh * g.kw * g.cin * SLIVER;
            let c0 = s * SLIVER;
            let last = if pair { c0 + SLIVER } else { c0 };
            let t = Tile {
                rows,
                depth,
                sliver: self.slivers[s * sliver_len..].as_ptr(),
                sliver_len,
                bias: self.bias[c0..].as_ptr(),
                scale: self.scale.map_or(std::ptr::null(), |s| s[c0..].as_ptr()),
                clamp: self.clamp,
                out: self.out.ptr().wrapping_add(pixels.start * g.cout + c0),
                out_stride: g.cout,
                last_lanes: (g.cout - last).min(SLIVER),
            };
            // SAFETY (every call below): the kernel was detected on this CPU; every row
            // address points at `depth` floats (input pixels, the zero row or a copied
            // patch); the slivers hold `sliver_len` values each and the bias is padded to
            // whole slivers; the tile's outputs lie inside `out`, written by this block
            // alone; the plan gives a tile at most the kernel's pixels.
            macro_rules! dispatch {
                (avx512: $($m:literal)*; avx2: $($m2:literal)*) => {
                    match (self.kernel, pixels.len(), pair) {
                        $(
                            (Kernel::Avx512, $m, true) => unsafe {
                                conv_packed_avx512::run::<$m, 2>(&t)
                            },
                            (Kernel::Avx512, $m, false) => unsafe {
                                conv_packed_avx512::run::<$m, 1>(&t)
                            },
                        )*
                        $(
                            (Kernel::Avx2, $m2, false) => unsafe {
                                conv_packed_avx2::run::<$m2>(&t)
                            },
                        )*
                        (k, m, pair) => unreachable!("{k:?} has no tile of {m} pixels (pair {pair})"),
                    }
                };
            }
            dispatch!(avx512: 1 2 3 4 5 6 7 8; avx2: 1 2 3 4 5 6);
        }
    }

    /// The epilogue steps the kernel does not do in registers, on the finished outputs of
    /// `pixels` and channels `cols`: the residual and an activation other than a clamp,
    /// then the tile function (the plan gives a block whole rows when there is one).
    fn finish(&self, pixels: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
        let cout = self.g.cout;
        let unclamped = self.ep.activation().is_some() && self.clamp.is_none();
        if unclamped || self.ep.has_residual() {
            // One run when the block has whole rows of channels, else a run per pixel.
            let whole = cols.len() == cout;
            let runs = if whole {
                pixels.start..pixels.start + 1
            } else {
                pixels.clone()
            };
            for p in runs {
                let run = match whole {
                    true => pixels.start * cout..pixels.end * cout,
                    false => p * cout + cols.start..p * cout + cols.end,
                };
                // SAFETY: the pixels and channels are this block's, inside the output.
                let seg = unsafe { self.out.slice(&run) };
                self.ep.apply_after_affine(seg, run.start);
            }
        }
        if let Some(tile) = self.ep.tile() {
            // SAFETY: with a tile function every block has whole rows (the plan).
            let rows = unsafe { self.out.slice(&(pixels.start * cout..pixels.end * cout)) };
            tile(pixels.start * cout, rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::normal;

    fn close(got: &Tensor, want: &Tensor, what: &str) {
        assert_eq!(got.shape(), want.shape(), "{what}");
        let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        for (i, (g, w)) in g.iter().zip(&w).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}: element {i}: {g} vs {w}"
            );
        }
    }

    /// Every geometry (pointwise, strided, padded, dilated; pixel counts that leave short
    /// tiles; channel counts that leave narrow and masked panels), with each epilogue
    /// step, on one and three threads, gives the general kernel's result.
    #[test]
    fn packed_convolutions_equal_the_general_kernel() {
        let cases = [
            ([1, 7, 7, 40], [1, 1, 40, 70], (1, 1), Padding::Same, (1, 1)),
            ([2, 5, 3, 3], [3, 3, 3, 32], (2, 2), Padding::Same, (1, 1)),
            ([1, 9, 11, 5], [3, 3, 5, 17], (1, 1), Padding::Valid, (1, 1)),
            (
                [1, 10, 9, 4],
                [3, 2, 4, 48],
                (2, 1),
                Padding::Explicit([1, 0, 2, 1]),
                (1, 1),
            ),
            ([1, 12, 12, 6], [3, 3, 6, 1], (1, 1), Padding::Same, (2, 3)),
            (
                [3, 1, 1, 16],
                [1, 1, 16, 96],
                (1, 1),
                Padding::Valid,
                (1, 1),
            ),
            (
                [1, 20, 20, 24],
                [1, 1, 24, 144],
                (1, 1),
                Padding::Valid,
                (1, 1),
            ),
        ];
        let acts = [
            None,
            Some(UnaryOp::Relu),
            Some(UnaryOp::Relu6),
            Some(UnaryOp::Tanh),
        ];
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for (xs, fs, s, p, d) in cases {
                    let x = normal(&xs, 0.0, 3.0, DType::F32, Some(1)).unwrap();
                    let f = normal(&fs, 0.0, 1.0, DType::F32, Some(2)).unwrap();
                    let b = normal(&[fs[3]], 0.0, 1.0, DType::F32, Some(3)).unwrap();
                    let sc = normal(&[fs[3]], 0.0, 1.0, DType::F32, Some(4)).unwrap();
                    let conv = x.conv2d(&f, s, p, d).unwrap();
                    let r = normal(conv.shape(), 0.0, 2.0, DType::F32, Some(5)).unwrap();
                    let row = normal(&[fs[3]], 0.0, 2.0, DType::F32, Some(6)).unwrap();
                    let Some(packed) = PackedConvFilter::new(&f).unwrap() else {
                        return; // no packed kernel on this CPU
                    };
                    for kernel in Kernel::runnable() {
                        let packed_on = |ep| {
                            x.conv2d_packed_on(&packed, s, p, d, ep, Some(kernel))
                                .unwrap()
                        };
                        for act in acts {
                            for bias in [None, Some(&b)] {
                                let ep = ConvEpilogue::new(bias, act);
                                let want = x.conv2d_fused(&f, s, p, d, ep).unwrap();
                                let bias = bias.is_some();
                                let what = format!("{kernel:?} {xs:?} {fs:?} {act:?} bias {bias}");
                                close(&packed_on(ep), &want, &what);
                            }
                            // A scale per channel before the bias, and a residual
                            // before the activation, against separate ops.
                            for residual in [None, Some(&r)] {
                                let ep = ConvEpilogue {
                                    scale: Some(&sc),
                                    residual,
                                    ..ConvEpilogue::new(Some(&b), act)
                                };
                                let y = conv.mul(&sc).unwrap().add(&b).unwrap();
                                let y = residual.map_or(Ok(y.clone()), |r| y.add(r)).unwrap();
                                let want = act.map_or(Ok(y.clone()), |a| y.unary(a)).unwrap();
                                let res = residual.is_some();
                                let what = format!(
                                    "{kernel:?} {xs:?} {fs:?} {act:?} scale, residual {res}"
                                );
                                close(&packed_on(ep), &want, &what);
                                close(&x.conv2d_fused(&f, s, p, d, ep).unwrap(), &want, &what);
                            }
                            // A residual alone, and one that broadcasts (run as ops).
                            for residual in [&r, &row] {
                                let ep = ConvEpilogue {
                                    residual: Some(residual),
                                    ..ConvEpilogue::new(None, act)
                                };
                                let y = conv.add(residual).unwrap();
                                let want = act.map_or(Ok(y.clone()), |a| y.unary(a)).unwrap();
                                let what = format!("{kernel:?} {xs:?} {fs:?} {act:?} residual");
                                close(&packed_on(ep), &want, &what);
                            }
                        }
                        let double = |_: usize, t: &mut [f32]| t.iter_mut().for_each(|v| *v *= 2.0);
                        let ep = ConvEpilogue {
                            tile: Some(&double),
                            ..ConvEpilogue::new(Some(&b), Some(UnaryOp::Relu))
                        };
                        let want = x.conv2d_fused(&f, s, p, d, ep).unwrap();
                        let what = format!("{kernel:?} {xs:?} {fs:?} with a tile");
                        close(&packed_on(ep), &want, &what);
                    }
                }
            });
        }
    }

    /// An output beyond the caches (chunks shared between threads as they come free)
    /// gives the general kernel's result too.
    #[test]
    fn outputs_shared_by_chunks_equal_the_general_kernel() {
        let x = normal(&[1, 128, 130, 1], 0.0, 1.0, DType::F32, Some(1)).unwrap();
        let f = normal(&[3, 3, 1, 128], 0.0, 1.0, DType::F32, Some(2)).unwrap();
        let b = normal(&[128], 0.0, 1.0, DType::F32, Some(3)).unwrap();
        let Some(packed) = PackedConvFilter::new(&f).unwrap() else {
            return;
        };
        assert!(4 * x.numel() * 128 > SHARED_MIN_BYTES);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let ep = ConvEpilogue::new(Some(&b), Some(UnaryOp::Relu6));
            let want = x.conv2d_fused(&f, (1, 1), Padding::Same, (1, 1), ep);
            let want = want.unwrap();
            for kernel in Kernel::runnable() {
                let same = Padding::Same;
                let got = x.conv2d_packed_on(&packed, (1, 1), same, (1, 1), ep, Some(kernel));
                close(&got.unwrap(), &want, &format!("{kernel:?}: a large output"));
            }
        });
    }

    /// What the packed kernel cannot take runs the general one: grouped inputs, another
    /// dtype, a recording tape (whose gradients are then those of the filter as given).
    #[test]
    fn packed_filters_fall_back_where_the_kernel_does_not_apply() {
        let f = normal(&[3, 3, 2, 4], 0.0, 1.0, DType::F32, Some(2)).unwrap();
        let Some(packed) = PackedConvFilter::new(&f).unwrap() else {
            return;
        };
        let grouped = normal(&[1, 6, 6, 4], 0.0, 1.0, DType::F32, Some(1)).unwrap();
        let ep = ConvEpilogue::default();
        let got = grouped.conv2d_packed(&packed, (1, 1), Padding::Same, (1, 1), ep);
        let want = grouped.conv2d(&f, (1, 1), Padding::Same, (1, 1));
        close(&got.unwrap(), &want.unwrap(), "two groups");
        let wrong = normal(&[1, 6, 6, 3], 0.0, 1.0, DType::F32, Some(1)).unwrap();
        let err = wrong.conv2d_packed(&packed, (1, 1), Padding::Same, (1, 1), ep);
        assert!(err.unwrap_err().to_string().contains("[1, 6, 6, 3]"));
        assert!(PackedConvFilter::new(&f.cast(DType::F64).unwrap())
            .unwrap()
            .is_none());
        assert!(
            PackedConvFilter::new(&normal(&[3, 4], 0.0, 1.0, DType::F32, None).unwrap()).is_err()
        );
    }
}
