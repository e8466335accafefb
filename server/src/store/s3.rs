//! A storage node on any S3-compatible server, through aws-sdk-s3.
//!
//! Path-style addressing, a custom endpoint and region, static credentials:
//! what MinIO, Garage, SeaweedFS, Ceph RGW and AWS S3 all accept. This is
//! the only module that talks S3.

use super::{BlobStore, ObjectInfo, StoreError};
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedHttpClient,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use std::time::Duration;

/// How to reach one S3 node.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Node name for logs; also its id in placement.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Longest a single attempt of a request may take.
    pub timeout: Duration,
}

/// The HTTP client for S3 nodes: the SDK's default one (hyper, rustls,
/// proxy settings from the environment), except that rustls runs on
/// *ring*, the provider the server's own TLS uses. The SDK's default
/// provider is aws-lc, a C library whose build (cmake) cost every first
/// build of the server about a minute on two cores, for nothing here.
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// An S3-backed [`BlobStore`].
#[derive(Debug, Clone)]
pub struct S3Store {
    name: String,
    bucket: String,
    region: String,
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(cfg: &S3Config) -> Self {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(https_client())
            .endpoint_url(&cfg.endpoint)
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(
                &cfg.access_key,
                &cfg.secret_key,
                None,
                None,
                "coffer",
            ))
            .force_path_style(true)
            // Chunks are verified end to end with BLAKE3; skip the SDK's
            // extra CRCs, which not every S3 server understands.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3).min(cfg.timeout))
                    .operation_attempt_timeout(cfg.timeout)
                    .build(),
            )
            // The cluster fails over to other replicas; one quick retry here
            // rides out a dropped connection without stalling on a dead node.
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .build();
        Self {
            name: cfg.name.clone(),
            bucket: cfg.bucket.clone(),
            region: cfg.region.clone(),
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    /// The body of object `key`, as it arrives.
    async fn body_of(&self, key: &str) -> Result<ByteStream, StoreError> {
        Ok(self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.classify(key, e))?
            .body)
    }

    fn classify<E>(&self, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let store = self.name.clone();
        let status = err.raw_response().map(|r| r.status().as_u16());
        match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StoreError::Unavailable {
                store,
                source: Box::new(err),
            },
            SdkError::ServiceError(se)
                if status == Some(404)
                    || matches!(
                        se.err().code(),
                        Some("NoSuchKey" | "NotFound" | "NoSuchBucket")
                    ) =>
            {
                StoreError::NotFound {
                    store,
                    key: key.to_string(),
                }
            }
            _ if status.is_some_and(|s| s >= 500 || s == 429) => StoreError::Unavailable {
                store,
                source: Box::new(err),
            },
            _ => StoreError::Other {
                store,
                source: Box::new(err),
            },
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ensure_ready(&self) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) => match self.classify(&self.bucket, e) {
                StoreError::NotFound { .. } => {}
                other => return Err(other),
            },
        }
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(self.classify(&self.bucket, e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let len = data.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len)
            .body(ByteStream::from(data))
            // Every chunk carries its own BLAKE3 id, checked on every read
            // and by scrub; a SigV4 SHA-256 of the body would hash each
            // replica twice more (here and on the node) for nothing.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify(key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let body =
            self.body_of(key)
                .await?
                .collect()
                .await
                .map_err(|e| StoreError::Unavailable {
                    store: self.name.clone(),
                    source: Box::new(e),
                })?;
        Ok(body.into_bytes())
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        let want = range.end.saturating_sub(range.start);
        if want == 0 {
            // HTTP has no empty range; the object must still exist.
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.classify(key, e))?;
            return Ok(Bytes::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| self.classify(key, e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable {
                store: self.name.clone(),
                source: Box::new(e),
            })?
            .into_bytes();
        if data.len() as u64 != want {
            return Err(super::short_object(
                &self.name,
                key,
                &range,
                data.len() as u64,
            ));
        }
        Ok(data)
    }

    async fn get_into(
        &self,
        key: &str,
        out: &mut (dyn super::Sink + Send),
    ) -> Result<u64, StoreError> {
        let mut body = self.body_of(key).await?;
        let mut n = 0u64;
        loop {
            let piece = body.try_next().await.map_err(|e| StoreError::Unavailable {
                store: self.name.clone(),
                source: Box::new(e),
            })?;
            let Some(piece) = piece else { return Ok(n) };
            out.take(&piece).map_err(|e| StoreError::Other {
                store: self.name.clone(),
                source: Box::new(e),
            })?;
            n += piece.len() as u64;
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(prefix, e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        Ok(out)
    }
}
