//! The namespace: listings (flat and by folder), versions, restore,
//! delete and move.

use super::*;
use crate::meta::{After, SortKey, Sorted};

impl Files {
    /// A page of live files under `prefix`, and the token of the next page
    /// (empty on the last one).
    pub async fn list(
        &self,
        caller: &Caller,
        prefix: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, String), FileError> {
        let prefix = paths::normalize_prefix(prefix)?;
        let limit = page_limit(page_size);
        let r = self.cluster.config().replication;
        let rows = self
            .meta
            .list_files(caller.owner, &prefix, page_token, limit + 1, r)
            .await?;
        let more = rows.len() > limit as usize;
        let out: Vec<FileVersion> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, h)| self.with_health_counts(row, h))
            .collect();
        let next = if more {
            out.last().map(|v| v.path.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((out, next))
    }

    /// A page of the files directly in `folder` in `order`, every
    /// sub-folder of it (ending in `/`) on the first page only, and the
    /// token of the next page (empty on the last one). Pages never repeat
    /// or skip a file that stays put, whatever the order.
    pub async fn list_sorted(
        &self,
        caller: &Caller,
        folder: &str,
        order: Sorted,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, Vec<String>, String), FileError> {
        let folder = super::folder_path(folder)?;
        let limit = page_limit(page_size);
        let (after_key, after_path) = match page_token.split_once('\n') {
            None if page_token.is_empty() => (0, String::new()),
            Some((k, p)) if !p.is_empty() => (
                k.parse::<i64>().map_err(|_| {
                    FileError::InvalidArgument("the page token is not one of ours".into())
                })?,
                p.to_string(),
            ),
            _ => {
                return Err(FileError::InvalidArgument(
                    "the page token is not one of ours".into(),
                ))
            }
        };
        let r = self.cluster.config().replication;
        let rows = self
            .meta
            .list_sorted(
                caller.owner,
                &folder,
                order,
                &After {
                    key: after_key,
                    path: after_path,
                },
                limit + 1,
                r,
            )
            .await?;
        let more = rows.len() > limit as usize;
        let files: Vec<FileVersion> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, h)| self.with_health_counts(row, h))
            .collect();
        let next = match files.last() {
            Some(last) if more => format!("{}\n{}", sort_key(order.by, last), last.path),
            _ => String::new(),
        };
        let folders = if page_token.is_empty() {
            self.meta
                .child_folders(caller.owner, &folder)
                .await?
                .into_iter()
                .map(|f| format!("{f}/"))
                .collect()
        } else {
            Vec::new()
        };
        Ok((files, folders, next))
    }

    /// A page of live files under `prefix` whose name (the last part of
    /// the path) holds `needle`, ignoring case, in path order, and the
    /// token of the next page (empty on the last one). The metadata store
    /// narrows by path; each page reads only as far as it fills.
    pub async fn search(
        &self,
        caller: &Caller,
        prefix: &str,
        needle: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, String), FileError> {
        let prefix = paths::normalize_prefix(prefix)?;
        let limit = page_limit(page_size) as usize;
        let r = self.cluster.config().replication;
        let pattern = crate::meta::sql::files::contains_pattern(needle);
        let want = needle.to_lowercase();
        let mut after = page_token.to_string();
        let mut out = Vec::new();
        loop {
            let rows = self
                .meta
                .search_files(caller.owner, &prefix, &pattern, &after, limit as u32 + 1, r)
                .await?;
            let exhausted = rows.len() <= limit;
            for (row, h) in rows {
                if out.len() == limit {
                    return Ok((out, after));
                }
                after = row.path.clone();
                let name = row.path.rsplit('/').next().unwrap_or(&row.path);
                if name.to_lowercase().contains(&want) {
                    out.push(self.with_health_counts(row, h));
                }
            }
            if exhausted {
                return Ok((out, String::new()));
            }
        }
    }

    /// A page of what is directly in `folder` (its files, and its
    /// sub-folders as prefixes ending in `/`, empty ones made on their own
    /// included), in path order, and the token of the next page (empty on
    /// the last one). Files and folders count alike against the page size
    /// (empty folders may add a few). A sub-folder holding many files costs
    /// one query to step over, not a read of its files.
    pub async fn list_folder(
        &self,
        caller: &Caller,
        folder: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, Vec<String>, String), FileError> {
        let (files, mut folders, next) = self
            .list_with_files(caller, folder, page_token, page_size)
            .await?;
        let parent = super::folder_path(folder)?;
        for made in self.meta.made_folders(caller.owner, &parent).await? {
            let f = format!("{made}/");
            if f.as_str() > page_token && (next.is_empty() || f <= next) && !folders.contains(&f) {
                folders.push(f);
            }
        }
        folders.sort();
        Ok((files, folders, next))
    }

    /// [`Files::list_folder`] of the folders live files are in.
    async fn list_with_files(
        &self,
        caller: &Caller,
        folder: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, Vec<String>, String), FileError> {
        let mut prefix = paths::normalize_prefix(folder)?;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let limit = page_limit(page_size) as usize;
        let r = self.cluster.config().replication;
        let (mut files, mut folders) = (Vec::new(), Vec::<String>::new());
        // Sorts after every path inside a folder `f/` (as the next page's
        // token, and to step over the folder's files).
        let past = |f: &str| format!("{f}\u{10FFFF}");
        let mut after = page_token.to_string();
        let mut last = String::new();
        let mut skip: Option<String> = None;
        loop {
            let rows = self
                .meta
                .list_files(caller.owner, &prefix, &after, limit as u32 + 1, r)
                .await?;
            let exhausted = rows.len() <= limit;
            for (row, h) in rows {
                after = row.path.clone();
                if skip.as_deref().is_some_and(|f| row.path.starts_with(f)) {
                    continue;
                }
                if files.len() + folders.len() == limit {
                    // Full, and something follows.
                    return Ok((files, folders, last));
                }
                match row.path[prefix.len()..].find('/') {
                    None => {
                        last = row.path.clone();
                        files.push(self.with_health_counts(row, h));
                    }
                    Some(i) => {
                        let f = row.path[..prefix.len() + i + 1].to_string();
                        last = past(&f);
                        folders.push(f.clone());
                        skip = Some(f);
                    }
                }
            }
            if exhausted {
                return Ok((files, folders, String::new()));
            }
            // Step over the rest of a folder the batch ended in.
            if let Some(f) = skip.as_deref().filter(|f| after.starts_with(f)) {
                after = past(f);
            }
        }
    }

    /// A page of a file's versions, newest first, and the token of the
    /// next page (empty on the last one).
    pub async fn versions(
        &self,
        caller: &Caller,
        path: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, String), FileError> {
        let path = paths::normalize(path)?;
        let limit = page_limit(page_size);
        let before = match page_token {
            "" => None,
            t => Some(t.parse::<u64>().map_err(|_| {
                FileError::InvalidArgument(format!("pageToken {t:?} is not one this server gave"))
            })?),
        };
        let r = self.cluster.config().replication;
        let rows = self
            .meta
            .list_versions(caller.owner, &path, before, limit + 1, r)
            .await?;
        if rows.is_empty() && before.is_none() {
            return Err(FileError::NotFound(path));
        }
        let more = rows.len() > limit as usize;
        let out: Vec<FileVersion> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, h)| self.with_health_counts(row, h))
            .collect();
        let next = match out.last() {
            Some(v) if more => v.number.to_string(),
            _ => String::new(),
        };
        Ok((out, next))
    }

    /// Makes version `number` the newest again, as a new version.
    pub async fn restore(
        &self,
        caller: &Caller,
        path: &str,
        number: u64,
    ) -> Result<FileVersion, FileError> {
        let row = self.find(caller, path, Some(number)).await?;
        let restored = self
            .meta
            .restore_version(caller.owner, &row.path, number, &caller.name)
            .await?
            .ok_or_else(|| FileError::VersionNotFound {
                path: row.path.clone(),
                version: number,
            })?;
        self.feed.changed(caller.owner);
        self.with_health(restored).await
    }

    /// Deletes a file (its versions stay restorable), if `mode` holds;
    /// returns its latest version number.
    pub async fn delete(
        &self,
        caller: &Caller,
        path: &str,
        mode: PutMode,
    ) -> Result<u64, FileError> {
        let path = paths::normalize(path)?;
        let latest = self
            .meta
            .delete_file(caller.owner, &path, mode)
            .await?
            .ok_or(FileError::NotFound(path))?;
        self.feed.changed(caller.owner);
        Ok(latest)
    }

    /// Moves a live file to another name (if `mode` holds for it): the old
    /// name is deleted, restorable, and the new one gets a version with
    /// the same content.
    pub async fn move_file(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
        mode: PutMode,
    ) -> Result<FileVersion, FileError> {
        let (from, to) = (paths::normalize(from)?, paths::normalize(to)?);
        if from == to {
            return Err(FileError::InvalidArgument(format!(
                "{from:?} cannot be moved onto itself"
            )));
        }
        let row = self
            .meta
            .move_file(caller.owner, &from, &to, mode, &caller.name)
            .await?
            .ok_or(FileError::NotFound(from))?;
        self.feed.changed(caller.owner);
        self.with_health(row).await
    }
}

/// How many entries a page holds: `page_size`, 100 when it is 0, at most
/// 1,000.
fn page_limit(page_size: u32) -> u32 {
    match page_size {
        0 => 100,
        n => n.min(1000),
    }
}

/// The value a sorted listing orders `v` by (see
/// [`crate::meta::sql::files::list_sorted`]).
fn sort_key(by: SortKey, v: &FileVersion) -> i64 {
    match by {
        SortKey::Name => 0,
        SortKey::Size => i64::try_from(v.size).unwrap_or(i64::MAX),
        SortKey::Time => time::OffsetDateTime::parse(
            &v.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0),
    }
}
