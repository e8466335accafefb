//! [`CofferFs`]: one caller's namespace as a WebDAV file system, over the
//! files domain (reads, uploads, folders, moves, copies) and the
//! metadata's dead properties. Domain errors become WebDAV's here, in
//! [`fs_error`].

use super::file::{Meta, Reader, Stamps, Writer};
use super::MacFiles;
use crate::caller::Caller;
use crate::files::{download_keys, FileError, Files};
use crate::meta::{DeadProp, Limit, Meta as MetaStore, PathConflict};
use axum::http::StatusCode;
use coffer_proto::paths;
use coffer_proto::put::PutMode;
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, OpenOptions, ReadDirMeta,
};
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// ownCloud's namespace, where its clients look for `checksums`.
const OC_NS: &str = "http://owncloud.org/ns";

/// Most dead properties one file or folder may carry.
const MAX_PROPS: usize = 256;

/// A zero-length file macOS looks for in the root: its presence keeps
/// Spotlight from indexing the mount.
const NEVER_INDEX: &str = ".metadata_never_index";

/// One caller's files, for one request.
#[derive(Clone)]
pub struct CofferFs {
    files: Files,
    meta: MetaStore,
    caller: Caller,
    /// What an upload carries besides its bytes.
    stamps: Stamps,
    /// Set when an upload's content did not match its `OC-Checksum`.
    mismatch: Arc<AtomicBool>,
    /// The checksums of files this request listed (`None`: it has none),
    /// so a PROPFIND of a folder asks for them once, not once a file.
    listed: Arc<std::sync::Mutex<HashMap<String, Option<String>>>>,
    mac: MacFiles,
    /// Where the client is, for its place among open downloads.
    addr: Option<std::net::IpAddr>,
}

impl CofferFs {
    pub fn new(
        files: Files,
        meta: MetaStore,
        caller: Caller,
        stamps: Stamps,
        mac: MacFiles,
        addr: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            files,
            meta,
            caller,
            stamps,
            mismatch: Arc::default(),
            listed: Arc::default(),
            mac,
            addr,
        }
    }

    /// Whether an upload of this request was refused for its checksum.
    pub fn checksum_mismatch(&self) -> Arc<AtomicBool> {
        self.mismatch.clone()
    }

    /// The dead properties of `path`, with the checksums of a file's
    /// latest version as ownCloud's `oc:checksums`.
    async fn props_of(&self, path: &str) -> FsResult<Vec<DeadProp>> {
        let mut props = self
            .meta
            .props(self.caller.owner, path)
            .await
            .map_err(|e| fs_error(e.into()))?;
        if path.is_empty() {
            return Ok(props);
        }
        let known = self.listed.lock().ok().and_then(|l| l.get(path).cloned());
        let sums = match known {
            Some(sums) => sums,
            None => self
                .files
                .metadata_without_health(&self.caller, path)
                .await
                .ok()
                .and_then(|v| v.checksums),
        };
        if let Some(sums) = sums {
            props.push(DeadProp {
                ns: OC_NS.into(),
                name: "checksums".into(),
                prefix: Some("oc".into()),
                xml: Some(format!(
                    "<oc:checksums xmlns:oc=\"{OC_NS}\"><oc:checksum>{sums}</oc:checksum></oc:checksums>"
                )),
            });
        }
        Ok(props)
    }

    /// Whether `path` names macOS's bookkeeping (`._name`, `.DS_Store`)
    /// that this server keeps out of the store.
    fn ignored(&self, path: &str) -> bool {
        self.mac == MacFiles::Ignore && is_mac_file(path)
    }

    /// Whether `path` is the `.metadata_never_index` this server answers in
    /// the root (when no file of that name is stored).
    fn never_index(&self, path: &str) -> bool {
        path == NEVER_INDEX && self.mac != MacFiles::Keep
    }

    async fn stat(&self, path: &str) -> FsResult<Meta> {
        if path.is_empty() {
            return Ok(Meta::folder());
        }
        if self.ignored(path) {
            return Err(FsError::NotFound);
        }
        match self.files.metadata_without_health(&self.caller, path).await {
            Ok(v) => return Ok(Meta::file(&v)),
            Err(FileError::NotFound(_)) => {}
            Err(e) => return Err(fs_error(e)),
        }
        if self
            .files
            .folder_exists(&self.caller, path)
            .await
            .map_err(fs_error)?
        {
            return Ok(Meta::folder());
        }
        if self.never_index(path) {
            return Ok(Meta::empty_file());
        }
        Err(FsError::NotFound)
    }

    async fn open_write(&self, path: String, o: &OpenOptions) -> FsResult<Box<dyn DavFile>> {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let found = self.stat(&path).await;
        match &found {
            Ok(m) if m.dir => return Err(FsError::Forbidden),
            Ok(_) if o.create_new => return Err(FsError::Exists),
            Err(FsError::NotFound) if !o.create => return Err(FsError::NotFound),
            Err(FsError::NotFound) => {}
            Err(e) => return Err(*e),
            Ok(_) => {}
        }
        if !self
            .files
            .folder_exists(&self.caller, parent)
            .await
            .map_err(fs_error)?
        {
            // PUT answers 409: the folder must be made first.
            return Err(FsError::NotFound);
        }
        let mode = if o.create_new {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let stamps = Stamps {
            checksum: o.checksum.clone(),
            ..self.stamps.clone()
        };
        Ok(Box::new(Writer::new(
            &self.files,
            &self.caller,
            path,
            mode,
            stamps,
            self.mismatch.clone(),
        )))
    }
}

