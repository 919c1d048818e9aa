//! Crash-safe writes. A file is written to a temporary file beside it, flushed to disk,
//! then renamed over the target and the directory flushed, so at every moment (a
//! `SIGKILL`, a power cut) the path holds either its old contents or the new ones, never
//! a torn mix. A directory of files (a saved model) is written whole beside the target
//! and swapped in with one atomic exchange.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A name beside `path` that no other writer uses: `.NAME.PREFIX-PID-N`.
fn sibling(path: &Path, prefix: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{prefix}-{}-{n}", std::process::id()))
}

/// Removes what writers killed while writing `path` left beside it (temporary files
/// and directories of processes that no longer run).
fn remove_stale(path: &Path) {
    let (Some(name), Ok(entries)) = (path.file_name(), std::fs::read_dir(parent(path))) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        // `KIND-PID-N`, from `sibling`.
        let mut parts = rest.split('-');
        let (Some(kind), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse().ok()))
        else {
            continue;
        };
        if matches!(kind, "tmp" | "new" | "old") && !process_alive(pid) {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Whether process `pid` still runs (on Linux; elsewhere always assumed to).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flushes a directory's entries (the rename into it) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A file being written in place of `path`: nothing at `path` changes until
/// [`AtomicFile::commit`]; dropped without a commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing the new contents of `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        remove_stale(&path);
        let tmp = sibling(&path, "tmp");
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(AtomicFile {
            path,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The path the contents will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the contents to disk and puts them at the path.
    pub fn commit(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let file = out.into_inner().map_err(|e| Error::Io {
            path: self.tmp.display().to_string(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&self.tmp))?;
        // Closed before the rename (wasm32's File, which never opens, has no Drop).
        #[cfg_attr(target_arch = "wasm32", allow(clippy::drop_non_drop))]
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))?;
        sync_dir(parent(&self.path))
    }

    /// Gives up: the path keeps its old contents.
    pub fn discard(mut self) {
        self.out = None;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.out {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("the file was already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces the contents of `path` with `bytes`, crash-safely.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path.as_ref())?;
    f.write_all(bytes).map_err(io_err(path.as_ref()))?;
    f.commit()
}

/// Exchanges two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); `false` where
/// the system or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(ca), Ok(cb)) = (
        CString::new(a.as_os_str().as_bytes()),
        CString::new(b.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> bool {
    false
}

/// Replaces the directory `dir` with one that `fill` writes (into the empty directory it
/// is given), crash-safely: the new directory is written beside `dir`, every file in it
/// flushed to disk, then swapped in with one atomic exchange (or, where the system has
/// none, two renames). Entries of the old directory that `fill` did not write and that
/// are not among the format's own file names `owned` (a `.tflite` export beside a saved
/// model, say) are carried over. A failed `fill` leaves `dir` as it was.
pub fn replace_dir(
    dir: impl AsRef<Path>,
    owned: &[&str],
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = dir.as_ref();
    remove_stale(dir);
    let new = sibling(dir, "new");
    std::fs::create_dir_all(&new).map_err(io_err(&new))?;
    let result = fill(&new).and_then(|()| {
        if dir.is_dir() {
            carry_over(dir, &new, owned)?;
        }
        sync_tree(&new)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    if dir.is_dir() && exchange(&new, dir) {
        // `new` now holds the old contents.
        sync_dir(parent(dir))?;
        let _ = std::fs::remove_dir_all(&new);
        return Ok(());
    }
    if dir.exists() {
        let old = sibling(dir, "old");
        std::fs::rename(dir, &old).map_err(io_err(dir))?;
        std::fs::rename(&new, dir).map_err(io_err(dir))?;
        sync_dir(parent(dir))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&new, dir).map_err(io_err(dir))?;
        sync_dir(parent(dir))?;
    }
    Ok(())
}

/// Hard-links (or copies) into `new` the entries of `old` that `new` does not have and
/// that are not `owned` by the format.
fn carry_over(old: &Path, new: &Path, owned: &[&str]) -> Result<()> {
    for entry in std::fs::read_dir(old).map_err(io_err(old))? {
        let entry = entry.map_err(io_err(old))?;
        let to = new.join(entry.file_name());
        let name = entry.file_name();
        if to.exists() || owned.iter().any(|o| name == std::ffi::OsStr::new(o)) {
            continue;
        }
        let from = entry.path();
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(io_err(&from))?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let p = entry.map_err(io_err(from))?.path();
        let q = to.join(p.file_name().unwrap_or_default());
        if p.is_dir() {
            copy_tree(&p, &q)?;
        } else {
            std::fs::copy(&p, &q).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// Flushes every file under `dir`, and the directories themselves, to disk.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = entry.map_err(io_err(dir))?.path();
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&p))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ff_atomic_{}_{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_file_changes_only_on_commit() {
        let d = tmp("file");
        let p = d.join("x.bin");
        write_atomic(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_swapped_whole_and_keeps_other_files() {
        let d = tmp("dir");
        let m = d.join("model");
        let owned = ["a", "state"];
        replace_dir(&m, &owned, |n| {
            write_atomic(n.join("a"), b"1")?;
            write_atomic(n.join("state"), b"s")
        })
        .unwrap();
        std::fs::write(m.join("extra.tflite"), b"keep").unwrap();
        replace_dir(&m, &owned, |n| write_atomic(n.join("a"), b"2")).unwrap();
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"2");
        assert_eq!(std::fs::read(m.join("extra.tflite")).unwrap(), b"keep");
        assert!(
            !m.join("state").exists(),
            "the format's own stale file is dropped"
        );
        let e = replace_dir(&m, &owned, |_| Err(Error::invalid("save", "no"))).unwrap_err();
        assert!(e.to_string().contains("no"));
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"2");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "nothing left beside it"
        );
    }
}
