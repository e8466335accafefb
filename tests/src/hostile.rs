//! A hostile server for client tests: a small tonic service that answers
//! `WhoAmI`, `ListChanges`, `ListFiles`, `GetMetadata` and `DownloadFile`
//! with whatever names a test gives it (names that climb out of a folder,
//! drive prefixes, names Windows cannot hold), and every file's content
//! as `pwn`. What a real server would refuse to store is exactly what a
//! client must never trust.

use coffer_proto::pb::coffer_auth_server::{CofferAuth, CofferAuthServer};
use coffer_proto::pb::file_storage_server::{FileStorage, FileStorageServer};
use coffer_proto::pb::*;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// The content of every file the hostile server lists.
pub const CONTENT: &[u8] = b"pwn";

/// The names to list, with full paths (`folder/...`).
#[derive(Clone)]
pub struct Evil {
    names: Arc<Vec<String>>,
}

type Frames = Pin<Box<dyn futures::Stream<Item = Result<FileResponse, Status>> + Send>>;

fn meta(name: &str) -> MetadataResponse {
    MetadataResponse {
        file_name: name.into(),
        version: "1".into(),
        version_number: 1,
        size: CONTENT.len() as u64,
        content_hash: coffer_proto::chunking::content_hash_of(CONTENT),
        ..Default::default()
    }
}

fn no<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not in the hostile server"))
}

#[tonic::async_trait]
impl FileStorage for Evil {
    async fn upload_file(
        &self,
        _: Request<Streaming<FileRequest>>,
    ) -> Result<Response<UploadResponse>, Status> {
        no()
    }
    type DownloadFileStream = Frames;
    async fn download_file(
        &self,
        _: Request<FileDownloadRequest>,
    ) -> Result<Response<Frames>, Status> {
        let one = Ok(FileResponse {
            file_data: bytes::Bytes::from_static(CONTENT),
        });
        Ok(Response::new(Box::pin(futures::stream::iter([one]))))
    }
    async fn get_metadata(
        &self,
        req: Request<FileMetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let name = req.into_inner().file_name;
        if self.names.contains(&name) {
            Ok(Response::new(meta(&name)))
        } else {
            Err(Status::not_found("a folder"))
        }
    }
    async fn list_files(
        &self,
        _: Request<ListFilesRequest>,
    ) -> Result<Response<ListFilesResponse>, Status> {
        Ok(Response::new(ListFilesResponse {
            files: self.names.iter().map(|n| meta(n)).collect(),
            next_page_token: String::new(),
            folders: Vec::new(),
        }))
    }
    async fn list_versions(
        &self,
        _: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        no()
    }
    async fn restore_version(
        &self,
        _: Request<RestoreVersionRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        no()
    }
    async fn delete_file(
        &self,
        _: Request<DeleteFileRequest>,
    ) -> Result<Response<DeleteFileResponse>, Status> {
        no()
    }
    async fn start_upload(
        &self,
        _: Request<StartUploadRequest>,
    ) -> Result<Response<StartUploadResponse>, Status> {
        no()
    }
    async fn put_chunk(
        &self,
        _: Request<PutChunkRequest>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        no()
    }
    async fn finish_upload(
        &self,
        _: Request<FinishUploadRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        no()
    }
    async fn abort_upload(
        &self,
        _: Request<AbortUploadRequest>,
    ) -> Result<Response<AbortUploadResponse>, Status> {
        no()
    }
    async fn start_uploads(
        &self,
        _: Request<StartUploadsRequest>,
    ) -> Result<Response<StartUploadsResponse>, Status> {
        no()
    }
    async fn put_chunks(
        &self,
        _: Request<PutChunksRequest>,
    ) -> Result<Response<PutChunksResponse>, Status> {
        no()
    }
    async fn finish_uploads(
        &self,
        _: Request<FinishUploadsRequest>,
    ) -> Result<Response<FinishUploadsResponse>, Status> {
        no()
    }
    async fn move_file(
        &self,
        _: Request<MoveFileRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        no()
    }
    async fn list_changes(
        &self,
        _: Request<ListChangesRequest>,
    ) -> Result<Response<ListChangesResponse>, Status> {
        // A feed with one cursor and nothing new: every pass lists.
        Ok(Response::new(ListChangesResponse {
            changes: Vec::new(),
            cursor: "c1".into(),
            more: false,
        }))
    }
    type WatchChangesStream =
        Pin<Box<dyn futures::Stream<Item = Result<ListChangesResponse, Status>> + Send>>;
    async fn watch_changes(
        &self,
        _: Request<WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        no()
    }
    async fn make_folder(
        &self,
        _: Request<MakeFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        no()
    }
    async fn delete_folder(
        &self,
        _: Request<DeleteFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        no()
    }
    async fn move_folder(
        &self,
        _: Request<MoveFolderRequest>,
    ) -> Result<Response<FolderResponse>, Status> {
        no()
    }
}

#[tonic::async_trait]
impl CofferAuth for Evil {
    async fn login(&self, _: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        no()
    }
    async fn refresh(&self, _: Request<RefreshRequest>) -> Result<Response<LoginResponse>, Status> {
        no()
    }
    async fn logout(&self, _: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        no()
    }
    async fn who_am_i(
        &self,
        _: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        Ok(Response::new(WhoAmIResponse {
            username: "mallory".into(),
            role: "user".into(),
            ..Default::default()
        }))
    }
    async fn download_link(
        &self,
        _: Request<DownloadLinkRequest>,
    ) -> Result<Response<DownloadLinkResponse>, Status> {
        no()
    }
    async fn archive_link(
        &self,
        _: Request<ArchiveLinkRequest>,
    ) -> Result<Response<DownloadLinkResponse>, Status> {
        no()
    }
    async fn create_app_password(
        &self,
        _: Request<CreateAppPasswordRequest>,
    ) -> Result<Response<CreateAppPasswordResponse>, Status> {
        no()
    }
    async fn list_app_passwords(
        &self,
        _: Request<ListAppPasswordsRequest>,
    ) -> Result<Response<ListAppPasswordsResponse>, Status> {
        no()
    }
    async fn revoke_app_password(
        &self,
        _: Request<RevokeAppPasswordRequest>,
    ) -> Result<Response<RevokeAppPasswordResponse>, Status> {
        no()
    }
}

/// Serves [`Evil`] listing `names` on a loopback port; returns its
/// address (`http://127.0.0.1:PORT`). It runs until the test ends.
pub async fn start(names: &[&str]) -> String {
    let evil = Evil {
        names: Arc::new(names.iter().map(|n| n.to_string()).collect()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FileStorageServer::new(evil.clone()))
            .add_service(CofferAuthServer::new(evil))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// Every file under `dir`, however deep (links are not followed).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                _ => found.push(e.path()),
            }
        }
    }
    found.sort();
    found
}
