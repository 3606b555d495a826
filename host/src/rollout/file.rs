//! Reading a module file (`policy push`, `policy check`, `decide --policy`,
//! a watched `--policy-file`): bounded before it is read, so a wrong path
//! (a disk image, `/dev/zero`) is refused rather than read into memory.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest module file read. The default module is under 400 KiB;
/// an etcd store takes at most its `--max-request-bytes` (1.5 MiB unless
/// raised) anyway.
pub const MAX_MODULE_BYTES: u64 = 16 << 20;

/// Why a module file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ModuleFileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is over the {} MiB limit for a policy module", path.display(), MAX_MODULE_BYTES >> 20)]
    TooLarge { path: PathBuf },
}

/// The bytes of the module at `path`, at most [`MAX_MODULE_BYTES`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleFileError> {
    let io = |source| ModuleFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // One byte past the cap tells a file at the cap from one over it;
    // `take` also bounds files whose length the metadata does not tell
    // (pipes, devices).
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(ModuleFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_file_is_read_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.wasm");
        std::fs::write(&ok, b"\0asm").unwrap();
        assert_eq!(read_module(&ok).unwrap(), b"\0asm");
        let big = dir.path().join("big.wasm");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_MODULE_BYTES + 1).unwrap();
        let e = read_module(&big).unwrap_err();
        assert!(matches!(e, ModuleFileError::TooLarge { .. }), "{e}");
        // A device with no end is cut at the cap, not read forever.
        let e = read_module(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, ModuleFileError::TooLarge { .. }), "{e}");
        assert!(read_module(&dir.path().join("missing.wasm")).is_err());
    }
}
