//! Saves survive `SIGKILL`: a child process saves over an existing model again and
//! again and is killed at a random moment; afterwards the path always holds the old
//! model or the new one, loadable, never a torn file. Covers `model.save(dir)`,
//! `.keras` archives and `save_weights`.

use ferroflow as ff;
use ff::keras::layers::Dense;
use ff::keras::{Input, Model};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A model whose every weight is `value` (the same architecture for every value).
fn model(value: f32) -> Model {
    let mut m = Model::sequential(Some("saved"));
    m.add(Input::new(&[128])).unwrap();
    m.add(Dense::new(256).activation("relu").name("hidden"))
        .unwrap();
    m.add(Dense::new(64).name("out")).unwrap();
    m.compile("adam", "mse", &[]).unwrap();
    let weights: Vec<ff::Tensor> = m
        .get_weights()
        .iter()
        .map(|w| ff::Tensor::full(w.shape(), value as f64, ff::DType::F32).unwrap())
        .collect();
    m.set_weights(&weights).unwrap();
    m
}

/// The one value all weights of the model at `path` hold (a torn file would not load,
/// or mix values).
fn saved_value(path: &Path, kind: &str) -> f32 {
    let loaded = match kind {
        "weights" => {
            let m = model(0.0);
            m.load_weights(path)
                .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
            m
        }
        _ => ff::keras::load_model(path)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display())),
    };
    let values: Vec<f32> = loaded
        .get_weights()
        .iter()
        .flat_map(|w| w.to_vec::<f32>().unwrap())
        .collect();
    let first = values[0];
    assert!(
        values.iter().all(|&v| v == first),
        "{}: a mix of two saves",
        path.display()
    );
    first
}

fn save(m: &Model, path: &Path, kind: &str) {
    match kind {
        "weights" => m.save_weights(path).unwrap(),
        _ => m.save(path).unwrap(),
    }
}

/// The child: saves models of weights 1, 2, 3... over `FF_SAVE_PATH` until killed.
#[test]
#[ignore = "run by killed_saves_leave_the_old_or_the_new_model as its child"]
fn save_loop_child() {
    let (Ok(path), Ok(kind)) = (std::env::var("FF_SAVE_PATH"), std::env::var("FF_SAVE_KIND"))
    else {
        return;
    };
    let models: Vec<Model> = (1..=2).map(|v| model(v as f32)).collect();
    println!("ready");
    for i in 0.. {
        save(&models[i % 2], Path::new(&path), &kind);
    }
}

#[test]
fn killed_saves_leave_the_old_or_the_new_model() {
    let root = std::env::temp_dir().join(format!("ff_crash_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (kind, file, trials) in [
        ("dir", "model", 100),
        ("keras", "model.keras", 40),
        ("weights", "model.weights.safetensors", 40),
    ] {
        let path = root.join(file);
        save(&model(0.0), &path, kind);
        let mut seen = [0usize; 3];
        for trial in 0..trials {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["save_loop_child", "--exact", "--ignored", "--nocapture"])
                .env("FF_SAVE_PATH", &path)
                .env("FF_SAVE_KIND", kind)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Wait until it saves, then kill it at a random moment of its saves.
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            let _ = std::io::BufRead::lines(out)
                .map_while(Result::ok)
                .find(|l| l == "ready");
            std::thread::sleep(Duration::from_micros(next() % 40_000));
            child.kill().unwrap();
            child.wait().unwrap();
            let v = saved_value(&path, kind);
            assert!(
                [0.0, 1.0, 2.0].contains(&v),
                "{kind} trial {trial}: weights {v}"
            );
            seen[v as usize] += 1;
        }
        println!(
            "{kind}: {trials}/{trials} trials left a loadable model (values seen 0/1/2: {seen:?})"
        );
        // The saves were interrupted at different points: both new models were seen.
        assert!(seen[1] > 0 && seen[2] > 0, "{kind}: {seen:?}");
    }
    // What killed writers left beside the paths is cleaned up by the next save.
    for file in ["model", "model.keras", "model.weights.safetensors"] {
        let kind = match file {
            "model" => "dir",
            "model.keras" => "keras",
            _ => "weights",
        };
        save(&model(5.0), &root.join(file), kind);
    }
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
