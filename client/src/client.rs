//! [`Coffer`]: the SDK's client, generic over the tonic transport, with
//! the simple calls (listing, metadata, versions, restore, delete, admin).

use crate::error::ClientError;
use crate::upload::Batches;
use crate::Metadata;
use coffer_proto::paths;
use coffer_proto::pb::{
    coffer_admin_client::CofferAdminClient, coffer_auth_client::CofferAuthClient,
    coffer_share_client::CofferShareClient, file_storage_client::FileStorageClient, AppPassword,
    ArchiveLinkRequest, ClusterStatusRequest, ClusterStatusResponse, CreateAppPasswordRequest,
    CreateAppPasswordResponse, CreateShareLinkRequest, DeleteFileRequest, DeleteFolderRequest,
    DownloadLinkRequest, DownloadLinkResponse, FileMetadataRequest, ListAppPasswordsRequest,
    ListFilesRequest, ListShareLinksRequest, ListVersionsRequest, LoginRequest, LoginResponse,
    LogoutRequest, MakeFolderRequest, MoveFileRequest, MoveFolderRequest, RefreshRequest,
    RestoreVersionRequest, RevokeAppPasswordRequest, RevokeShareLinkRequest, RunWorkerRequest,
    ShareLink, WhoAmIRequest, WhoAmIResponse, WorkerStatus,
};
use coffer_proto::put::PutMode;
use std::sync::Arc;
use tonic::codegen::{Body, Bytes, StdError};
use tonic::metadata::MetadataValue;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

/// Largest message the client accepts or sends: a chunk plus headroom.
pub const MAX_MESSAGE_BYTES: usize = coffer_proto::chunking::MAX_CHUNK + 1024 * 1024;

/// A tonic transport the SDK can run on: tonic's native `Channel`, the
/// browser's grpc-web client, or anything else with the same shape.
pub trait Transport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<StdError>,
        ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
    > + Clone
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<StdError>,
            ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
        > + Clone
{
}

/// A Coffer client on transport `T`. Cheap to clone; clones share the
/// transport.
#[derive(Debug, Clone)]
pub struct Coffer<T> {
    pub(crate) files: FileStorageClient<T>,
    admin: CofferAdminClient<T>,
    auth: CofferAuthClient<T>,
    share: CofferShareClient<T>,
    health: HealthClient<T>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// Upload calls coalesced across this login's uploads; a new login
    /// starts its own, so no batch mixes two logins' calls.
    pub(crate) batches: Arc<Batches>,
}

