//! Streamed downloads, verified against the version's content hash.

use crate::client::{Coffer, Transport};
use crate::error::ClientError;
use crate::observer::Observer;
use crate::Metadata;
use coffer_proto::pb::FileDownloadRequest;
use std::io::Write;

impl<T: Transport> Coffer<T> {
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
        // Metadata first, then that exact version: a concurrent upload
        // cannot change what is read halfway.
        let meta = self.stat(name, version).await?;
        observer.start(meta.size);
        let req = self.request(FileDownloadRequest {
            file_name: meta.file_name.clone(),
            version: meta.version_number,
        });
        let mut stream = self.files.clone().download_file(req).await?.into_inner();
        let mut hasher = blake3::Hasher::new();
        while let Some(msg) = stream.message().await? {
            hasher.update(&msg.file_data);
            out.write_all(&msg.file_data)
                .map_err(|e| ClientError::io("writing the download", e))?;
            observer.advance(msg.file_data.len() as u64);
        }
        out.flush()
            .map_err(|e| ClientError::io("writing the download", e))?;
        let actual = hasher.finalize().to_hex().to_string();
        if actual != meta.content_hash {
            return Err(ClientError::HashMismatch {
                name: meta.file_name,
                expected: meta.content_hash,
                actual,
            });
        }
        Ok(meta)
    }
}
