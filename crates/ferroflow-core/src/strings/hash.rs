//! Strings to hash buckets, with TensorFlow's exact hash functions: FarmHash's
//! `Fingerprint64` (`tf.strings.to_hash_bucket_fast`) and keyed SipHash-2-4
//! (`tf.strings.to_hash_bucket_strong`).

use crate::strings::host_op;
use crate::{Error, Result, Tensor};
use std::hash::Hasher;

fn buckets(
    op: &'static str,
    attrs: String,
    t: &Tensor,
    num_buckets: u64,
    hash: impl Fn(&[u8]) -> u64 + Send + Sync + 'static,
) -> Result<Tensor> {
    if num_buckets == 0 {
        return Err(Error::invalid(op, "num_buckets must be at least 1"));
    }
    host_op(
        op,
        format!("num_buckets={num_buckets}{attrs}"),
        &[t],
        move |x| {
            let out: Vec<i64> = x[0]
                .string_data(op)?
                .iter()
                .map(|s| (hash(s) % num_buckets) as i64)
                .collect();
            Tensor::from_vec(out, x[0].shape())
        },
    )
}

/// `tf.strings.to_hash_bucket_fast`: `Fingerprint64(s) % num_buckets` as int64.
pub fn to_hash_bucket_fast(t: &Tensor, num_buckets: u64) -> Result<Tensor> {
    buckets(
        "to_hash_bucket_fast",
        String::new(),
        t,
        num_buckets,
        farmhash::fingerprint64,
    )
}

/// `tf.strings.to_hash_bucket_strong`: SipHash-2-4 keyed with `key` (TensorFlow's `key`
/// pair, Keras's `salt`), modulo `num_buckets`, as int64.
pub fn to_hash_bucket_strong(t: &Tensor, num_buckets: u64, key: [u64; 2]) -> Result<Tensor> {
    let attrs = format!(", key={key:?}");
    buckets("to_hash_bucket_strong", attrs, t, num_buckets, move |s| {
        let mut h = siphasher::sip::SipHasher24::new_with_keys(key[0], key[1]);
        h.write(s);
        h.finish()
    })
}
