//! Streamed downloads, verified against the version's content hash.

use crate::client::{Coffer, Transport};
use crate::error::ClientError;
use crate::Metadata;
use bytes::Bytes;
pub use coffer_proto::chunking::StreamContentHasher;
use coffer_proto::pb::{FileDownloadRequest, FileResponse};
use tonic::Streaming;

/// A download in progress: the version being read and its bytes, in order.
/// Feed every piece to a [`StreamContentHasher`] and end with [`Download::check`]:
/// the caller decides where the bytes go (`native::files::download_file`
/// writes them to a temporary file).
pub struct Download {
    /// The exact version being read.
    pub meta: Metadata,
    stream: Streaming<FileResponse>,
}

impl Download {
    /// The next piece of the content, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ClientError> {
        Ok(self.stream.message().await?.map(|m| m.file_data))
    }

    /// Ok if `hasher` saw exactly the version's content.
    pub fn check(&self, hasher: StreamContentHasher) -> Result<(), ClientError> {
        let actual = hasher.finish();
        if actual != self.meta.content_hash {
            return Err(ClientError::HashMismatch {
                name: self.meta.file_name.clone(),
                expected: self.meta.content_hash.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl<T: Transport> Coffer<T> {
    /// Starts reading `version` of `name` (0: the latest).
    pub async fn open_download(&self, name: &str, version: u64) -> Result<Download, ClientError> {
        // Metadata first, then that exact version: a concurrent upload
        // cannot change what is read halfway.
        let meta = self.stat(name, version).await?;
        let req = self.request(FileDownloadRequest {
            file_name: meta.file_name.clone(),
            version: meta.version_number,
        });
        let stream = self.files.clone().download_file(req).await?.into_inner();
        Ok(Download { meta, stream })
    }
}
