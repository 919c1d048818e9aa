//! The int8 product on AVX-512 VNNI (`vpdpbusd`: unsigned 8-bit times signed 8-bit, four
//! products summed into each int32 lane), the instruction LiteRT's XNNPACK uses on these
//! CPUs. Inputs are made unsigned by adding 128 (flipping the sign bit), which the
//! channels' offsets take back: `sum((x + 128) * w) - 128 * sum(w) = sum(x * w)`.
//! Requantisation runs in the same registers: float32 multiply, round to nearest even
//! (the CPU's default rounding, as `f32::round_ties_even`), exactly as the portable path.

use super::requant::{round_clamped_x16, Requant};
use std::arch::x86_64::*;

/// Output channels per block (one 512-bit register of int32 lanes).
const LANES: usize = 16;
/// Rows from which a product runs on AMX tiles (where the CPU has them).
const AMX_MIN_ROWS: usize = 16;

/// Whether this CPU runs [`VnniWeights`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// Weights packed in blocks of 16 channels by groups of 4 depths, with their offsets and
/// requantisation parameters padded to whole blocks.
#[derive(Clone, Debug)]
pub(crate) struct VnniWeights {
    packed: Vec<i8>,
    /// Depth rounded up to a multiple of 4 (the row stride of the unsigned inputs).
    pub(crate) k4: usize,
    n: usize,
    blocks: usize,
    offsets: Vec<i32>,
    /// The offsets for signed inputs (the AMX product, `tdpbssd`).
    signed_offsets: Vec<i32>,
    scales: Vec<f32>,
    /// The output range less the zero point, in float.
    lo: f32,
    hi: f32,
    zero_point: i32,
    /// The weights again for AMX tiles, on CPUs whose kernel grants them: as `packed`,
    /// with the groups of each block padded to whole tiles of 16 (zeros).
    amx: Option<Vec<i8>>,
}

impl VnniWeights {
    /// Packs `weights` (`n` rows of `k`, summing to `sums`); `offsets[j]` already
    /// includes everything but `sum(x * w)`; `requant` gives the scales, output zero
    /// point and range.
    pub(crate) fn new(
        weights: &[i8],
        n: usize,
        k: usize,
        offsets: &[i32],
        sums: &[i32],
        requant: &Requant,
    ) -> Self {
        let (scales, zero_point, range) = (requant.scales(), requant.zero_point(), requant.range());
        let k4 = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(LANES);
        let groups = k4 / 4;
        let mut packed = vec![0i8; blocks * LANES * k4];
        for j in 0..n {
            let (jb, c) = (j / LANES, j % LANES);
            for d in 0..k {
                let (g, t) = (d / 4, d % 4);
                packed[((jb * groups + g) * LANES + c) * 4 + t] = weights[j * k + d];
            }
        }
        let signed_offsets: Vec<i32> = (0..blocks * LANES)
            .map(|j| offsets.get(j).copied().unwrap_or(0))
            .collect();
        let offsets = signed_offsets
            .iter()
            .enumerate()
            .map(|(j, &o)| {
                let sum = sums.get(j).copied().unwrap_or(0);
                o.wrapping_sub(128i32.wrapping_mul(sum))
            })
            .collect();
        let scales = (0..blocks * LANES)
            .map(|j| match scales.len() {
                1 => scales[0],
                _ => scales.get(j).copied().unwrap_or(1.0),
            })
            .collect();
        let amx = super::amx::available().then(|| {
            let tile_groups = groups.div_ceil(16) * 16;
            let mut p = vec![0i8; blocks * tile_groups * LANES * 4];
            for jb in 0..blocks {
                let from = &packed[jb * groups * LANES * 4..(jb + 1) * groups * LANES * 4];
                p[jb * tile_groups * LANES * 4..][..from.len()].copy_from_slice(from);
            }
            p
        });
        VnniWeights {
            amx,
            packed,
            k4,
            n,
            blocks,
            offsets,
            signed_offsets,
            scales,
            lo: (range.0 - zero_point) as f32,
            hi: (range.1 - zero_point) as f32,
            zero_point,
        }
    }

