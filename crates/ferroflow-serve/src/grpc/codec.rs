//! The protobuf codec of the generated services: prost's, with a decode buffer that holds
//! a typical request whole.
//!
//! tonic starts each call's decode buffer at 8 KiB and grows it by reallocation; a
//! batch-32 request of 64 floats per row is already 8.3 KB, so every such call paid a
//! reallocation and a second copy of its bytes. Starting at [`DECODE_BUFFER`] costs
//! nothing for small requests (the pages are not touched) and removes that for most.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial capacity of each call's decode buffer.
pub const DECODE_BUFFER: usize = 64 * 1024;

/// tonic's default: yield to the runtime after this many bytes of a stream.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with a [`DECODE_BUFFER`]-byte decode buffer; named by the generated code
/// (`codec_path` in `tools/gen_serving_protos`).
#[derive(Debug, Clone)]
pub struct ServingCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ServingCodec<T, U> {
    fn default() -> Self {
        ServingCodec(PhantomData)
    }
}

impl<T, U> Codec for ServingCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(DECODE_BUFFER, YIELD_THRESHOLD))
    }
}
