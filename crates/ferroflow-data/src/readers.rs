//! File readers: CSV (typed columns), IDX (MNIST files, gzip too), NPY, text lines.
//! Errors name the file and the line or record.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::{DType, Error, Result, Tensor};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn format_err(path: &Path, msg: String) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg,
    }
}

/// Opens a file, decompressing gzip (by magic number) on the fly.
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::new(file);
    // Peek at the buffered start of the file instead of opening it twice.
    let gzip = reader
        .fill_buf()
        .map_err(|e| io_err(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// One CSV column: its type and the value used when a field is empty.
#[derive(Clone, Debug)]
pub struct CsvColumn {
    /// `F32`, `F64`, `I32`, `I64` or `String` (the field as written, unparsed).
    pub dtype: DType,
    /// Value for an empty field (any value gives the empty string in a `String` column);
    /// `None` makes an empty field an error.
    pub default: Option<f64>,
}

impl CsvColumn {
    /// A required column of `dtype`.
    pub fn required(dtype: DType) -> Self {
        CsvColumn {
            dtype,
            default: None,
        }
    }

    /// A column of `dtype` with a default for empty fields.
    pub fn with_default(dtype: DType, default: f64) -> Self {
        CsvColumn {
            dtype,
            default: Some(default),
        }
    }
}

struct Csv {
    paths: Vec<PathBuf>,
    columns: Vec<CsvColumn>,
    select: Option<Vec<usize>>,
    header: bool,
    delimiter: u8,
}

fn parse_field(
    path: &Path,
    line: u64,
    col: usize,
    field: &str,
    spec: &CsvColumn,
) -> Result<Tensor> {
    let bad = |what: &str| format_err(path, format!("line {line}, column {col}: {what}"));
    if spec.dtype == DType::String {
        if field.is_empty() && spec.default.is_none() {
            return Err(bad("empty field and no default"));
        }
        return Tensor::from_strings(&[field], &[]);
    }
    let field = field.trim();
    let value: f64 = if field.is_empty() {
        spec.default
            .ok_or_else(|| bad("empty field and no default"))?
    } else if spec.dtype.is_float() {
        field
            .parse::<f64>()
            .map_err(|_| bad(&format!("'{field}' is not a number")))?
    } else {
        field
            .parse::<i64>()
            .map_err(|_| bad(&format!("'{field}' is not an integer")))? as f64
    };
    Ok(match spec.dtype {
        DType::F32 => Tensor::scalar(value as f32),
        DType::F64 => Tensor::scalar(value),
        DType::I32 => Tensor::scalar(value as i32),
        DType::I64 => Tensor::scalar(value as i64),
        d => {
            return Err(Error::UnsupportedDType {
                op: "csv_dataset",
                dtype: d,
            })
        }
    })
}

impl Source for Csv {
    fn shard_files(&self, num: usize, index: usize) -> Option<Dataset> {
        let paths = crate::source::file_share(&self.paths, num, index)?;
        Some(Dataset::from_source(Csv {
            paths,
            columns: self.columns.clone(),
            select: self.select.clone(),
            header: self.header,
            delimiter: self.delimiter,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let paths = self.paths.clone();
        let columns = self.columns.clone();
        let select = self.select.clone();
        let (header, delimiter) = (self.header, self.delimiter);
        let mut file = 0usize;
        let mut current: Option<(PathBuf, csv::StringRecordsIntoIter<Box<dyn Read + Send>>)> = None;
        Ok(Box::new(std::iter::from_fn(move || loop {
            if current.is_none() {
                let path = paths.get(file)?.clone();
                file += 1;
                match open_maybe_gz(&path) {
                    Ok(r) => {
                        let reader = csv::ReaderBuilder::new()
                            .has_headers(header)
                            .delimiter(delimiter)
                            .flexible(true)
                            .from_reader(r);
                        current = Some((path, reader.into_records()));
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, records) = current.as_mut()?;
            match records.next() {
                None => current = None,
                Some(Err(e)) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Some(Err(format_err(path, format!("line {line}: {e}"))));
                }
                Some(Ok(rec)) => {
                    let line = rec.position().map_or(0, |p| p.line());
                    let wanted: Vec<usize> = select
                        .clone()
                        .unwrap_or_else(|| (0..columns.len()).collect());
                    if rec.len() < wanted.iter().max().map_or(0, |m| m + 1)
                        || (select.is_none() && rec.len() != columns.len())
                    {
                        return Some(Err(format_err(
                            path,
                            format!(
                                "line {line}: {} fields, expected {}",
                                rec.len(),
                                columns.len()
                            ),
                        )));
                    }
                    let fields: Result<Vec<Element>> = wanted
                        .iter()
                        .zip(&columns)
                        .map(|(&c, spec)| {
                            parse_field(path, line, c, rec.get(c).unwrap_or(""), spec)
                                .map(Element::Tensor)
                        })
                        .collect();
                    return Some(fields.map(Element::Tuple));
                }
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Unknown
    }
}

/// Rows of CSV files as tuples of typed scalars (`tf.data.experimental.CsvDataset`).
/// `columns` types the selected columns (`select_cols`, all columns by default); `header`
/// skips the first line. Gzipped files are read transparently.
pub fn csv_dataset(
    paths: &[impl AsRef<Path>],
    columns: Vec<CsvColumn>,
    header: bool,
    delimiter: u8,
    select_cols: Option<Vec<usize>>,
) -> Result<Dataset> {
    if let Some(s) = &select_cols {
        if s.len() != columns.len() {
            return Err(Error::invalid(
                "csv_dataset",
                format!(
                    "{} selected columns but {} column types",
                    s.len(),
                    columns.len()
                ),
            ));
        }
    }
    Ok(Dataset::from_source(Csv {
        paths: paths.iter().map(|p| p.as_ref().to_path_buf()).collect(),
        columns,
        select: select_cols,
        header,
        delimiter,
    }))
}

/// Reads an IDX file (the MNIST format; gzip by magic number) into one tensor.
pub fn read_idx(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    read_idx_from(open_maybe_gz(path)?, path)
}

/// Reads IDX bytes (plain or gzip) into one tensor; `name` labels errors.
pub fn idx_from_bytes(bytes: &[u8], name: &Path) -> Result<Tensor> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_idx_from(flate2::read::GzDecoder::new(bytes), name)
    } else {
        read_idx_from(bytes, name)
    }
}

/// Parses an IDX stream: the header first, then exactly the data its shape needs, read
/// as it arrives (a header claiming more than the stream holds fails without allocating
/// for the claim).
fn read_idx_from(mut input: impl Read, path: &Path) -> Result<Tensor> {
    let mut magic = [0u8; 4];
    input.read_exact(&mut magic).map_err(|_| {
        format_err(
            path,
            "not an IDX file (shorter than its magic number)".into(),
        )
    })?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format_err(
            path,
            "not an IDX file (bad magic number)".into(),
        ));
    }
    let (code, ndim) = (magic[2], magic[3] as usize);
    let size: usize = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        c => return Err(format_err(path, format!("unknown IDX type code 0x{c:02x}"))),
    };
    let mut dims = vec![0u8; 4 * ndim];
    input
        .read_exact(&mut dims)
        .map_err(|_| format_err(path, format!("truncated header ({ndim} dimensions)")))?;
    let shape: Vec<usize> = dims
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let need = shape
        .iter()
        .try_fold(size, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format_err(path, format!("shape {shape:?} overflows")))?;
    let mut data = Vec::with_capacity(need.min(1 << 16));
    input
        .take(need as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| io_err(path, e))?;
    if data.len() != need {
        let found = if data.len() > need {
            "more".to_string()
        } else {
            data.len().to_string()
        };
        return Err(format_err(
            path,
            format!("shape {shape:?} needs {need} bytes of data, found {found}"),
        ));
    }
    macro_rules! be {
        ($ty:ty) => {
            data.chunks_exact(size)
                .map(|c| <$ty>::from_be_bytes(c.try_into().unwrap_or_default()))
                .collect::<Vec<$ty>>()
        };
    }
    match code {
        0x08 => Tensor::from_vec(data, &shape),
        0x09 => Tensor::from_vec(data.iter().map(|&b| b as i8).collect::<Vec<i8>>(), &shape),
        0x0B => Tensor::from_vec(
            be!(i16).into_iter().map(i32::from).collect::<Vec<i32>>(),
            &shape,
        ),
        0x0C => Tensor::from_vec(be!(i32), &shape),
        0x0D => Tensor::from_vec(be!(f32), &shape),
        _ => Tensor::from_vec(be!(f64), &shape),
    }
}

/// Rows of `.npy` files (concatenated along the first axis) as a dataset.
pub fn npy_dataset(paths: &[impl AsRef<Path>]) -> Result<Dataset> {
    let arrays = paths
        .iter()
        .map(ferroflow_core::npy::read_npy)
        .collect::<Result<Vec<_>>>()?;
    let all = if arrays.len() == 1 {
        arrays[0].clone()
    } else {
        Tensor::concat(&arrays, 0)?
    };
    Dataset::from_tensor_slices(all)
}

struct Lines {
    paths: Vec<PathBuf>,
}

impl Source for Lines {
    fn shard_files(&self, num: usize, index: usize) -> Option<Dataset> {
        let paths = crate::source::file_share(&self.paths, num, index)?;
        Some(Dataset::from_source(Lines { paths }))
    }

    fn open(&self) -> Result<ElementIter> {
        let paths = self.paths.clone();
        let mut file = 0usize;
        let mut current: Option<(PathBuf, BufReader<Box<dyn Read + Send>>)> = None;
        Ok(Box::new(std::iter::from_fn(move || loop {
            if current.is_none() {
                let path = paths.get(file)?.clone();
                file += 1;
                match open_maybe_gz(&path) {
                    Ok(r) => current = Some((path, BufReader::new(r))),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, reader) = current.as_mut()?;
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => current = None,
                Ok(_) => {
                    // One line ending, `\n` or `\r\n`, as TensorFlow strips it.
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    let line = ferroflow_core::TfString::from(line);
                    return Some(Tensor::from_vec(vec![line], &[]).map(Element::Tensor));
                }
                Err(e) => return Some(Err(io_err(path, e))),
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Unknown
    }
}

/// The lines of text files, without their line endings, as scalar string tensors
/// (`tf.data.TextLineDataset`); gzipped files are read transparently.
pub fn text_line_dataset(paths: &[impl AsRef<Path>]) -> Dataset {
    Dataset::from_source(Lines {
        paths: paths.iter().map(|p| p.as_ref().to_path_buf()).collect(),
    })
}
