//! A storage node that is a directory on this machine.
//!
//! Objects are files named by their key below the root. A put writes a
//! temporary file, syncs it and renames it into place, so a crash never
//! leaves a torn object under a real key.

use super::{BlobStore, ObjectInfo, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory-backed [`BlobStore`].
#[derive(Debug, Clone)]
pub struct LocalStore {
    name: String,
    root: Arc<PathBuf>,
}

const TMP_DIR: &str = ".tmp";

impl LocalStore {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            root: Arc::new(root.into()),
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && s != TMP_DIR)
            && !key.contains('\0');
        if !ok {
            return Err(StoreError::InvalidKey {
                store: self.name.clone(),
                key: key.to_string(),
            });
        }
        Ok(self.root.join(key))
    }

    fn other(&self, e: std::io::Error) -> StoreError {
        StoreError::Other {
            store: self.name.clone(),
            source: Box::new(e),
        }
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StoreError::Other {
                store: self.name.clone(),
                source: Box::new(e),
            })?
    }
}

fn write_atomically(tmp_dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(tmp_dir)?;
    // Removed on drop: a write that fails part-way (a full disk, say)
    // leaves nothing behind.
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if let Some(parent) = path.parent() {
        // Make the rename itself durable.
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(key) = rel
            .to_str()
            .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            continue;
        };
        if key == TMP_DIR {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            // Descend only where keys below can still match the prefix.
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if ty.is_file() && key.starts_with(prefix) {
            out.push(ObjectInfo {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ensure_ready(&self) -> Result<(), StoreError> {
        self.blocking(|s| {
            std::fs::create_dir_all(s.root.join(TMP_DIR)).map_err(|e| s.other(e))?;
            // Temporary files left by a crash are garbage.
            if let Ok(entries) = std::fs::read_dir(s.root.join(TMP_DIR)) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            Ok(())
        })
        .await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        self.blocking(move |s| {
            write_atomically(&s.root.join(TMP_DIR), &path, &data).map_err(|e| s.other(e))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |s| match std::fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound {
                store: s.name.clone(),
                key,
            }),
            Err(e) => Err(s.other(e)),
        })
        .await
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |s| {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(StoreError::NotFound {
                        store: s.name.clone(),
                        key,
                    })
                }
                Err(e) => return Err(s.other(e)),
            };
            let want = range.end.saturating_sub(range.start);
            let mut data = Vec::with_capacity(want as usize);
            file.seek(SeekFrom::Start(range.start))
                .and_then(|_| file.take(want).read_to_end(&mut data))
                .map_err(|e| s.other(e))?;
            if data.len() as u64 != want {
                return Err(super::short_object(
                    &s.name,
                    &key,
                    &range,
                    data.len() as u64,
                ));
            }
            Ok(Bytes::from(data))
        })
        .await
    }

    async fn get_into(
        &self,
        key: &str,
        out: &mut (dyn super::Sink + Send),
    ) -> Result<u64, StoreError> {
        use tokio::io::AsyncReadExt;
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    store: self.name.clone(),
                    key: key.to_string(),
                })
            }
            Err(e) => return Err(self.other(e)),
        };
        let mut buf = vec![0u8; 1024 * 1024];
        let mut n = 0u64;
        loop {
            let got = file.read(&mut buf).await.map_err(|e| self.other(e))?;
            if got == 0 {
                return Ok(n);
            }
            out.take(&buf[..got]).map_err(|e| self.other(e))?;
            n += got as u64;
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        self.blocking(move |s| match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(s.other(e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |s| {
            let mut out = Vec::new();
            walk(&s.root, &s.root, &prefix, &mut out).map_err(|e| s.other(e))?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_put_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("n0", dir.path());
        store.ensure_ready().await.unwrap();
        store
            .put("blocker", Bytes::from_static(b"x"))
            .await
            .unwrap();
        // `blocker` is a file, so nothing can be stored below it.
        let err = store.put("blocker/inner", Bytes::from(vec![7; 4096])).await;
        assert!(err.is_err());
        let left = std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count();
        assert_eq!(left, 0, "temporary files left behind");
    }
}
