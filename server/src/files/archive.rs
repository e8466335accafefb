//! A selection of files and folders as one zip, streamed: what is chosen
//! is checked up front (so a wrong name is a clear 404, not a broken
//! archive), then folders are listed a page at a time and each file's
//! chunks read only when its turn comes, but for small files, whose
//! packed chunks are read a group at a time with as few ranged GETs as
//! their places in the packs allow. Memory is a page of listing, one
//! group of small files (8 MiB) or one file's read-ahead, and the zip's
//! central directory.

use super::*;
use crate::download;
use crate::zip::{Entry, Source};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

/// Most names one archive request may choose (each a file or a folder;
/// a folder brings everything inside it, however much).
pub const MAX_CHOSEN: usize = 100_000;

/// Listing page while walking a folder.
const PAGE: u32 = 1000;

/// Small files read together, as a group: their bytes at most, and how
/// many (see [`Files::prefetch_packed`]).
const PREFETCH_BYTES: u64 = 8 * 1024 * 1024;
const PREFETCH_FILES: usize = 1000;

/// One chosen name, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chosen {
    File(String),
    Folder(String),
}

/// A checked selection: what to put in the archive and the folder its
/// names are relative to.
pub struct Selection {
    chosen: Vec<Chosen>,
    base: String,
}

impl Selection {
    /// A name for the archive: the one folder chosen, else the folder the
    /// selection is in, else `Coffer`.
    pub fn file_name(&self) -> String {
        let stem = match self.chosen.as_slice() {
            [Chosen::Folder(f)] => f.rsplit('/').next().unwrap_or(f).to_string(),
            _ => self.base.rsplit('/').next().unwrap_or("").to_string(),
        };
        let stem = if stem.is_empty() {
            "Coffer".into()
        } else {
            stem
        };
        format!("{stem}.zip")
    }
}