    /// `out` (`rows` x n) for `rows` int8 input rows of depth `k`, converted to unsigned
    /// rows of stride `k4` in `buf` a tile at a time.
    pub(crate) fn multiply(&self, input: &[i8], k: usize, out: &mut [i8], buf: &mut Vec<u8>) {
        let m = out.len() / self.n.max(1);
        // Fewer rows than a tile, or a depth padded to 64 by more than half again, would
        // leave much of each AMX product unused.
        let k64 = self.k4.div_ceil(64) * 64;
        let amx_fits = m >= AMX_MIN_ROWS && self.k4 * 3 >= k64 * 2;
        if let Some(amx) = self.amx.as_ref().filter(|_| amx_fits) {
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(super::amx::ROWS);
                // The tiles read each row for k64 bytes: past its end into the next row,
                // whose values meet the weights' zero padding. In place while a row
                // follows the block (k64 - k <= k, from `amx_fits`); the last block is
                // copied into zero-padded rows.
                let (a, stride) = if r + super::amx::ROWS < m {
                    (input[r * k..].as_ptr(), k)
                } else {
                    buf.clear();
                    buf.resize(super::amx::ROWS * k64, 0);
                    let rows_in = &input[r * k..(r + rows) * k];
                    super::row_tiles::convert_rows(rows_in, k, buf, k64, |s| s as u8);
                    (buf.as_ptr() as *const i8, k64)
                };
                let out = &mut out[r * self.n..(r + rows) * self.n];
                // SAFETY: AMX was granted (`amx::available`) when these weights were
                // packed; the ROWS rows at `a` can each be read for k64 bytes (above),
                // `amx` holds every block's whole tiles.
                unsafe { self.amx_kernel(amx, a, stride, k64, rows, out) };
                r += rows;
            }
            return;
        }
        let n = self.n;
        super::row_tiles::for_converted_tiles(
            input,
            k,
            m,
            self.k4,
            buf,
            |s| (s as u8) ^ 0x80,
            |u, r, rows| {
                // SAFETY: `available()` was checked when these weights were made (the only
                // constructor's caller does), and the slices hold `rows` rows of `k4` and
                // of `n`.
                unsafe { self.kernel(u, rows, &mut out[r * n..(r + rows) * n]) }
            },
        );
    }

    /// `out` (`m` rows x n) for the unsigned rows `u`: channel blocks in pairs, four
    /// rows per pass; an odd last block alone, eight rows per pass (so no block is
    /// computed twice and the accumulators fill the same registers).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel(&self, u: &[u8], m: usize, out: &mut [i8]) {
        let mut jb = 0;
        while jb + 2 <= self.blocks {
            // SAFETY: as for `kernel`; blocks jb and jb + 1 exist.
            unsafe { self.blocks_pass::<4, 2>(u, m, jb, out) };
            jb += 2;
        }
        if jb < self.blocks {
            // SAFETY: as above; block jb exists.
            unsafe { self.blocks_pass::<8, 1>(u, m, jb, out) };
        }
    }

    /// Channel blocks `jb..jb + B` of every row, `R` rows per pass.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn blocks_pass<const R: usize, const B: usize>(
        &self,
        u: &[u8],
        m: usize,
        jb: usize,
        out: &mut [i8],
    ) {
        let groups = self.k4 / 4;
        let w: [*const i8; B] = std::array::from_fn(|h| unsafe {
            self.packed.as_ptr().add((jb + h) * LANES * self.k4)
        });
        let mut r = 0;
        while r < m {
            let mr = (m - r).min(R);
            // Rows past the end repeat the last one (computed, not stored).
            let a: [*const u8; R] =
                std::array::from_fn(|i| unsafe { u.as_ptr().add((r + i.min(mr - 1)) * self.k4) });
            let mut acc = [[_mm512_setzero_si512(); B]; R];
            for g in 0..groups {
                // Loops, not closures: a closure does not get this function's target
                // features, and an intrinsic called from it is not inlined.
                let mut b = [_mm512_setzero_si512(); B];
                for (bh, wh) in b.iter_mut().zip(&w) {
                    *bh = unsafe { _mm512_loadu_si512(wh.add(g * 64).cast()) };
                }
                for (row, &p) in acc.iter_mut().zip(&a) {
                    let x =
                        _mm512_set1_epi32(unsafe { (p.add(g * 4) as *const i32).read_unaligned() });
                    for (v, &bh) in row.iter_mut().zip(&b) {
                        *v = _mm512_dpbusd_epi32(*v, x, bh);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate().take(mr) {
                for (h, &v) in row.iter().enumerate() {
                    // SAFETY: row r + i and block jb + h exist.
                    unsafe { self.store(v, &self.offsets, r + i, jb + h, out) };
                }
            }
            r += R;
        }
    }

    /// Requantises the int32 sums `v` of block `jb` of row `row` into `out`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn store(&self, v: __m512i, offsets: &[i32], row: usize, jb: usize, out: &mut [i8]) {
        let ch = jb * LANES;
        let count = self.n.saturating_sub(ch).min(LANES);
        unsafe {
            let v = _mm512_add_epi32(v, _mm512_loadu_si512(offsets.as_ptr().add(ch) as *const _));
            let scales = self.scales.as_ptr().add(ch);
            let q = round_clamped_x16(v, scales, self.lo, self.hi, self.zero_point);
            let mask: __mmask16 = ((1u32 << count) - 1) as __mmask16;
            _mm512_mask_cvtepi32_storeu_epi8(
                out.as_mut_ptr().add(row * self.n + ch) as *mut _,
                mask,
                q,
            );
        }
    }

    /// `out` (`m` <= ROWS rows x n) for the ROWS int8 rows at `a`, `stride` bytes apart,
    /// each readable for `k64` bytes (depths past k meet zero weights), on AMX tiles: per
    /// pair of channel blocks, the two row tiles times the two weight tiles, 64 depths at
    /// a time.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn amx_kernel(
        &self,
        w: &[i8],
        a: *const i8,
        stride: usize,
        k64: usize,
        m: usize,
        out: &mut [i8],
    ) {
        let tiles = k64 / 64;
        let block_bytes = tiles * 16 * 64;
        let mut c = [[0i32; 256]; 4];
        let _config = super::amx::Config::load();
        let mut jb = 0;
        while jb < self.blocks {
            let pair = (self.blocks - jb).min(2);
            // SAFETY: the tiles read lie in the rows at `a` (per the contract) and in `w`
            // (block jb, and jb + 1 when it exists, of `tiles` tiles each).
            unsafe {
                let b0 = w.as_ptr().add(jb * block_bytes);
                let b1 = (pair == 2).then(|| w.as_ptr().add((jb + 1) * block_bytes));
                super::amx::product(a, stride, b0, b1, tiles, &mut c);
            }
            for (h, blk) in (jb..jb + pair).enumerate() {
                for i in 0..m {
                    let tile = &c[(i / 16) * 2 + h];
                    // SAFETY: the tile row holds 16 int32; row i and block blk exist.
                    unsafe {
                        let v = _mm512_loadu_si512(tile[(i % 16) * 16..].as_ptr() as *const _);
                        self.store(v, &self.signed_offsets, i, blk, out);
                    }
                }
            }
            jb += pair;
        }
    }
}
