//! Writing a title into the origin store all or nothing: into a hidden
//! temporary folder, every file synced, then renamed into place (an older
//! version moved aside first and removed after).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::index::{FileEntry, TitleIndex, INDEX_FILE};
use crate::package::PackageError;

/// A file made for a title: its path in the title and its bytes.
pub type TitleFile = (String, Vec<u8>);

/// Runs `write` on a hidden temporary folder of `store`, then renames it
/// to `store/title` (an older version moved aside, then removed); on an
/// error the temporary folder is removed and the store is as it was.
pub fn write_title_dir(
    store: &Path,
    title: &str,
    write: impl FnOnce(&Path) -> Result<TitleIndex, PackageError>,
) -> Result<TitleIndex, PackageError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PackageError::Write { path, error }
    };
    std::fs::create_dir_all(store).map_err(write_err(store))?;
    let tmp = store.join(format!(".tmp-{title}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(write_err(&tmp))?;
    match write(&tmp) {
        Ok(index) => {
            publish(&tmp, &store.join(title)).map_err(write_err(store))?;
            Ok(index)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Sorts the index's files, writes `index.json` last and syncs the
/// folders: a title folder is complete once its index is on disk.
pub fn write_index(dir: &Path, mut index: TitleIndex) -> Result<TitleIndex, PackageError> {
    index.files.sort_by(|a, b| a.path.cmp(&b.path));
    let json = serde_json::to_vec_pretty(&index).map_err(|e| PackageError::Write {
        path: dir.join(INDEX_FILE),
        error: e.into(),
    })?;
    write_file(dir, INDEX_FILE, &json)?;
    sync_dir(dir)?;
    Ok(index)
}

/// Writes `data` to `dir/rel` (synced) and returns its index entry; `rel`
/// must be a name the origin can serve (`rendition/file`).
pub fn write_file(dir: &Path, rel: &str, data: &[u8]) -> Result<FileEntry, PackageError> {
    // A name that could not be served is refused before it is written.
    nearcast_common::TitlePath::new(rel)?;
    let path = dir.join(rel);
    let err = |source| PackageError::Write {
        path: path.clone(),
        error: source,
    };
    let mut f = File::create(&path).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    let path = nearcast_common::TitlePath::new(rel)?;
    Ok(FileEntry {
        path,
        size: data.len() as u64,
        sha256: crate::index::sha256_hex(data),
    })
}

fn sync_dir(dir: &Path) -> Result<(), PackageError> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        dirs.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
    }
    for d in dirs {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|error| PackageError::Write { path: d, error })?;
    }
    Ok(())
}

/// Moves the finished folder into place; an older version of the title is
/// moved aside first and removed after.
fn publish(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let old = parent.join(format!(
        ".old-{}-{}",
        dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(dest, &old)?;
    }
    std::fs::rename(tmp, dest)?;
    File::open(parent)?.sync_all()?;
    if had_old {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}