/// The digest a download ticket for the archive of `paths` carries, so a
/// ticket opens only the selection it was made for.
pub fn selection_digest(paths: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for p in paths {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    format!("zip:{}", &h.finalize().to_hex()[..32])
}

/// The deepest folder holding every one of `paths` (`""`: the root).
fn common_folder(paths: &[&str]) -> String {
    let mut base: Option<&str> = None;
    for p in paths {
        let parent = p.rsplit_once('/').map_or("", |(d, _)| d);
        base = Some(match base {
            None => parent,
            Some(b) => {
                let mut common = "";
                for (i, _) in b.match_indices('/').chain([(b.len(), "")]) {
                    let head = &b[..i];
                    if parent == head || parent.starts_with(&format!("{head}/")) {
                        common = head;
                    }
                }
                common
            }
        });
    }
    base.unwrap_or("").to_string()
}

/// Seconds since the epoch of a stored RFC 3339 time (0 if unreadable).
fn unix_seconds(t: &str) -> i64 {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

impl Files {
    /// Checks `paths` (each a live file or a folder; `/` at the end: only
    /// a folder): all must exist, or the first missing one is the error.
    pub async fn select(&self, caller: &Caller, paths: &[String]) -> Result<Selection, FileError> {
        if paths.is_empty() {
            return Err(FileError::InvalidArgument(
                "choose at least one file or folder".into(),
            ));
        }
        if paths.len() > MAX_CHOSEN {
            return Err(FileError::InvalidArgument(format!(
                "{} names chosen; an archive takes at most {MAX_CHOSEN} (choose their folder)",
                paths.len()
            )));
        }
        let mut chosen = Vec::with_capacity(paths.len());
        for raw in paths {
            let path = paths::normalize(raw)?;
            let file = if raw.ends_with('/') {
                None
            } else {
                self.meta
                    .version(caller.owner, &path, None)
                    .await?
                    .filter(|v| !v.deleted)
            };
            if file.is_some() {
                chosen.push(Chosen::File(path));
            } else if self.meta.folder_exists(caller.owner, &path).await? {
                chosen.push(Chosen::Folder(path));
            } else {
                return Err(FileError::NotFound(path));
            }
        }
        chosen.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        chosen.dedup();
        let names: Vec<&str> = chosen.iter().map(name_of).collect();
        let base = common_folder(&names);
        Ok(Selection { chosen, base })
    }

    /// The archive's entries and their contents, produced as the archive
    /// is read. `admitted` is the caller's place among downloads, held
    /// until the stream ends.
    pub fn archive_sources(
        &self,
        caller: Caller,
        selection: Selection,
        admitted: Admitted,
    ) -> BoxStream<'static, Result<Source<FileError>, FileError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let files = self.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            if let Err(e) = files.walk(&caller, &selection, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    /// Sends every entry of `selection` to `tx`, in order; stops quietly
    /// when the reader has gone.
    async fn walk(
        &self,
        caller: &Caller,
        selection: &Selection,
        tx: &tokio::sync::mpsc::Sender<Result<Source<FileError>, FileError>>,
    ) -> Result<(), FileError> {
        let inner = |path: &str| -> String {
            if selection.base.is_empty() {
                path.to_string()
            } else {
                path[selection.base.len() + 1..].to_string()
            }
        };
        for chosen in &selection.chosen {
            match chosen {
                Chosen::File(path) => {
                    let row = self.find(caller, path, None).await?;
                    if tx.send(Ok(self.source(inner(path), row))).await.is_err() {
                        return Ok(());
                    }
                }
                Chosen::Folder(folder) => {
                    let prefix = if folder.is_empty() {
                        String::new()
                    } else {
                        format!("{folder}/")
                    };
                    // The folder itself, and the empty ones inside it, so
                    // the tree unpacks whole.
                    let mut folders = self.meta.made_folders_under(caller.owner, folder).await?;
                    if !folder.is_empty() {
                        folders.insert(0, folder.clone());
                    }
                    for f in folders {
                        let entry = Entry {
                            name: format!("{}/", inner(&f)),
                            size: 0,
                            mtime: 0,
                        };
                        let body = futures::stream::empty().boxed();
                        if tx.send(Ok(Source { entry, body })).await.is_err() {
                            return Ok(());
                        }
                    }
                    let r = self.cluster.config().replication;
                    let mut after = String::new();
                    loop {
                        let rows = self
                            .meta
                            .list_files(caller.owner, &prefix, &after, PAGE, r)
                            .await?;
                        let last = rows.len() < PAGE as usize;
                        if let Some((row, _)) = rows.last() {
                            after = row.path.clone();
                        }
                        // Small files a group at a time, their packed
                        // chunks read together; the rest on their turn.
                        let mut rows = rows.into_iter().map(|(row, _)| row).peekable();
                        while rows.peek().is_some() {
                            let mut group = Vec::new();
                            let mut bytes = 0;
                            while let Some(row) = rows.next_if(|row| {
                                bytes + row.size <= PREFETCH_BYTES && group.len() < PREFETCH_FILES
                            }) {
                                bytes += row.size;
                                group.push(row);
                            }
                            let sources = match rows.next_if(|_| group.is_empty()) {
                                // Larger than a group: read on its turn.
                                Some(row) => vec![self.source(inner(&row.path), row)],
                                None => self.prefetched(group, &inner).await?,
                            };
                            for source in sources {
                                if tx.send(Ok(source)).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        if last {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The entries of `rows` (small files): their packed chunks read up
    /// front, neighbours in a pack with one ranged GET
    /// ([`Files::prefetch_packed`]); a file not wholly read so is read on
    /// its turn, as [`Files::source`] reads one.
    async fn prefetched(
        &self,
        rows: Vec<VersionRow>,
        inner: &impl Fn(&str) -> String,
    ) -> Result<Vec<Source<FileError>>, FileError> {
        let mut lists = Vec::with_capacity(rows.len());
        for row in &rows {
            lists.push(self.meta.version_chunks(row.file_id, row.number).await?);
        }
        let all: Vec<ChunkRef> = lists.iter().flatten().cloned().collect();
        let got = self.prefetch_packed(&all).await;
        Ok(rows
            .into_iter()
            .zip(lists)
            .map(|(row, chunks)| {
                let name = inner(&row.path);
                let read: Option<Vec<Bytes>> =
                    chunks.iter().map(|c| got.get(&c.id).cloned()).collect();
                match read {
                    Some(bytes)
                        if bytes.iter().map(|b| b.len() as u64).sum::<u64>() == row.size =>
                    {
                        Source {
                            entry: entry_of(name, &row),
                            body: futures::stream::iter(bytes.into_iter().map(Ok)).boxed(),
                        }
                    }
                    _ => self.source(name, row),
                }
            })
            .collect())
    }

    /// The entry of version `row`, its chunks read only once the archive
    /// reaches it.
    fn source(&self, name: String, row: VersionRow) -> Source<FileError> {
        let entry = entry_of(name, &row);
        let files = self.clone();
        let body = futures::stream::once(async move {
            let chunks = files
                .meta
                .version_chunks(row.file_id, row.number)
                .await
                .map_err(FileError::from)?;
            download::pipe(&files, chunks, 0, row.size, None).await
        })
        .try_flatten()
        .boxed();
        Source { entry, body }
    }
}

/// The archive entry `name` of version `row`.
fn entry_of(name: String, row: &VersionRow) -> Entry {
    Entry {
        name,
        size: row.size,
        mtime: unix_seconds(row.modified.as_deref().unwrap_or(&row.created_at)),
    }
}

fn name_of(c: &Chosen) -> &str {
    match c {
        Chosen::File(p) | Chosen::Folder(p) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_folder_is_the_deepest_that_holds_every_name() {
        assert_eq!(common_folder(&["a/b/c.txt", "a/b/d.txt"]), "a/b");
        assert_eq!(common_folder(&["a/b/c.txt", "a/bc/d.txt"]), "a");
        assert_eq!(common_folder(&["a/b", "x.txt"]), "");
        assert_eq!(common_folder(&["photos"]), "");
        assert_eq!(common_folder(&["a/b/c", "a/b"]), "a");
    }

    #[test]
    fn digests_differ_for_different_selections() {
        let one = selection_digest(&["a".into(), "b".into()]);
        assert_ne!(one, selection_digest(&["ab".into()]));
        assert_ne!(one, selection_digest(&["b".into(), "a".into()]));
        assert!(one.starts_with("zip:"));
    }
}