/// macOS's AppleDouble files (`._name`) and folder settings (`.DS_Store`).
pub fn is_mac_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("._") || name == ".DS_Store"
}

/// A request path as a file path: decoded, normalised, no slashes at the
/// ends (`""`: the root).
pub fn file_path(p: &DavPath) -> FsResult<String> {
    let s = std::str::from_utf8(p.as_bytes()).map_err(|_| FsError::NotFound)?;
    let s = s.trim_matches('/');
    if s.is_empty() {
        return Ok(String::new());
    }
    paths::normalize(s).map_err(|_| FsError::Forbidden)
}

/// A domain error as WebDAV's (the one place they are mapped).
pub fn fs_error(e: FileError) -> FsError {
    match e {
        FileError::NotFound(_) | FileError::VersionNotFound { .. } => FsError::NotFound,
        FileError::AlreadyExists(PathConflict::Taken { .. }) => FsError::Exists,
        // Answered 409 Conflict: an ancestor is missing or is a file.
        FileError::AlreadyExists(
            PathConflict::NoParent { .. } | PathConflict::NotAFolder { .. },
        ) => FsError::NotFound,
        FileError::AlreadyExists(PathConflict::IsAFolder { .. }) => FsError::Forbidden,
        FileError::InvalidPath(_) | FileError::InvalidArgument(_) => FsError::Forbidden,
        FileError::Stale(_) => FsError::Exists,
        FileError::Limit(Limit::Quota { .. }) | FileError::Exhausted(_) => {
            FsError::InsufficientStorage
        }
        e => {
            tracing::warn!(error = %e, "WebDAV request failed");
            FsError::GeneralFailure
        }
    }
}

struct Entry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }
}

fn dav_prop(p: DeadProp, content: bool) -> DavProp {
    DavProp {
        name: p.name,
        prefix: p.prefix,
        // A property in no namespace is stored with an empty one.
        namespace: Some(p.ns).filter(|ns| !ns.is_empty()),
        xml: p.xml.filter(|_| content).map(String::into_bytes),
    }
}

