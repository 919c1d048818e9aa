//! `image_dataset_from_directory`: class names from folders, labels, resizing, splits,
//! and errors naming the bad file.

use ferroflow_data::images::{ColorMode, LabelMode, Subset};
use ferroflow_data::{image_dataset_from_directory, ImageDirectoryOptions};

fn make_tree(root: &std::path::Path) {
    for (class, shade) in [("cats", 40u8), ("dogs", 200u8)] {
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..5u8 {
            let img =
                image::RgbImage::from_fn(10 + i as u32, 8, |x, _| image::Rgb([shade, x as u8, i]));
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(d.join(format!("{i}.{ext}"))).unwrap();
        }
    }
    std::fs::write(root.join("cats/readme.txt"), "not an image").unwrap();
}

#[test]
fn folders_become_labels() {
    let root = std::env::temp_dir().join(format!("ff_images_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    make_tree(&root);
    let opts = ImageDirectoryOptions {
        image_size: (4, 6),
        batch_size: None,
        shuffle: false,
        ..Default::default()
    };
    let (ds, classes) = image_dataset_from_directory(&root, &opts).unwrap();
    assert_eq!(classes, vec!["cats", "dogs"]);
    let items = ds.collect().unwrap();
    assert_eq!(items.len(), 10, "text files are skipped");
    let img = items[0].get(0).unwrap().tensor().unwrap();
    assert_eq!(img.shape(), &[4, 6, 3]);
    let red: Vec<f32> = img
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .step_by(3)
        .copied()
        .collect();
    assert!(red.iter().all(|&r| (r - 40.0).abs() < 3.0), "{red:?}");
    assert_eq!(
        items[7]
            .get(1)
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i32>()
            .unwrap(),
        1
    );
    // Batched, one-hot, grayscale.
    let opts = ImageDirectoryOptions {
        image_size: (4, 4),
        batch_size: Some(4),
        color_mode: ColorMode::Grayscale,
        label_mode: LabelMode::Categorical,
        seed: Some(1),
        ..Default::default()
    };
    let batches = image_dataset_from_directory(&root, &opts)
        .unwrap()
        .0
        .collect()
        .unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches[0].get(0).unwrap().tensor().unwrap().shape(),
        &[4, 4, 4, 1]
    );
    assert_eq!(
        batches[0].get(1).unwrap().tensor().unwrap().shape(),
        &[4, 2]
    );
    // Training and validation subsets with the same seed split the files exactly.
    let split = |subset| {
        let o = ImageDirectoryOptions {
            image_size: (2, 2),
            batch_size: None,
            seed: Some(9),
            validation_split: Some(0.3),
            subset: Some(subset),
            ..Default::default()
        };
        image_dataset_from_directory(&root, &o)
            .unwrap()
            .0
            .collect()
            .unwrap()
            .len()
    };
    assert_eq!((split(Subset::Training), split(Subset::Validation)), (7, 3));
    // A corrupt image names its file.
    std::fs::write(root.join("dogs/9.png"), b"garbage").unwrap();
    let err = image_dataset_from_directory(
        &root,
        &ImageDirectoryOptions {
            batch_size: None,
            shuffle: false,
            ..Default::default()
        },
    )
    .unwrap()
    .0
    .collect()
    .unwrap_err()
    .to_string();
    assert!(err.contains("9.png"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
