//! Folders as things of their own: make an empty one, delete or move one
//! with everything inside it, copy a file. Each is one metadata
//! transaction; every file it touches is a change in the feed.

use super::*;
use crate::meta::PathConflict;

/// A folder path as stored: normalised, no slash at either end (`""`: the
/// root).
pub fn folder_path(raw: &str) -> Result<String, FileError> {
    Ok(paths::normalize_prefix(raw)?
        .trim_end_matches('/')
        .to_string())
}

impl Files {
    /// Whether folder `path` exists (the root always does).
    pub async fn folder_exists(&self, caller: &Caller, path: &str) -> Result<bool, FileError> {
        let path = folder_path(path)?;
        Ok(self.meta.folder_exists(caller.owner, &path).await?)
    }

    /// Makes the empty folder `path`; its parent must exist.
    pub async fn make_folder(&self, caller: &Caller, path: &str) -> Result<(), FileError> {
        let path = paths::normalize(path)?;
        self.meta.make_folder(caller.owner, &path).await?;
        Ok(())
    }

    /// Makes folder `path` and the missing folders above it; returns its
    /// name as stored. [`FileError::AlreadyExists`] if a file or folder has
    /// the name (or a file is in the way).
    pub async fn make_folders(&self, caller: &Caller, path: &str) -> Result<String, FileError> {
        let path = paths::normalize(path)?;
        let ends = path.match_indices('/').map(|(i, _)| i);
        for end in ends.chain([path.len()]) {
            let above = &path[..end];
            let last = end == path.len();
            if !last && self.meta.folder_exists(caller.owner, above).await? {
                continue;
            }
            match self.meta.make_folder(caller.owner, above).await {
                Ok(()) => {}
                // Made meanwhile by another call: what is wanted.
                Err(MetaError::PathConflict(PathConflict::Taken { .. }))
                    if !last && self.meta.folder_exists(caller.owner, above).await? => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(path)
    }

    /// Deletes folder `path` and every file in it (each restorable);
    /// returns how many files.
    pub async fn delete_folder(&self, caller: &Caller, path: &str) -> Result<u64, FileError> {
        let path = paths::normalize(path)?;
        let n = self
            .meta
            .delete_folder(caller.owner, &path)
            .await?
            .ok_or(FileError::NotFound(path))?;
        self.feed.changed(caller.owner);
        Ok(n)
    }

    /// Moves folder `from`, with everything in it, to the free name `to`;
    /// returns how many files moved.
    pub async fn move_folder(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
    ) -> Result<u64, FileError> {
        let (from, to) = (paths::normalize(from)?, paths::normalize(to)?);
        let n = self
            .meta
            .move_folder(caller.owner, &from, &to, &caller.name)
            .await?
            .ok_or(FileError::NotFound(from))?;
        self.feed.changed(caller.owner);
        Ok(n)
    }

    /// Copies the live file `from` to the free name `to` (the content is
    /// shared, not stored again).
    pub async fn copy_file(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
    ) -> Result<FileVersion, FileError> {
        let (from, to) = (paths::normalize(from)?, paths::normalize(to)?);
        if from == to {
            return Err(FileError::AlreadyExists(PathConflict::Taken { path: to }));
        }
        let row = self
            .meta
            .copy_file(caller.owner, &from, &to, &caller.name)
            .await?
            .ok_or(FileError::NotFound(from))?;
        self.feed.changed(caller.owner);
        self.with_health(row).await
    }

    /// Everything directly in `folder`: its files and its sub-folders
    /// (each ending in `/`), in path order, however many.
    pub async fn folder_entries(
        &self,
        caller: &Caller,
        folder: &str,
    ) -> Result<(Vec<FileVersion>, Vec<String>), FileError> {
        let (mut files, mut folders) = (Vec::new(), Vec::new());
        let mut token = String::new();
        loop {
            let (f, d, next) = self.list_folder(caller, folder, &token, 1000).await?;
            files.extend(f);
            folders.extend(d);
            if next.is_empty() {
                return Ok((files, folders));
            }
            token = next;
        }
    }
}