impl DavFileSystem for CofferFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        Box::pin(async move {
            let path = file_path(path)?;
            if self.ignored(&path) {
                return if options.write {
                    // Taken and let go: the upload succeeds, nothing is kept.
                    Ok(Box::new(super::Discard::default()) as Box<dyn DavFile>)
                } else {
                    Err(FsError::NotFound)
                };
            }
            if options.write {
                return self.open_write(path, &options).await;
            }
            let admitted = self
                .files
                .admit_download(&download_keys(
                    format!("account {}", self.caller.name),
                    self.addr,
                ))
                .map_err(fs_error)?;
            let (v, chunks) = match self.files.open(&self.caller, &path, None).await {
                Ok(found) => found,
                Err(FileError::NotFound(_)) if self.never_index(&path) => {
                    return Ok(Box::new(super::Discard::default()) as Box<dyn DavFile>);
                }
                Err(e) => return Err(fs_error(e)),
            };
            Ok(Box::new(Reader::new(self.files.clone(), &v, chunks, admitted)) as Box<dyn DavFile>)
        })
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        Box::pin(async move {
            let path = file_path(path)?;
            if !self.stat(&path).await?.dir {
                return Err(FsError::Forbidden);
            }
            let (files, folders) = self
                .files
                .folder_entries(&self.caller, &path)
                .await
                .map_err(fs_error)?;
            let name = |p: &str| {
                p.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(p)
                    .to_string()
            };
            let mut entries: Vec<Box<dyn DavDirEntry>> = Vec::new();
            for d in folders {
                entries.push(Box::new(Entry {
                    name: name(&d),
                    meta: Meta::folder(),
                }));
            }
            if let Ok(mut listed) = self.listed.lock() {
                listed.extend(files.iter().map(|f| (f.path.clone(), f.checksums.clone())));
            }
            for f in files.iter().filter(|f| !self.ignored(&f.path)) {
                entries.push(Box::new(Entry {
                    name: name(&f.path),
                    meta: Meta::file(f),
                }));
            }
            let stream = futures::stream::iter(entries.into_iter().map(Ok));
            Ok(Box::pin(stream) as FsStream<Box<dyn DavDirEntry>>)
        })
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let path = file_path(path)?;
            Ok(Box::new(self.stat(&path).await?) as Box<dyn DavMetaData>)
        })
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let path = file_path(path)?;
            if path.is_empty() {
                return Err(FsError::Exists);
            }
            self.files
                .make_folder(&self.caller, &path)
                .await
                .map_err(fs_error)
        })
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let path = file_path(path)?;
            if path.is_empty() {
                return Err(FsError::Forbidden);
            }
            match self.files.delete_folder(&self.caller, &path).await {
                // A folder that only held files is gone with its last one.
                Ok(_) | Err(FileError::NotFound(_)) => Ok(()),
                Err(e) => Err(fs_error(e)),
            }
        })
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let path = file_path(path)?;
            if self.ignored(&path) {
                return Ok(());
            }
            self.files
                .delete(&self.caller, &path, PutMode::Overwrite)
                .await
                .map(drop)
                .map_err(fs_error)
        })
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let (from, to) = (file_path(from)?, file_path(to)?);
            if from.is_empty() || to.is_empty() {
                return Err(FsError::Forbidden);
            }
            if self.stat(&from).await?.dir {
                self.files
                    .move_folder(&self.caller, &from, &to)
                    .await
                    .map(drop)
                    .map_err(fs_error)
            } else {
                self.files
                    .move_file(&self.caller, &from, &to, PutMode::Overwrite)
                    .await
                    .map(drop)
                    .map_err(fs_error)
            }
        })
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let (from, to) = (file_path(from)?, file_path(to)?);
            self.files
                .copy_file(&self.caller, &from, &to)
                .await
                .map(drop)
                .map_err(fs_error)
        })
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let Ok(path) = file_path(path) else {
                return false;
            };
            self.props_of(&path).await.is_ok_and(|p| !p.is_empty())
        })
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        Box::pin(async move {
            let path = file_path(path)?;
            let had = self
                .meta
                .props(self.caller.owner, &path)
                .await
                .map_err(|e| fs_error(e.into()))?;
            let set: Vec<DeadProp> = patch
                .iter()
                .map(|(set, p)| DeadProp {
                    ns: p.namespace.clone().unwrap_or_default(),
                    name: p.name.clone(),
                    prefix: p.prefix.clone(),
                    xml: set.then(|| {
                        String::from_utf8_lossy(p.xml.as_deref().unwrap_or_default()).into_owned()
                    }),
                })
                .collect();
            let adding = set
                .iter()
                .filter(|n| {
                    n.xml.is_some() && !had.iter().any(|h| h.ns == n.ns && h.name == n.name)
                })
                .count();
            let status = if had.len() + adding > MAX_PROPS {
                StatusCode::INSUFFICIENT_STORAGE
            } else {
                self.meta
                    .patch_props(self.caller.owner, &path, &set)
                    .await
                    .map_err(|e| fs_error(e.into()))?;
                StatusCode::OK
            };
            Ok(patch
                .into_iter()
                .map(|(_, p)| (status, DavProp { xml: None, ..p }))
                .collect())
        })
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        Box::pin(async move {
            let path = file_path(path)?;
            let props = self.props_of(&path).await?;
            Ok(props.into_iter().map(|p| dav_prop(p, do_content)).collect())
        })
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let path = file_path(path)?;
            self.props_of(&path)
                .await?
                .into_iter()
                .find(|p| {
                    p.ns == prop.namespace.as_deref().unwrap_or_default() && p.name == prop.name
                })
                .and_then(|p| p.xml)
                .map(String::into_bytes)
                .ok_or(FsError::NotFound)
        })
    }

    fn get_quota(&self) -> FsFuture<'_, (u64, Option<u64>)> {
        async move {
            let u = self.files.usage(&self.caller).await.map_err(fs_error)?;
            // Used as `coffer whoami` and the web app count it (what
            // retained versions take), and the quota: the handler says
            // what is left.
            Ok((u.used, u.quota))
        }
        .boxed()
    }
}
