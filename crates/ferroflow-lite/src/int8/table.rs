//! Elementwise int8 ops as a table of their 256 outputs (LOGISTIC, TANH, int8 -> int8
//! QUANTIZE), looked up 64 values at a time with AVX-512 VBMI byte permutes where the CPU
//! has them (Zen 4, Ice Lake and later), one at a time elsewhere.

/// `table[x]` for every `x` of `input` (the index is the value's byte, `x as u8`).
pub(crate) fn lookup(table: &[i8; 256], input: &[i8]) -> Vec<i8> {
    let mut out = ferroflow_core::alloc::overwritable::<i8>(input.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vbmi")
    {
        // SAFETY: the features were detected on this CPU.
        unsafe { lookup_vbmi(table, input, &mut out) };
        return out;
    }
    lookup_portable(table, input, &mut out);
    out
}

fn lookup_portable(table: &[i8; 256], input: &[i8], out: &mut [i8]) {
    for (y, &x) in out.iter_mut().zip(input) {
        *y = table[x as u8 as usize];
    }
}

/// Two two-register permutes give the entries of bytes 0..128 and 128..256; the index's
/// top bit picks between them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lookup_vbmi(table: &[i8; 256], input: &[i8], out: &mut [i8]) {
    use std::arch::x86_64::*;
    let part = |i: usize| unsafe { _mm512_loadu_si512(table.as_ptr().add(64 * i).cast()) };
    let (t0, t1, t2, t3) = (part(0), part(1), part(2), part(3));
    let mut chunks = input.chunks_exact(64);
    let mut outs = out.chunks_exact_mut(64);
    for (x, y) in (&mut chunks).zip(&mut outs) {
        // SAFETY: both chunks hold 64 bytes.
        unsafe {
            let idx = _mm512_loadu_si512(x.as_ptr().cast());
            let low = _mm512_permutex2var_epi8(t0, idx, t1);
            let high = _mm512_permutex2var_epi8(t2, idx, t3);
            let upper_half = _mm512_movepi8_mask(idx);
            let v = _mm512_mask_blend_epi8(upper_half, low, high);
            _mm512_storeu_si512(y.as_mut_ptr().cast(), v);
        }
    }
    lookup_portable(table, chunks.remainder(), outs.into_remainder());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_maps_through_the_table_on_every_path() {
        let mut table = [0i8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = (i as u8).wrapping_mul(37).wrapping_add(11) as i8;
        }
        // All 256 values, in an order that crosses the halves, and a tail.
        let input: Vec<i8> = (0..700).map(|i| ((i * 101) % 256) as u8 as i8).collect();
        let want: Vec<i8> = input.iter().map(|&x| table[x as u8 as usize]).collect();
        assert_eq!(lookup(&table, &input), want);
        let mut portable = vec![0i8; input.len()];
        lookup_portable(&table, &input, &mut portable);
        assert_eq!(portable, want);
    }
}
