//! Small crash-safe files beside the segments: write to `.tmp`, fsync, rename, fsync the dir.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Atomically replace `path` with `contents`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsync a directory, so that the names created, renamed or removed in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()?;
    #[cfg(test)]
    synced_dirs::record(dir);
    Ok(())
}

/// Test-only record of the directories this thread fsynced, in order.
#[cfg(test)]
pub(crate) mod synced_dirs {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn record(dir: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    }

    /// The directories fsynced since the last call.
    pub(crate) fn take() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

/// Read a file holding one integer; `None` if missing or unreadable as a number.
pub fn read_i64(path: &Path) -> io::Result<Option<i64>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write a file holding one integer.
pub fn write_i64(path: &Path, v: i64) -> io::Result<()> {
    write_atomic(path, format!("{v}\n").as_bytes())
}

/// The `leader-epoch-checkpoint` file: version 0, a count, then `epoch start_offset` lines.
pub fn read_epochs(path: &Path) -> io::Result<Option<Vec<(i32, i64)>>> {
    let text = match fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("malformed {}", path.display()));
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad());
    }
    let n: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let line = lines.next().ok_or_else(bad)?;
        let mut parts = line.split_whitespace();
        let e = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let o = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        out.push((e, o));
    }
    Ok(Some(out))
}

/// Write the `leader-epoch-checkpoint` file.
pub fn write_epochs(path: &Path, epochs: &[(i32, i64)]) -> io::Result<()> {
    let mut s = format!("0\n{}\n", epochs.len());
    for (e, o) in epochs {
        s.push_str(&format!("{e} {o}\n"));
    }
    write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leader-epoch-checkpoint");
        assert_eq!(read_epochs(&p).unwrap(), None);
        write_epochs(&p, &[(0, 0), (3, 120)]).unwrap();
        assert_eq!(read_epochs(&p).unwrap(), Some(vec![(0, 0), (3, 120)]));
        fs::write(&p, "0\n2\n0 0\n").unwrap();
        assert!(read_epochs(&p).is_err());
    }
}
