//! `image_dataset_from_directory`: one subdirectory per class, images decoded (PNG, JPEG,
//! BMP, GIF), resized and labelled by folder name, as Keras does.

use crate::{Dataset, Element, AUTOTUNE};
use ferroflow_core::{Error, Result, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Colour channels to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    /// 1 channel.
    Grayscale,
    /// 3 channels (default).
    Rgb,
    /// 4 channels.
    Rgba,
}

/// How labels are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelMode {
    /// Class index as int32 (default).
    Int,
    /// One-hot float32 vectors.
    Categorical,
    /// float32 0/1 (two classes).
    Binary,
    /// Images only.
    None,
}

/// Which part of a validation split to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    /// The first `1 - validation_split` of the (shuffled) files.
    Training,
    /// The last `validation_split`.
    Validation,
}

/// Options of [`image_dataset_from_directory`] with Keras's defaults.
#[derive(Clone, Debug)]
pub struct ImageDirectoryOptions {
    /// `(height, width)` after resizing (default 256 x 256).
    pub image_size: (usize, usize),
    /// Images per batch; `None` yields single images (default 32).
    pub batch_size: Option<usize>,
    /// Shuffle the file list (default true).
    pub shuffle: bool,
    /// Seed for the shuffle (needed to pair training and validation subsets).
    pub seed: Option<u64>,
    /// Fraction held out for validation.
    pub validation_split: Option<f64>,
    /// Which subset to return when splitting.
    pub subset: Option<Subset>,
    /// Channels.
    pub color_mode: ColorMode,
    /// Label encoding.
    pub label_mode: LabelMode,
}

impl Default for ImageDirectoryOptions {
    fn default() -> Self {
        ImageDirectoryOptions {
            image_size: (256, 256),
            batch_size: Some(32),
            shuffle: true,
            seed: None,
            validation_split: None,
            subset: None,
            color_mode: ColorMode::Rgb,
            label_mode: LabelMode::Int,
        }
    }
}

const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "PNG"];

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Decodes and resizes one image file to `[h, w, channels]` float32 in 0-255.
pub fn load_image(path: &Path, size: (usize, usize), mode: ColorMode) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    decode_image(&bytes, path, size, mode)
}

/// The most memory one image's decoder may allocate.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The widest and tallest image decoded (a few bytes of GIF or PNG can claim a canvas
/// of any size; 16384 is past what cameras write).
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// The most pixels an image may have (40 megapixels: an 8K frame, most cameras). Checked
/// from the header before decoding: GIF canvases are not covered by the decoders' own
/// allocation limit.
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// Decodes image bytes (PNG, JPEG, BMP or GIF, found from the bytes themselves) and
/// resizes them to `[h, w, channels]` float32 in 0-255; `path` labels errors.
pub fn decode_image(
    bytes: &[u8],
    path: &Path,
    size: (usize, usize),
    mode: ColorMode,
) -> Result<Tensor> {
    let bad = |e: image::ImageError| Error::Format {
        path: path.display().to_string(),
        msg: format!("cannot decode image: {e}"),
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| io_err(path, e))
    };
    let (w, h) = reader()?.into_dimensions().map_err(bad)?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!(
                "the image claims {w}x{h} pixels, more than the limit of {MAX_IMAGE_PIXELS} ({MAX_IMAGE_SIDE} a side)"
            ),
        });
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(bad)?;
    let (h, w) = size;
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let (data, c): (Vec<u8>, usize) = match mode {
        ColorMode::Grayscale => (img.to_luma8().into_raw(), 1),
        ColorMode::Rgb => (img.to_rgb8().into_raw(), 3),
        ColorMode::Rgba => (img.to_rgba8().into_raw(), 4),
    };
    Tensor::from_vec(
        data.into_iter().map(f32::from).collect::<Vec<f32>>(),
        &[h, w, c],
    )
}

/// Images in `dir/<class>/*` as `(image, label)` elements (`keras.utils.image_dataset_from_directory`).
/// Returns the dataset and the class names (sorted folder names, index = label).
pub fn image_dataset_from_directory(
    dir: impl AsRef<Path>,
    opts: &ImageDirectoryOptions,
) -> Result<(Dataset, Vec<String>)> {
    let dir = dir.as_ref();
    let mut classes: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::invalid(
            "image_dataset_from_directory",
            format!("{}: no class subdirectories", dir.display()),
        ));
    }
    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let sub = dir.join(class);
        let mut these: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| io_err(&sub, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            })
            .collect();
        these.sort();
        files.extend(these.into_iter().map(|p| (p, label)));
    }
    if opts.label_mode == LabelMode::Binary && classes.len() != 2 {
        return Err(Error::invalid(
            "image_dataset_from_directory",
            format!("label_mode binary needs 2 classes, found {}", classes.len()),
        ));
    }
    let seed = opts
        .seed
        .unwrap_or_else(|| rand::RngCore::next_u64(&mut ferroflow_core::random::op_rng(None)));
    if opts.shuffle {
        files.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    if let Some(split) = opts.validation_split {
        if !(0.0..1.0).contains(&split) {
            return Err(Error::invalid(
                "image_dataset_from_directory",
                format!("validation_split must be in [0, 1), got {split}"),
            ));
        }
        let n_val = (files.len() as f64 * split) as usize;
        let cut = files.len() - n_val;
        files = match opts.subset {
            Some(Subset::Training) => files[..cut].to_vec(),
            Some(Subset::Validation) => files[cut..].to_vec(),
            None => {
                return Err(Error::invalid(
                    "image_dataset_from_directory",
                    "validation_split needs a subset",
                ))
            }
        };
    }
    let files = Arc::new(files);
    let n_classes = classes.len();
    let (size, mode, label_mode) = (opts.image_size, opts.color_mode, opts.label_mode);
    let index = Dataset::range(0, files.len() as i64, 1)?;
    let ds = index.map_parallel(
        move |e| {
            let i = e.tensor()?.to_scalar::<i64>()? as usize;
            let (path, label) = &files[i];
            let img = Element::Tensor(load_image(path, size, mode)?);
            let label = match label_mode {
                LabelMode::None => return Ok(img),
                LabelMode::Int => Tensor::scalar(*label as i32),
                LabelMode::Binary => Tensor::from_vec(vec![*label as f32], &[1])?,
                LabelMode::Categorical => {
                    let mut v = vec![0f32; n_classes];
                    v[*label] = 1.0;
                    Tensor::from_vec(v, &[n_classes])?
                }
            };
            Ok(Element::Tuple(vec![img, Element::Tensor(label)]))
        },
        AUTOTUNE,
        true,
    );
    let ds = match opts.batch_size {
        Some(b) => ds.batch(b, false)?,
        None => ds,
    };
    Ok((ds, classes))
}
