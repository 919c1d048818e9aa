//! TFRecord files: TF's framing (little-endian u64 length, masked CRC-32C of the length,
//! the bytes, masked CRC-32C of the bytes), a writer, and a dataset that reads records as
//! `u8` tensors with the file and record number in every error.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::atomic_file::AtomicFile;
use ferroflow_core::{Error, Result, Tensor};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// TFRecord's masked CRC-32C.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Compression of a TFRecord file (`compression_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain records.
    #[default]
    None,
    /// The whole file gzip-compressed (`"GZIP"`).
    Gzip,
}

/// Where a writer's bytes go: a file that appears whole when the writer is closed
/// (crash-safe), or one written in place (a log read while it grows).
enum Sink {
    Atomic(AtomicFile),
    InPlace(BufWriter<File>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Atomic(f) => f.write(buf),
            Sink::InPlace(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Atomic(f) => f.flush(),
            Sink::InPlace(f) => f.flush(),
        }
    }
}

impl Sink {
    /// Makes the file final: committed in place of the path, or flushed to disk.
    fn finish(self, path: &Path) -> Result<()> {
        match self {
            Sink::Atomic(f) => f.commit(),
            Sink::InPlace(f) => f
                .into_inner()
                .map_err(|e| io_err(path, e.into_error()))?
                .sync_all()
                .map_err(|e| io_err(path, e)),
        }
    }
}

/// The stream a writer's records go into, compressed or not.
enum Stream {
    Plain(Sink),
    Gzip(flate2::write::GzEncoder<Sink>),
}

/// Writes records to a TFRecord file (`tf.io.TFRecordWriter`).
///
/// The file is crash-safe: records go to a temporary file beside `path`, which replaces
/// `path` (flushed to disk) when the writer is closed or dropped; a process killed while
/// writing leaves `path` as it was. [`TFRecordWriter::streaming`] writes in place instead,
/// for files read while they grow (TensorBoard event files).
pub struct TFRecordWriter {
    path: PathBuf,
    out: Option<Stream>,
}

impl TFRecordWriter {
    /// Creates (or replaces) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_with(path, Compression::None)
    }

    /// Creates (or replaces) `path` with the given compression.
    pub fn create_with(path: impl AsRef<Path>, compression: Compression) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let sink = Sink::Atomic(AtomicFile::create(&path)?);
        Ok(Self::over(path, sink, compression))
    }

    /// Creates (or truncates) `path` and writes records into it as they come, flushed to
    /// the file by [`TFRecordWriter::flush`], so a reader sees them while writing goes on.
    pub fn streaming(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = BufWriter::new(File::create(&path).map_err(|e| io_err(&path, e))?);
        Ok(Self::over(path, Sink::InPlace(file), Compression::None))
    }

    fn over(path: PathBuf, sink: Sink, compression: Compression) -> Self {
        let out = match compression {
            Compression::None => Stream::Plain(sink),
            Compression::Gzip => Stream::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::default(),
            )),
        };
        TFRecordWriter {
            path,
            out: Some(out),
        }
    }

    fn stream(&mut self) -> Result<&mut dyn Write> {
        match &mut self.out {
            Some(Stream::Plain(s)) => Ok(s),
            Some(Stream::Gzip(g)) => Ok(g),
            None => Err(Error::invalid("TFRecordWriter", "the writer is closed")),
        }
    }

    /// Appends one record.
    pub fn write(&mut self, record: &[u8]) -> Result<()> {
        let len = (record.len() as u64).to_le_bytes();
        let path = self.path.clone();
        let out = self.stream()?;
        let r = out
            .write_all(&len)
            .and_then(|_| out.write_all(&masked_crc32c(&len).to_le_bytes()))
            .and_then(|_| out.write_all(record))
            .and_then(|_| out.write_all(&masked_crc32c(record).to_le_bytes()));
        r.map_err(|e| io_err(&path, e))
    }

    /// Flushes buffered records to the file (to the temporary file until the writer is
    /// closed, unless it is [`TFRecordWriter::streaming`]).
    pub fn flush(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.stream()?.flush().map_err(|e| io_err(&path, e))
    }

    /// Finishes the file: it is at its path, whole and flushed to disk.
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    /// Gives up: a crash-safe writer leaves `path` as it was.
    pub fn discard(mut self) {
        self.out = None;
    }

    fn finish(&mut self) -> Result<()> {
        let sink = match self.out.take() {
            None => return Ok(()),
            Some(Stream::Plain(s)) => s,
            Some(Stream::Gzip(g)) => g.finish().map_err(|e| io_err(&self.path, e))?,
        };
        sink.finish(&self.path)
    }
}

impl Drop for TFRecordWriter {
    fn drop(&mut self) {
        // A writer dropped while a panic unwinds publishes nothing half-written.
        if !std::thread::panicking() {
            let _ = self.finish();
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn corrupt(path: &Path, record: u64, msg: &str) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: format!("record {record}: {msg}"),
    }
}

/// Reads the records of one file in order.
pub struct TFRecordReader {
    path: PathBuf,
    input: Box<dyn Read + Send>,
    /// Bytes left in a plain file (a record claiming more is refused before reading).
    remaining: Option<u64>,
    record: u64,
    failed: bool,
}

impl TFRecordReader {
    /// Opens `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Compression::None)
    }

