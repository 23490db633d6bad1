//! Reading a settings file (a CA bundle, certificate, key, password or token file) safely: it must be a regular
//! file (symlinks followed) of at most [`MAX_BYTES`], and it is read with that cap, so that `/dev/zero` cannot
//! eat the memory and a FIFO cannot hang the run.
//!
//! Written by hand because it is a dozen lines over `std::fs`; it must never read past the cap nor open a file
//! that is not regular (opening a FIFO for reading blocks until a writer comes).

use std::io::Read as _;
use std::path::Path;

/// The largest settings file read: far above any certificate bundle, key, password or token.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The contents of the regular file at `path`, at most [`MAX_BYTES`]; else a sentence saying what is wrong
/// with it (the caller adds the flag).
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file: give the file itself", path.display()));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!("{} is larger than {MAX_BYTES} bytes: not a settings file", path.display()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut contents = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut contents).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The file may have grown between the look and the read.
    if contents.len() as u64 > MAX_BYTES {
        return Err(format!("{} is larger than {MAX_BYTES} bytes: not a settings file", path.display()));
    }
    Ok(contents)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused_without_reading() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-small-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; MAX_BYTES as usize + 1]).unwrap();
        for (path, why) in [
            (Path::new("/dev/zero"), "not a regular file"),
            (fifo.as_path(), "not a regular file"),
            (dir.as_path(), "not a regular file"),
            (big.as_path(), "larger than"),
        ] {
            let e = read(path).unwrap_err();
            assert!(e.contains(why) && e.contains(&path.display().to_string()), "{e}");
        }
        let link = dir.join("link");
        let small = dir.join("small");
        std::fs::write(&small, "secret\n").unwrap();
        std::os::unix::fs::symlink(&small, &link).unwrap();
        assert_eq!(read_text(&link).unwrap(), "secret\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
