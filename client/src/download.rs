//! Streamed downloads, verified against the version's content hash.

use crate::client::{Coffer, Transport};
use crate::error::ClientError;
use crate::observer::Observer;
use crate::Metadata;
use bytes::Bytes;
use coffer_proto::pb::{FileDownloadRequest, FileResponse};
use std::io::Write;
use tonic::Streaming;

/// A download in progress: the version being read and its bytes, in order.
/// Feed every piece to a [`blake3::Hasher`] and end with [`Download::check`].
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
    pub fn check(meta: &Metadata, hasher: &blake3::Hasher) -> Result<(), ClientError> {
        let actual = hasher.finalize().to_hex().to_string();
        if actual != meta.content_hash {
            return Err(ClientError::HashMismatch {
                name: meta.file_name.clone(),
                expected: meta.content_hash.clone(),
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

    /// Streams `version` of `name` (0: the latest) into `out` and checks
    /// that the bytes hash to the version's content hash. On error, `out`
    /// may hold part of the content: the caller discards it.
    pub async fn download_to<W: Write>(
        &self,
        name: &str,
        version: u64,
        out: &mut W,
        observer: &dyn Observer,
    ) -> Result<Metadata, ClientError> {
        let mut download = self.open_download(name, version).await?;
        observer.start(download.meta.size);
        let mut hasher = blake3::Hasher::new();
        while let Some(piece) = download.next().await? {
            hasher.update(&piece);
            out.write_all(&piece)
                .map_err(|e| ClientError::io("writing the download", e))?;
            observer.advance(piece.len() as u64);
        }
        out.flush()
            .map_err(|e| ClientError::io("writing the download", e))?;
        Download::check(&download.meta, &hasher)?;
        Ok(download.meta)
    }
}