impl<T: Transport> Coffer<T> {
    /// A client over an already built transport.
    pub fn new(transport: T) -> Self {
        let files = FileStorageClient::new(transport.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Coffer {
            files,
            admin: CofferAdminClient::new(transport.clone()),
            auth: CofferAuthClient::new(transport.clone()),
            share: CofferShareClient::new(transport.clone()),
            health: HealthClient::new(transport),
            token: None,
            batches: Default::default(),
        }
    }

    /// Logs in with a bearer token: every later request carries
    /// `authorization: Bearer <token>`.
    pub fn login(&mut self, token: &str) -> Result<(), ClientError> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Protocol("the token is not valid header text".into()))?;
        self.token = Some(value);
        self.batches = Default::default();
        Ok(())
    }

    /// Forgets the bearer token.
    pub fn logout(&mut self) {
        self.token = None;
        self.batches = Default::default();
    }

    /// Logs `username` in with `password`: the tokens, which
    /// [`Coffer::login`] then puts on every request.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, ClientError> {
        let req = tonic::Request::new(LoginRequest {
            username: username.into(),
            password: password.into(),
        });
        Ok(self.auth.clone().login(req).await?.into_inner())
    }

    /// A new access token for a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<LoginResponse, ClientError> {
        let req = tonic::Request::new(RefreshRequest {
            refresh_token: refresh_token.into(),
        });
        Ok(self.auth.clone().refresh(req).await?.into_inner())
    }

    /// Ends the login of `refresh_token` (empty: the current one).
    pub async fn sign_out(&self, refresh_token: &str) -> Result<(), ClientError> {
        let req = self.request(LogoutRequest {
            refresh_token: refresh_token.into(),
        });
        self.auth.clone().logout(req).await?;
        Ok(())
    }

    /// Who the server takes this client for.
    pub async fn whoami(&self) -> Result<WhoAmIResponse, ClientError> {
        let req = self.request(WhoAmIRequest {});
        Ok(self.auth.clone().who_am_i(req).await?.into_inner())
    }

    /// A link (path and query on the server) that downloads `name` at
    /// `version` (0: the latest) for about a minute, without a token.
    pub async fn download_link(
        &self,
        name: &str,
        version: u64,
    ) -> Result<DownloadLinkResponse, ClientError> {
        self.link(name, version, false).await
    }

    /// A link (path and query on the server) that shows `name` at
    /// `version` in a browser for about an hour: sandboxed where it could
    /// run script, saved where it cannot be shown.
    pub async fn view_link(
        &self,
        name: &str,
        version: u64,
    ) -> Result<DownloadLinkResponse, ClientError> {
        self.link(name, version, true).await
    }

    async fn link(
        &self,
        name: &str,
        version: u64,
        inline: bool,
    ) -> Result<DownloadLinkResponse, ClientError> {
        let req = self.request(DownloadLinkRequest {
            file_name: normalize(name)?,
            version,
            inline,
        });
        Ok(self.auth.clone().download_link(req).await?.into_inner())
    }

    /// A link for about a minute that downloads `paths` (files and
    /// folders) as one zip: POST a form with the same paths, each as a
    /// `path` field, in the same order.
    pub async fn archive_link(
        &self,
        paths: &[String],
    ) -> Result<DownloadLinkResponse, ClientError> {
        let req = self.request(ArchiveLinkRequest {
            paths: paths.to_vec(),
        });
        Ok(self.auth.clone().archive_link(req).await?.into_inner())
    }

    /// Wraps a message in a request carrying the token, if any.
    pub(crate) fn request<M>(&self, msg: M) -> tonic::Request<M> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        req
    }

    /// The cursor of the caller's newest change: follow the feed from
    /// here to hear of what happens next.
    pub async fn latest_cursor(&self) -> Result<String, ClientError> {
        let req = self.request(coffer_proto::pb::ListChangesRequest {
            latest: true,
            ..Default::default()
        });
        Ok(self
            .files
            .clone()
            .list_changes(req)
            .await?
            .into_inner()
            .cursor)
    }

    /// A page of the caller's changes after `cursor` (at most
    /// `page_size`); a cursor too old to serve is
    /// [`ClientError::is_stale`] (rescan).
    pub async fn changes(
        &self,
        cursor: &str,
        page_size: u32,
    ) -> Result<coffer_proto::pb::ListChangesResponse, ClientError> {
        let req = self.request(coffer_proto::pb::ListChangesRequest {
            cursor: cursor.to_string(),
            page_size,
            latest: false,
        });
        Ok(self.files.clone().list_changes(req).await?.into_inner())
    }

    /// The caller's changes after `cursor` as they happen: a first page at
    /// once, then one per change (see `WatchChanges`).
    pub async fn watch(&self, cursor: &str) -> Result<Watch, ClientError> {
        let req = self.request(coffer_proto::pb::WatchChangesRequest {
            cursor: cursor.to_string(),
        });
        Ok(Watch(
            self.files.clone().watch_changes(req).await?.into_inner(),
        ))
    }

    /// Metadata of `name` at `version` (0: the latest).
    pub async fn stat(&self, name: &str, version: u64) -> Result<Metadata, ClientError> {
        let file_name = normalize(name)?;
        let req = self.request(FileMetadataRequest { file_name, version });
        Ok(self.files.clone().get_metadata(req).await?.into_inner())
    }

    /// Every live file under `prefix`, in path order (all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Metadata>, ClientError> {
        Ok(self.list_pages(prefix, "").await?.0)
    }

    /// One folder's entries (all pages): the files directly in `folder`
    /// ("" for the top, else a path ending in `/`), in path order, and
    /// its sub-folders as full prefixes ("a/b/"). Nothing deeper is sent.
    pub async fn list_folder(
        &self,
        folder: &str,
    ) -> Result<(Vec<Metadata>, Vec<String>), ClientError> {
        self.list_pages(folder, "/").await
    }

    /// One page of the files directly in `folder` ("" for the top, else a
    /// path ending in `/`) ordered by `order_by` ("name", "size" or
    /// "time"), every sub-folder on the first page, and the token of the
    /// next page (empty on the last).
    pub async fn folder_page(
        &self,
        folder: &str,
        order_by: &str,
        descending: bool,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<Metadata>, Vec<String>, String), ClientError> {
        let req = self.request(ListFilesRequest {
            prefix: folder.to_string(),
            page_size,
            page_token: page_token.to_string(),
            delimiter: "/".into(),
            order_by: order_by.to_string(),
            descending,
            ..Default::default()
        });
        let page = self.files.clone().list_files(req).await?.into_inner();
        Ok((page.files, page.folders, page.next_page_token))
    }

    /// One page of files under `prefix` (at any depth) whose name holds
    /// `needle`, ignoring case, and the token of the next page (empty on
    /// the last).
    pub async fn search(
        &self,
        prefix: &str,
        needle: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<Metadata>, String), ClientError> {
        let req = self.request(ListFilesRequest {
            prefix: prefix.to_string(),
            page_size,
            page_token: page_token.to_string(),
            name_contains: needle.to_string(),
            ..Default::default()
        });
        let page = self.files.clone().list_files(req).await?.into_inner();
        Ok((page.files, page.next_page_token))
    }

    /// ListFiles, every page: files, and with a delimiter sub-folders.
    async fn list_pages(
        &self,
        prefix: &str,
        delimiter: &str,
    ) -> Result<(Vec<Metadata>, Vec<String>), ClientError> {
        let normal =
            paths::normalize_prefix(prefix).map_err(|reason| ClientError::InvalidName {
                name: prefix.to_string(),
                reason,
            })?;
        let (mut files, mut folders) = (Vec::new(), Vec::new());
        let mut page_token = String::new();
        loop {
            let req = self.request(ListFilesRequest {
                prefix: normal.clone(),
                page_size: 1000,
                page_token,
                delimiter: delimiter.to_string(),
                ..Default::default()
            });
            let page = self.files.clone().list_files(req).await?.into_inner();
            files.extend(page.files);
            folders.extend(page.folders);
            if page.next_page_token.is_empty() {
                return Ok((files, folders));
            }
            page_token = page.next_page_token;
        }
    }

    /// Every version of `name`, newest first (all pages).
    pub async fn versions(&self, name: &str) -> Result<Vec<Metadata>, ClientError> {
        let file_name = normalize(name)?;
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = self.request(ListVersionsRequest {
                file_name: file_name.clone(),
                page_size: 1000,
                page_token,
            });
            let page = self.files.clone().list_versions(req).await?.into_inner();
            out.extend(page.versions);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Creates a link that downloads `version` of `name` (0: the latest)
    /// without an account until it expires (`expires_in_secs`, 0: the
    /// server's default) or is revoked; with a password if not empty.
    pub async fn share(
        &self,
        name: &str,
        version: u64,
        expires_in_secs: u64,
        password: &str,
    ) -> Result<ShareLink, ClientError> {
        let file_name = normalize(name)?;
        let req = self.request(CreateShareLinkRequest {
            file_name,
            version,
            expires_in_secs,
            password: password.to_string(),
        });
        Ok(self
            .share
            .clone()
            .create_share_link(req)
            .await?
            .into_inner())
    }

    /// The caller's share links, newest first.
    pub async fn share_links(&self) -> Result<Vec<ShareLink>, ClientError> {
        let req = self.request(ListShareLinksRequest {});
        Ok(self
            .share
            .clone()
            .list_share_links(req)
            .await?
            .into_inner()
            .links)
    }

    /// Ends the share link `id` at once.
    pub async fn revoke_share(&self, id: &str) -> Result<(), ClientError> {
        let req = self.request(RevokeShareLinkRequest { id: id.to_string() });
        self.share.clone().revoke_share_link(req).await?;
        Ok(())
    }

    /// A new app password named `name` (for WebDAV clients): the answer
    /// holds the password, which the server never shows again.
    pub async fn create_app_password(
        &self,
        name: &str,
    ) -> Result<CreateAppPasswordResponse, ClientError> {
        let req = self.request(CreateAppPasswordRequest {
            name: name.to_string(),
        });
        Ok(self
            .auth
            .clone()
            .create_app_password(req)
            .await?
            .into_inner())
    }

    /// The caller's app passwords, by name.
    pub async fn app_passwords(&self) -> Result<Vec<AppPassword>, ClientError> {
        let req = self.request(ListAppPasswordsRequest {});
        Ok(self
            .auth
            .clone()
            .list_app_passwords(req)
            .await?
            .into_inner()
            .app_passwords)
    }

    /// Ends the app password `name` at once.
    pub async fn revoke_app_password(&self, name: &str) -> Result<(), ClientError> {
        let req = self.request(RevokeAppPasswordRequest {
            name: name.to_string(),
        });
        self.auth.clone().revoke_app_password(req).await?;
        Ok(())
    }

    /// Makes `version` of `name` the newest again; returns the new version.
    pub async fn restore(&self, name: &str, version: u64) -> Result<Metadata, ClientError> {
        let file_name = normalize(name)?;
        let req = self.request(RestoreVersionRequest { file_name, version });
        Ok(self.files.clone().restore_version(req).await?.into_inner())
    }

    /// Deletes `name` (restorable) if `mode` holds, else
    /// [`ClientError::is_stale`] and nothing changes; returns its latest
    /// version number.
    pub async fn delete(&self, name: &str, mode: PutMode) -> Result<u64, ClientError> {
        let file_name = normalize(name)?;
        let req = self.request(DeleteFileRequest {
            file_name,
            base_version: mode.base(),
        });
        Ok(self
            .files
            .clone()
            .delete_file(req)
            .await?
            .into_inner()
            .latest_version)
    }

    /// Moves `from` to `to` (a new version of `to` with `from`'s content;
    /// `from` deleted, restorable) if `mode` holds for `from`; else
    /// [`ClientError::is_stale`] and nothing changes. A live file at `to`
    /// is ALREADY_EXISTS.
    pub async fn move_file(
        &self,
        from: &str,
        to: &str,
        mode: PutMode,
    ) -> Result<Metadata, ClientError> {
        let req = self.request(MoveFileRequest {
            from_name: normalize(from)?,
            to_name: normalize(to)?,
            base_version: mode.base(),
        });
        Ok(self.files.clone().move_file(req).await?.into_inner())
    }

    /// Makes folder `path` and any missing folders above it; returns its
    /// name as stored. A file or folder with the name is ALREADY_EXISTS.
    pub async fn make_folder(&self, path: &str) -> Result<String, ClientError> {
        let req = self.request(MakeFolderRequest {
            path: normalize(path)?,
        });
        Ok(self.files.clone().make_folder(req).await?.into_inner().path)
    }

    /// Deletes folder `path` with every file in it (each restorable);
    /// returns how many files.
    pub async fn delete_folder(&self, path: &str) -> Result<u64, ClientError> {
        let req = self.request(DeleteFolderRequest {
            path: normalize(path)?,
        });
        Ok(self
            .files
            .clone()
            .delete_folder(req)
            .await?
            .into_inner()
            .files)
    }

    /// Moves folder `from` with everything in it to the free name `to`;
    /// returns how many files moved.
    pub async fn move_folder(&self, from: &str, to: &str) -> Result<u64, ClientError> {
        let req = self.request(MoveFolderRequest {
            from_path: normalize(from)?,
            to_path: normalize(to)?,
        });
        Ok(self
            .files
            .clone()
            .move_folder(req)
            .await?
            .into_inner()
            .files)
    }

    /// Whether the server reports itself serving (gRPC health protocol).
    pub async fn health(&self) -> Result<bool, ClientError> {
        let req = self.request(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        });
        let r = self.health.clone().check(req).await?.into_inner();
        Ok(r.status == ServingStatus::Serving as i32)
    }

    /// The cluster as the server sees it: nodes, replication, workers.
    pub async fn cluster_status(&self) -> Result<ClusterStatusResponse, ClientError> {
        let req = self.request(ClusterStatusRequest {});
        Ok(self.admin.clone().cluster_status(req).await?.into_inner())
    }

    /// Starts a pass of worker `name` ("repair", "scrub", "gc"); with
    /// `wait`, returns once a pass started after this call has finished.
    pub async fn run_worker(&self, name: &str, wait: bool) -> Result<WorkerStatus, ClientError> {
        let req = self.request(RunWorkerRequest {
            name: name.to_string(),
            wait,
        });
        self.admin
            .clone()
            .run_worker(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| ClientError::Protocol("RunWorker answered without a status".into()))
    }
}

/// Validates a remote file name locally, before any request.
pub fn normalize(name: &str) -> Result<String, ClientError> {
    paths::normalize(name).map_err(|reason| ClientError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// An open `WatchChanges` call.
pub struct Watch(tonic::Streaming<coffer_proto::pb::ListChangesResponse>);

impl Watch {
    /// The next page of changes; `None` once the server ends the call.
    pub async fn next(
        &mut self,
    ) -> Result<Option<coffer_proto::pb::ListChangesResponse>, ClientError> {
        Ok(self.0.message().await?)
    }
}