    /// Opens `path` written with `compression`.
    pub fn open_with(path: impl AsRef<Path>, compression: Compression) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let size = file.metadata().map_err(|e| io_err(&path, e))?.len();
        Ok(Self::from_reader(path, file, compression, Some(size)))
    }

    /// Reads records from `input` (named `name` in errors) written with `compression`;
    /// `size`, when known, is the number of bytes `input` holds.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        input: impl Read + Send + 'static,
        compression: Compression,
        size: Option<u64>,
    ) -> Self {
        let file = BufReader::with_capacity(1 << 16, input);
        let (input, remaining): (Box<dyn Read + Send>, _) = match compression {
            Compression::None => (Box::new(file), size),
            Compression::Gzip => (
                Box::new(BufReader::with_capacity(
                    1 << 16,
                    flate2::read::GzDecoder::new(file),
                )),
                None,
            ),
        };
        TFRecordReader {
            input,
            path: name.into(),
            remaining,
            record: 0,
            failed: false,
        }
    }

    /// Fills `buf` completely; `Ok(false)` at a clean end of file before any byte.
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(corrupt(&self.path, self.record, "truncated record")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        Ok(true)
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<Vec<u8>>> {
        if self.failed {
            return None;
        }
        let r = self.read_record();
        if matches!(r, Some(Err(_))) {
            // After a framing error the rest of the file cannot be trusted.
            self.failed = true;
        }
        r
    }

    fn read_record(&mut self) -> Option<Result<Vec<u8>>> {
        let mut header = [0u8; 12];
        match self.read_exact_or_eof(&mut header) {
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
            Ok(true) => {}
        }
        let [l0, l1, l2, l3, l4, l5, l6, l7, c0, c1, c2, c3] = header;
        let len_bytes = [l0, l1, l2, l3, l4, l5, l6, l7];
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if masked_crc32c(&len_bytes) != crc {
            return Some(Err(corrupt(
                &self.path,
                self.record,
                "corrupted length (CRC mismatch)",
            )));
        }
        let len = u64::from_le_bytes(len_bytes);
        if let Some(left) = self.remaining.as_mut() {
            *left = left.saturating_sub(12);
            if len.saturating_add(4) > *left {
                let msg = format!(
                    "length {len} (and its 4-byte CRC) exceeds the {left} bytes left in the file"
                );
                return Some(Err(corrupt(&self.path, self.record, &msg)));
            }
            *left -= len + 4;
        }
        // Read what is there rather than allocate what the length claims: a compressed
        // stream's length is unknown, and the buffer grows only with bytes that arrive.
        let want = len.saturating_add(4);
        let mut data = Vec::with_capacity(want.min(1 << 16) as usize);
        match (&mut self.input).take(want).read_to_end(&mut data) {
            Ok(n) if n as u64 == want => {}
            Ok(_) => return Some(Err(corrupt(&self.path, self.record, "truncated record"))),
            Err(e) => return Some(Err(io_err(&self.path, e))),
        }
        let body = data.len() - 4;
        let crc = u32::from_le_bytes([data[body], data[body + 1], data[body + 2], data[body + 3]]);
        data.truncate(body);
        if masked_crc32c(&data) != crc {
            return Some(Err(corrupt(
                &self.path,
                self.record,
                "corrupted data (CRC mismatch)",
            )));
        }
        self.record += 1;
        Some(Ok(data))
    }
}

struct Records {
    paths: Vec<PathBuf>,
    compression: Compression,
}

impl Source for Records {
    fn shard_files(&self, num: usize, index: usize) -> Option<Dataset> {
        let paths = crate::source::file_share(&self.paths, num, index)?;
        Some(Dataset::from_source(Records {
            paths,
            compression: self.compression,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let paths = self.paths.clone();
        let compression = self.compression;
        let mut file = 0;
        let mut reader: Option<TFRecordReader> = None;
        Ok(Box::new(std::iter::from_fn(move || loop {
            if reader.is_none() {
                let path = paths.get(file)?;
                file += 1;
                match TFRecordReader::open_with(path, compression) {
                    Ok(r) => reader = Some(r),
                    Err(e) => return Some(Err(e)),
                }
            }
            match reader.as_mut()?.next_record() {
                Some(r) => {
                    return Some(r.and_then(|bytes| {
                        let n = bytes.len();
                        Ok(Element::Tensor(Tensor::from_vec(bytes, &[n])?))
                    }))
                }
                None => reader = None,
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Unknown
    }
}

/// The records of TFRecord files, in order, as `u8` tensors (`tf.data.TFRecordDataset`);
/// parse them with [`crate::example::parse_example`].
pub fn tfrecord_dataset(paths: &[impl AsRef<Path>]) -> Dataset {
    tfrecord_dataset_with(paths, Compression::None)
}

/// [`tfrecord_dataset`] for compressed files (`compression_type="GZIP"`).
pub fn tfrecord_dataset_with(paths: &[impl AsRef<Path>], compression: Compression) -> Dataset {
    Dataset::from_source(Records {
        paths: paths.iter().map(|p| p.as_ref().to_path_buf()).collect(),
        compression,
    })
}
