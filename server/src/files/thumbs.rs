//! A thumbnail of one file version: from the nodes if it was made before,
//! else made now (a few at a time, server-wide, each from at most
//! [`ThumbConfig::max_source_bytes`] held in memory), recorded, stored
//! on the nodes, and returned.

use super::*;
use crate::thumbs::{nodes_for, object_key, render, ThumbConfig};
use coffer_proto::media::{media, Media};
use futures::TryStreamExt;

/// A thumbnail, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thumb {
    Jpeg(Bytes),
    None(String),
}

impl Files {
    /// The thumbnail of version `version` (latest if `None`) of `path`,
    /// whose longer edge is `edge` (one of [`crate::thumbs::EDGES`]), and
    /// the version it shows.
    pub async fn thumbnail(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
        edge: u32,
    ) -> Result<(FileVersion, Thumb), FileError> {
        if !crate::thumbs::EDGES.contains(&edge) {
            return Err(FileError::InvalidArgument(format!(
                "thumbnails are {:?} pixels on their longer edge, not {edge}",
                crate::thumbs::EDGES
            )));
        }
        let row = self.find(caller, path, version).await?;
        let v = self.with_health_counts(row.clone(), HealthCounts::default());
        if !matches!(media(&row.path), Media::Image(_)) {
            return Ok((v, Thumb::None("not an image".into())));
        }
        let key = object_key(caller.owner, &row.hash, edge);
        let nodes = nodes_for(&self.cluster, &key);
        for node in &nodes {
            if let Ok(b) = self.cluster.get_object(node, &key).await {
                return Ok((v, Thumb::Jpeg(b)));
            }
        }
        let cfg = &self.thumbs;
        if row.size > cfg.max_source_bytes {
            return Ok((
                v,
                Thumb::None(format!(
                    "{} is over the {} thumbnails are made from",
                    mib(row.size),
                    mib(cfg.max_source_bytes)
                )),
            ));
        }
        let _slot = self
            .thumb_slots
            .acquire()
            .await
            .map_err(|_| FileError::Internal("the thumbnail slots are closed".into()))?;
        let chunks = self.meta.version_chunks(row.file_id, row.number).await?;
        let mut bytes = Vec::with_capacity(row.size as usize);
        let mut read = std::pin::pin!(self.read_chunks(chunks));
        while let Some(held) = read.try_next().await? {
            bytes.extend_from_slice(&held.data);
        }
        let max_pixels = cfg.max_pixels;
        let made = tokio::task::spawn_blocking(move || render::thumbnail(&bytes, edge, max_pixels))
            .await
            .map_err(|e| FileError::Internal(format!("the thumbnail task failed: {e}")))?;
        let jpeg = match made {
            Ok(j) => Bytes::from(j),
            Err(why) => return Ok((v, Thumb::None(why.to_string()))),
        };
        // Recorded before it is stored, so gc always knows of it.
        self.meta
            .record_thumbnail(caller.owner, &row.hash, edge)
            .await?;
        let cluster = self.cluster.clone();
        let stored = jpeg.clone();
        tokio::spawn(async move {
            for node in nodes {
                if let Err(e) = cluster.put_object(&node, &key, stored.clone()).await {
                    tracing::debug!(%key, node = %node.id, error = %e, "thumbnail not kept");
                }
            }
        });
        Ok((v, Thumb::Jpeg(jpeg)))
    }

    /// The caps thumbnails are made under.
    pub fn thumb_config(&self) -> &ThumbConfig {
        &self.thumbs
    }
}

/// `bytes` in MiB, for people ("64.0 MiB").
fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!("{mib:.1} MiB")
}
