//! Replays every input the fuzzers found a bug with (`fuzz/regressions/<target>/`) and
//! the fuzz seeds (`fuzz/seeds/<target>/`) through the same harnesses the fuzz targets run
//! (`ferroflow::fuzzing`): each must return, without a panic, within its time limit.

use std::path::Path;
use std::time::Duration;

/// libFuzzer's `-timeout` for the targets; the debug build here gets twice as long.
const LIMIT: Duration = Duration::from_secs(20);

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind);
    let mut count = 0;
    for &(target, run) in ferroflow::fuzzing::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let data = std::fs::read(&path).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                run(&data);
                let _ = tx.send(());
            });
            match rx.recv_timeout(LIMIT) {
                Ok(()) => count += 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{target}: {} did not finish within {LIMIT:?}",
                        path.display()
                    )
                }
                Err(_) => panic!("{target}: {} panicked", path.display()),
            }
        }
    }
    count
}

#[test]
fn inputs_that_found_bugs_stay_fixed() {
    assert!(replay("regressions") > 0);
}

#[test]
fn fuzz_seeds_run_through_every_harness() {
    assert!(replay("seeds") >= ferroflow::fuzzing::TARGETS.len() - 4);
}
