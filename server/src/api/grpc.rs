//! The `FileStorage` gRPC service: decodes requests, calls [`Files`],
//! encodes answers. No logic of its own beyond framing.

use super::guard::{caller, peer};
use super::status::refusal;
use crate::auth::Auth;
use crate::caller::Caller;
use crate::files::{download_keys, FileVersion, Files, UploadPlan};
use crate::meta::ChunkRef;
use crate::meta::{SortKey, Sorted};
use coffer_proto::pb::file_storage_server::FileStorage;
use coffer_proto::pb::*;
use coffer_proto::put::PutMode;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

pub struct FileStorageApi {
    files: Files,
    /// Asked, while a stream is open, whether its caller's login still is.
    auth: Auth,
}

impl FileStorageApi {
    pub fn new(files: Files, auth: Auth) -> Self {
        Self { files, auth }
    }
}

/// `stream`, ended with UNAUTHENTICATED once `who`'s login has ended.
fn until_revoked<T: Send + 'static>(
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    auth: Auth,
    who: Caller,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    super::revoke::until_revoked(stream, auth, who, || {
        Err(Status::unauthenticated("the login has ended; log in again"))
    })
}

fn version_arg(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// The plan a new session's request declares, checked by the session.
fn plan_of(r: StartUploadRequest) -> UploadPlan {
    UploadPlan {
        path: r.file_name,
        size: r.size,
        chunks: r
            .chunks
            .into_iter()
            .map(|c| ChunkRef {
                id: c.id,
                size: c.size,
            })
            .collect(),
        hash: r.content_hash,
        modified: Some(r.modified_time).filter(|t| !t.is_empty()),
    }
}

fn metadata(v: &FileVersion) -> MetadataResponse {
    MetadataResponse {
        file_name: v.path.clone(),
        upload_time: v.created_at.clone(),
        version: v.number.to_string(),
        size: v.size,
        content_hash: v.hash.clone(),
        replica_health: Some(ReplicaHealth {
            replication_factor: v.replication,
            chunks: v.health.chunks,
            fully_replicated: v.health.fully_replicated,
            under_replicated: v.health.under_replicated,
            unavailable: v.health.unavailable,
        }),
        chunk_count: v.chunk_count,
        version_number: v.number,
        deleted: v.deleted,
        modified_time: v.modified.clone().unwrap_or_default(),
    }
}

/// The file name from the `filename` request header, if any.
fn header_name<T>(req: &Request<T>) -> Result<Option<String>, Status> {
    if let Some(v) = req.metadata().get_bin("filename-bin") {
        let bytes = v
            .to_bytes()
            .map_err(|_| Status::invalid_argument("filename-bin header is not valid base64"))?;
        let name = String::from_utf8(bytes.to_vec())
            .map_err(|_| Status::invalid_argument("filename-bin header is not UTF-8"))?;
        return Ok(Some(name));
    }
    match req.metadata().get("filename") {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
            Status::invalid_argument("filename header is not visible ASCII; use filename-bin")
        }),
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<FileResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FileStorage for FileStorageApi {
    async fn upload_file(
        &self,
        req: Request<Streaming<FileRequest>>,
    ) -> Result<Response<UploadResponse>, Status> {
        let who = caller(&req)?;
        let mut name = header_name(&req)?;
        let base = header_base(&req)?;
        let modified = match req.metadata().get("x-coffer-modified-time") {
            None => None,
            Some(v) => crate::files::modified_time(v.to_str().map_err(|_| {
                Status::invalid_argument("x-coffer-modified-time is not visible ASCII")
            })?)?,
        };
        if let Some(n) = &name {
            coffer_proto::paths::normalize(n).map_err(crate::files::FileError::from)?;
        }
        let no_name = || {
            Status::invalid_argument(
                "no file name: set fileName in the first message or a filename header",
            )
        };
        let mut stream = req.into_inner();
        let mut upload = self.files.begin_stream(&who);
        let idle = self.files.config().idle_timeout;
        // A client that goes quiet is cut off after the idle time-out, and
        // what its upload held is let go (the upload is dropped).
        let quiet = || {
            Status::from(crate::files::FileError::Timeout(format!(
                "the upload sent nothing for {} s and was closed",
                idle.as_secs()
            )))
        };
        while let Some(msg) = tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| quiet())??
        {
            if name.is_none() {
                // The name comes first: checked before any byte is stored.
                if msg.file_name.is_empty() {
                    return Err(no_name());
                }
                coffer_proto::paths::normalize(&msg.file_name)
                    .map_err(crate::files::FileError::from)?;
                name = Some(msg.file_name);
            }
            upload.push(&msg.file_data).await?;
        }
        let name = name.ok_or_else(no_name)?;
        let v = upload
            .finish(&name, PutMode::from_base(base), modified)
            .await?;
        Ok(Response::new(UploadResponse {
            message: format!(
                "File {} uploaded successfully as version {}",
                v.path, v.number
            ),
            version: v.number,
            size: v.size,
            content_hash: v.hash,
        }))
    }

    type DownloadFileStream = FrameStream;

    async fn download_file(
        &self,
        req: Request<FileDownloadRequest>,
    ) -> Result<Response<Self::DownloadFileStream>, Status> {
        let who = caller(&req)?;
        let admitted = self
            .files
            .admit_download(&download_keys(format!("account {}", who.name), peer(&req)))?;
        let r = req.into_inner();
        let (v, chunks) = self
            .files
            .open(&who, &r.file_name, version_arg(r.version))
            .await?;
        let frames = crate::download::pipe(&self.files, chunks, 0, v.size, Some(admitted))
            .await?
            .map(|piece| {
                piece
                    .map(|file_data| FileResponse { file_data })
                    .map_err(Status::from)
            });
        let frames = until_revoked(frames, self.auth.clone(), who);
        let mut resp = Response::new(Box::pin(frames) as FrameStream);
        let md = resp.metadata_mut();
        md.insert("x-coffer-version", v.number.into());
        md.insert("x-coffer-size", v.size.into());
        if let Ok(h) = v.hash.parse() {
            md.insert("x-coffer-content-hash", h);
        }
        Ok(resp)
    }

    async fn get_metadata(
        &self,
        req: Request<FileMetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let v = self
            .files
            .metadata(&who, &r.file_name, version_arg(r.version))
            .await?;
        Ok(Response::new(metadata(&v)))
    }

    async fn list_files(
        &self,
        req: Request<ListFilesRequest>,
    ) -> Result<Response<ListFilesResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let (files, folders, next) = match r.delimiter.as_str() {
            _ if !r.name_contains.is_empty() => {
                let (files, next) = self
                    .files
                    .search(
                        &who,
                        &r.prefix,
                        &r.name_contains,
                        &r.page_token,
                        r.page_size,
                    )
                    .await?;
                (files, Vec::new(), next)
            }
            "" => {
                let (files, next) = self
                    .files
                    .list(&who, &r.prefix, &r.page_token, r.page_size)
                    .await?;
                (files, Vec::new(), next)
            }
            "/" if !r.order_by.is_empty() => {
                let by = match r.order_by.as_str() {
                    "name" => SortKey::Name,
                    "size" => SortKey::Size,
                    "time" => SortKey::Time,
                    other => {
                        return Err(Status::invalid_argument(format!(
                            "orderBy {other:?} is not one of \"name\", \"size\", \"time\""
                        )))
                    }
                };
                let order = Sorted {
                    by,
                    descending: r.descending,
                };
                self.files
                    .list_sorted(&who, &r.prefix, order, &r.page_token, r.page_size)
                    .await?
            }
            "/" => {
                self.files
                    .list_folder(&who, &r.prefix, &r.page_token, r.page_size)
                    .await?
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "delimiter {other:?} is not supported; use \"/\" or none"
                )))
            }
        };
        Ok(Response::new(ListFilesResponse {
            files: files.iter().map(metadata).collect(),
            next_page_token: next,
            folders,
        }))
    }

    async fn list_versions(
        &self,
        req: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let (versions, next) = self
            .files
            .versions(&who, &r.file_name, &r.page_token, r.page_size)
            .await?;
        Ok(Response::new(ListVersionsResponse {
            versions: versions.iter().map(metadata).collect(),
            next_page_token: next,
        }))
    }

    async fn restore_version(
        &self,
        req: Request<RestoreVersionRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        if r.version == 0 {
            return Err(Status::invalid_argument("version must be 1 or more"));
        }
        let v = self.files.restore(&who, &r.file_name, r.version).await?;
        Ok(Response::new(metadata(&v)))
    }

    async fn delete_file(
        &self,
        req: Request<DeleteFileRequest>,
    ) -> Result<Response<DeleteFileResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let latest = self
            .files
            .delete(&who, &r.file_name, PutMode::from_base(r.base_version))
            .await?;
        Ok(Response::new(DeleteFileResponse {
            latest_version: latest,
        }))
    }

    async fn start_upload(
        &self,
        req: Request<StartUploadRequest>,
    ) -> Result<Response<StartUploadResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let status = if r.upload_id.is_empty() {
            self.files.start_upload(&who, plan_of(r)).await?
        } else {
            self.files.resume_upload(&who, &r.upload_id).await?
        };
        Ok(Response::new(StartUploadResponse {
            upload_id: status.id,
            missing_chunks: status.missing,
            expires_at: status.expires_at,
            content_hash: status.hash,
        }))
    }

    async fn put_chunk(
        &self,
        req: Request<PutChunkRequest>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let remaining = self
            .files
            .put_chunk(&who, &r.upload_id, &r.chunk_id, r.data)
            .await?;
        Ok(Response::new(PutChunkResponse {
            remaining: remaining as u32,
        }))
    }

    async fn finish_upload(
        &self,
        req: Request<FinishUploadRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let v = self
            .files
            .finish_upload(&who, &r.upload_id, PutMode::from_base(r.base_version))
            .await?;
        Ok(Response::new(metadata(&v)))
    }

    async fn start_uploads(
        &self,
        req: Request<StartUploadsRequest>,
    ) -> Result<Response<StartUploadsResponse>, Status> {
        use start_upload_result::Result as Answer;
        let who = caller(&req)?;
        let mut plans = Vec::new();
        for r in req.into_inner().files {
            if !r.upload_id.is_empty() {
                return Err(Status::invalid_argument(
                    "StartUploads opens new sessions; resume one with StartUpload",
                ));
            }
            plans.push(plan_of(r));
        }
        let answers = self.files.start_uploads(&who, plans).await?;
        let files = answers
            .into_iter()
            .map(|a| StartUploadResult {
                result: Some(match a {
                    Ok(s) => Answer::Session(StartUploadResponse {
                        upload_id: s.id,
                        missing_chunks: s.missing,
                        expires_at: s.expires_at,
                        content_hash: s.hash,
                    }),
                    Err(e) => Answer::Refused(refusal(e)),
                }),
            })
            .collect();
        Ok(Response::new(StartUploadsResponse { files }))
    }

    async fn put_chunks(
        &self,
        req: Request<PutChunksRequest>,
    ) -> Result<Response<PutChunksResponse>, Status> {
        let who = caller(&req)?;
        let chunks = req
            .into_inner()
            .chunks
            .into_iter()
            .map(|c| (c.upload_id, c.chunk_id, c.data))
            .collect();
        let left = self.files.put_chunks(&who, chunks).await?;
        Ok(Response::new(PutChunksResponse {
            remaining: left.into_iter().map(|n| n as u32).collect(),
        }))
    }

    async fn finish_uploads(
        &self,
        req: Request<FinishUploadsRequest>,
    ) -> Result<Response<FinishUploadsResponse>, Status> {
        use finish_upload_result::Result as Answer;
        let who = caller(&req)?;
        let batch = req
            .into_inner()
            .files
            .into_iter()
            .map(|f| (f.upload_id, PutMode::from_base(f.base_version)))
            .collect();
        let answers = self.files.finish_uploads(&who, batch).await?;
        let files = answers
            .into_iter()
            .map(|a| FinishUploadResult {
                result: Some(match a {
                    Ok(v) => Answer::Metadata(metadata(&v)),
                    Err(e) => Answer::Refused(refusal(e)),
                }),
            })
            .collect();
        Ok(Response::new(FinishUploadsResponse { files }))
    }

    async fn abort_upload(
        &self,
        req: Request<AbortUploadRequest>,
    ) -> Result<Response<AbortUploadResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        self.files.abort_upload(&who, &r.upload_id).await?;
        Ok(Response::new(AbortUploadResponse {}))
    }

    async fn move_file(
        &self,
        req: Request<MoveFileRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let v = self
            .files
            .move_file(
                &who,
                &r.from_name,
                &r.to_name,
                PutMode::from_base(r.base_version),
            )
            .await?;
        Ok(Response::new(metadata(&v)))
    }

    async fn make_folder(
        &self,
        req: Request<MakeFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        let who = caller(&req)?;
        let path = self
            .files
            .make_folders(&who, &req.into_inner().path)
            .await?;
        Ok(Response::new(FolderResponse { path, files: 0 }))
    }

    async fn delete_folder(
        &self,
        req: Request<DeleteFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        let who = caller(&req)?;
        let path = req.into_inner().path;
        let files = self.files.delete_folder(&who, &path).await?;
        Ok(Response::new(FolderResponse {
            path: crate::files::folder_path(&path)?,
            files,
        }))
    }

    async fn move_folder(
        &self,
        req: Request<MoveFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let files = self
            .files
            .move_folder(&who, &r.from_path, &r.to_path)
            .await?;
        Ok(Response::new(FolderResponse {
            path: crate::files::folder_path(&r.to_path)?,
            files,
        }))
    }

    async fn list_changes(
        &self,
        req: Request<ListChangesRequest>,
    ) -> Result<Response<ListChangesResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let page = self
            .files
            .feed()
            .page(who.owner, &r.cursor, r.page_size, r.latest)
            .await?;
        Ok(Response::new(changes_page(page)))
    }

    type WatchChangesStream =
        Pin<Box<dyn Stream<Item = Result<ListChangesResponse, Status>> + Send>>;

    async fn watch_changes(
        &self,
        req: Request<WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let who = caller(&req)?;
        let pages = self.files.feed().watch(who.owner, &req.into_inner().cursor);
        let pages = pages.map(|p| p.map(changes_page).map_err(Status::from));
        Ok(Response::new(Box::pin(until_revoked(
            pages,
            self.auth.clone(),
            who,
        ))))
    }
}

fn changes_page(p: crate::files::feed::Page) -> ListChangesResponse {
    ListChangesResponse {
        changes: p
            .changes
            .into_iter()
            .map(|c| Change {
                seq: c.seq,
                file_name: c.path,
                deleted: c.deleted,
                version: c.version,
                size: c.size,
                content_hash: c.hash,
                time: c.at,
                modified_time: c.modified.unwrap_or_default(),
            })
            .collect(),
        cursor: p.cursor,
        more: p.more,
    }
}

/// The `x-coffer-base-version` header of a conditional UploadFile.
fn header_base<T>(req: &Request<T>) -> Result<Option<u64>, Status> {
    let Some(v) = req.metadata().get("x-coffer-base-version") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Status::invalid_argument("x-coffer-base-version must be a version number (0: no file)")
        })
}
