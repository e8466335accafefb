//! The workload: concurrent clients, each drawing operations from its own
//! seeded generator and sending each to either server, recording what it
//! invoked and how it ended.

use super::history::{Content, History, Kind, Op, Outcome, Seen};
use bytes::Bytes;
use coffer_proto::chunking::StreamContentHasher;
use coffer_proto::pb::coffer_share_client::CofferShareClient;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{self, MetadataResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The paths clients contend on: few, in three folders.
pub const PATHS: usize = 12;
/// Longest any one operation may take before its outcome is unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn path(i: usize) -> String {
    format!("{}/f{i}.bin", ["a", "b", "c"][i % 3])
}

type Client = FileStorageClient<Channel>;

/// One client of the workload.
struct Worker {
    id: usize,
    rng: StdRng,
    servers: Vec<Client>,
    /// The same servers' channels and addresses, for the other services
    /// and plain HTTP.
    channels: Vec<Channel>,
    addrs: Vec<String>,
    history: Arc<History>,
    next_op: Arc<AtomicU64>,
    /// The latest version this client saw of each path.
    known: HashMap<String, u64>,
    /// Content this client wrote, for uploads of the same bytes elsewhere.
    written: Vec<Content>,
    cursor: String,
    /// Upload sessions given up whose abort failed too: aborted again
    /// before each operation, as a client that remembers them does.
    abandoned: Vec<String>,
}

/// A lazily connecting channel to `addr`: a server that is down fails the
/// calls made while it is, not the client.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    channel_for(addr, OP_TIMEOUT)
}

/// [`channel`] with calls allowed `timeout` (a worker pass run to its end).
pub fn channel_for(addr: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(addr.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .connect_lazy())
}

/// Runs `clients` clients against `addrs` until `until`.
pub async fn run(
    seed: u64,
    clients: usize,
    addrs: &[String],
    until: Instant,
    history: Arc<History>,
) -> anyhow::Result<()> {
    let next_op = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for id in 0..clients {
        let channels = addrs
            .iter()
            .map(|a| channel(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let servers = channels
            .iter()
            .map(|c| {
                FileStorageClient::new(c.clone())
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20)
            })
            .collect();
        let mut w = Worker {
            id,
            rng: StdRng::seed_from_u64(seed ^ (0x5eed_0000 + id as u64)),
            servers,
            channels,
            addrs: addrs.to_vec(),
            history: history.clone(),
            next_op: next_op.clone(),
            known: HashMap::new(),
            written: Vec::new(),
            cursor: String::new(),
            abandoned: Vec::new(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                w.step().await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// A content size: mostly small files, some of a few chunks, few large.
fn size(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..100) {
        0..60 => rng.random_range(1..64 * 1024),
        60..85 => rng.random_range(64 * 1024..1024 * 1024),
        85..97 => rng.random_range(1024 * 1024..3 * 1024 * 1024),
        _ => rng.random_range(4 * 1024 * 1024..9 * 1024 * 1024),
    }
}

/// Whether a refusal with `code` says for sure that nothing changed.
fn refused(code: Code) -> bool {
    matches!(
        code,
        Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::PermissionDenied
            | Code::Unauthenticated
    )
}

fn outcome_of(s: &Status) -> Outcome {
    if refused(s.code()) {
        Outcome::Failed {
            code: format!("{:?}", s.code()),
            message: s.message().to_string(),
        }
    } else {
        Outcome::Unknown {
            message: format!("{:?}: {}", s.code(), s.message()),
        }
    }
}

fn seen_of(m: &MetadataResponse, how: &'static str) -> Seen {
    Seen {
        path: m.file_name.clone(),
        version: m.version_number,
        size: m.size,
        hash: m.content_hash.clone(),
        deleted: m.deleted,
        seq: None,
        how,
    }
}

/// A request carrying `base` as the conditional write's header.
fn with_base<T>(msg: T, base: Option<u64>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(b) = base {
        req.metadata_mut()
            .insert("x-coffer-base-version", b.to_string().parse().unwrap());
    }
    req
}

impl Worker {
    /// Draws, runs and records one operation.
    async fn step(&mut self) {
        self.abort_abandoned().await;
        let server = self.rng.random_range(0..self.servers.len());
        let kind = self.draw();
        let id = self.next_op.fetch_add(1, Ordering::Relaxed);
        let invoked_ms = self.history.now_ms();
        let outcome = match tokio::time::timeout(OP_TIMEOUT, self.perform(server, &kind)).await {
            Ok(Ok(seen)) => Outcome::Ok { seen },
            Ok(Err(s)) => outcome_of(&s),
            Err(_) => Outcome::Unknown {
                message: "timed out".into(),
            },
        };
        if let Outcome::Ok { seen } = &outcome {
            for s in seen
                .iter()
                .filter(|s| s.how == "ack" || s.how == "metadata")
            {
                self.known.insert(s.path.clone(), s.version);
            }
        }
        self.history.record(Op {
            id,
            client: self.id,
            server,
            kind,
            invoked_ms,
            completed_ms: self.history.now_ms(),
            outcome,
        });
    }

    /// Aborts the sessions given up earlier, keeping those no server took.
    async fn abort_abandoned(&mut self) {
        let mut left = Vec::new();
        for (i, upload_id) in std::mem::take(&mut self.abandoned).into_iter().enumerate() {
            let mut c = self.servers[i % self.servers.len()].clone();
            let abort = c.abort_upload(pb::AbortUploadRequest {
                upload_id: upload_id.clone(),
            });
            match tokio::time::timeout(Duration::from_secs(5), abort).await {
                Ok(Ok(_)) => {}
                Ok(Err(s)) if s.code() == Code::NotFound => {}
                _ => left.push(upload_id),
            }
        }
        self.abandoned = left;
    }

    fn any_path(&mut self) -> String {
        path(self.rng.random_range(0..PATHS))
    }

    /// The base of a conditional write (sometimes stale on purpose), or
    /// none for an unconditional one.
    fn base(&mut self, path: &str) -> Option<u64> {
        if self.rng.random_bool(0.3) {
            let known = self.known.get(path).copied().unwrap_or(0);
            Some(if self.rng.random_bool(0.2) {
                known.saturating_sub(1)
            } else {
                known
            })
        } else {
            None
        }
    }

    fn draw(&mut self) -> Kind {
        let path = self.any_path();
        match self.rng.random_range(0..100) {
            0..30 => {
                let seed = self.rng.random();
                let content = Content::new(seed, size(&mut self.rng));
                self.written.push(content.clone());
                let base = self.base(&path);
                Kind::Upload {
                    path,
                    content,
                    base,
                    session: false,
                }
            }
            30..40 => {
                let content = Content::new(self.rng.random(), size(&mut self.rng));
                self.written.push(content.clone());
                let base = self.base(&path);
                Kind::Upload {
                    path,
                    content,
                    base,
                    session: true,
                }
            }
            // The same bytes again, elsewhere: dedup.
            40..48 if !self.written.is_empty() => {
                let i = self.rng.random_range(0..self.written.len());
                Kind::Upload {
                    path,
                    content: self.written[i].clone(),
                    base: None,
                    session: self.rng.random_bool(0.5),
                }
            }
            48..54 => {
                let to = self.any_path();
                let base = self.base(&path);
                Kind::Move {
                    from: path,
                    to,
                    base,
                }
            }
            54..61 => {
                let base = self.base(&path);
                Kind::Delete { path, base }
            }
            61..67 => {
                let latest = self.known.get(&path).copied().unwrap_or(1).max(1);
                Kind::Restore {
                    version: self.rng.random_range(1..=latest),
                    path,
                }
            }
            67..82 => Kind::Read { path },
            82..87 => Kind::List {
                prefix: ["a/", "b/", "c/", ""][self.rng.random_range(0..4)].to_string(),
            },
            87..90 => Kind::Share { path },
            _ => Kind::Changes {
                cursor: self.cursor.clone(),
            },
        }
    }

    async fn perform(&mut self, server: usize, kind: &Kind) -> Result<Vec<Seen>, Status> {
        let mut c = self.servers[server].clone();
        match kind {
            Kind::Upload {
                path,
                content,
                base,
                session: false,
            } => {
                let data = content.bytes();
                let blocks: Vec<pb::FileRequest> = data
                    .chunks(crate::data::MESSAGE)
                    .enumerate()
                    .map(|(i, b)| pb::FileRequest {
                        file_data: Bytes::copy_from_slice(b),
                        file_name: if i == 0 { path.clone() } else { String::new() },
                    })
                    .collect();
                let blocks = if blocks.is_empty() {
                    vec![pb::FileRequest {
                        file_data: Bytes::new(),
                        file_name: path.clone(),
                    }]
                } else {
                    blocks
                };
                let r = c
                    .upload_file(with_base(tokio_stream::iter(blocks), *base))
                    .await?
                    .into_inner();
                Ok(vec![Seen {
                    path: path.clone(),
                    version: r.version,
                    size: r.size,
                    hash: r.content_hash,
                    deleted: false,
                    seq: None,
                    how: "ack",
                }])
            }
            Kind::Upload {
                path,
                content,
                base,
                session: true,
            } => {
                let data = content.bytes();
                let (plan, chunks) = crate::data::session_plan(path, &data);
                let start = c.start_upload(plan).await?.into_inner();
                let send = |c: &mut Client, missing: Vec<String>, limit: usize| {
                    let mut c = c.clone();
                    let upload_id = start.upload_id.clone();
                    let chunks = &chunks;
                    async move {
                        for id in missing.into_iter().take(limit) {
                            let data = chunks.iter().find(|(i, _)| *i == id).unwrap().1.clone();
                            c.put_chunk(pb::PutChunkRequest {
                                upload_id: upload_id.clone(),
                                chunk_id: id,
                                data,
                            })
                            .await?;
                        }
                        Ok::<(), Status>(())
                    }
                };
                let finish = async {
                    // Half the chunks, then resume as a client that restarted.
                    let half = start.missing_chunks.len().div_ceil(2);
                    send(&mut c, start.missing_chunks.clone(), half).await?;
                    let resumed = c
                        .start_upload(pb::StartUploadRequest {
                            upload_id: start.upload_id.clone(),
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    send(&mut c, resumed.missing_chunks, usize::MAX).await?;
                    c.clone()
                        .finish_upload(pb::FinishUploadRequest {
                            upload_id: start.upload_id.clone(),
                            base_version: *base,
                        })
                        .await
                };
                let m = match finish.await {
                    Ok(m) => m.into_inner(),
                    Err(s) => {
                        // Give the session up, as a client that stops
                        // trying does, so it stops counting against the
                        // open uploads; if no server takes the abort now,
                        // it is tried again later.
                        self.abandoned.push(start.upload_id.clone());
                        self.abort_abandoned().await;
                        return Err(s);
                    }
                };
                Ok(vec![seen_of(&m, "ack")])
            }
            Kind::Move { from, to, base } => {
                let m = c
                    .move_file(pb::MoveFileRequest {
                        from_name: from.clone(),
                        to_name: to.clone(),
                        base_version: *base,
                    })
                    .await?
                    .into_inner();
                Ok(vec![seen_of(&m, "ack")])
            }
            Kind::Delete { path, base } => {
                let r = c
                    .delete_file(pb::DeleteFileRequest {
                        file_name: path.clone(),
                        base_version: *base,
                    })
                    .await?
                    .into_inner();
                Ok(vec![Seen {
                    path: path.clone(),
                    version: r.latest_version,
                    size: 0,
                    hash: String::new(),
                    deleted: true,
                    seq: None,
                    how: "delete",
                }])
            }
            Kind::Restore { path, version } => {
                let m = c
                    .restore_version(pb::RestoreVersionRequest {
                        file_name: path.clone(),
                        version: *version,
                    })
                    .await?
                    .into_inner();
                Ok(vec![seen_of(&m, "ack")])
            }
            Kind::Read { path } => {
                let m = c
                    .get_metadata(pb::FileMetadataRequest {
                        file_name: path.clone(),
                        version: 0,
                    })
                    .await?
                    .into_inner();
                let (size, hash) = read_version(&mut c, path, m.version_number).await?;
                let mut bytes = seen_of(&m, "bytes");
                (bytes.size, bytes.hash) = (size, hash);
                Ok(vec![seen_of(&m, "metadata"), bytes])
            }
            Kind::List { prefix } => Ok(list_all(&mut c, prefix)
                .await?
                .iter()
                .map(|m| seen_of(m, "listing"))
                .collect()),
            Kind::Share { path } => {
                let link = CofferShareClient::new(self.channels[server].clone())
                    .create_share_link(pb::CreateShareLinkRequest {
                        file_name: path.clone(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let (status, body) = http_get(&self.addrs[server], &link.url)
                    .await
                    .map_err(|e| Status::unavailable(format!("share link: {e}")))?;
                match status {
                    200 => Ok(vec![Seen {
                        path: path.clone(),
                        version: link.version,
                        size: body.len() as u64,
                        hash: coffer_proto::chunking::content_hash_of(&body),
                        deleted: false,
                        seq: None,
                        how: "share",
                    }]),
                    404 | 410 => Err(Status::not_found(format!("share link answered {status}"))),
                    _ => Err(Status::unavailable(format!("share link answered {status}"))),
                }
            }
            Kind::SyncEdit { .. } => unreachable!("the sync pair's editor makes these"),
            Kind::Changes { cursor } => {
                let r = c
                    .list_changes(pb::ListChangesRequest {
                        cursor: cursor.clone(),
                        page_size: 100,
                        latest: false,
                    })
                    .await?
                    .into_inner();
                self.cursor = r.cursor;
                Ok(r.changes.iter().map(seen_of_change).collect())
            }
        }
    }
}

pub fn seen_of_change(ch: &pb::Change) -> Seen {
    Seen {
        path: ch.file_name.clone(),
        version: ch.version,
        size: if ch.deleted { 0 } else { ch.size },
        hash: if ch.deleted {
            String::new()
        } else {
            ch.content_hash.clone()
        },
        deleted: ch.deleted,
        seq: Some(ch.seq),
        how: "feed",
    }
}

/// Every live file under `prefix`, page after page.
pub async fn list_all(c: &mut Client, prefix: &str) -> Result<Vec<MetadataResponse>, Status> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .list_files(pb::ListFilesRequest {
                prefix: prefix.to_string(),
                page_size: 1000,
                page_token: token,
                delimiter: String::new(),
                ..Default::default()
            })
            .await?
            .into_inner();
        out.extend(r.files);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        token = r.next_page_token;
    }
}

/// Every version of `path`, newest first.
pub async fn versions_of(c: &mut Client, path: &str) -> Result<Vec<MetadataResponse>, Status> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .list_versions(pb::ListVersionsRequest {
                file_name: path.to_string(),
                page_size: 1000,
                page_token: token,
            })
            .await?
            .into_inner();
        out.extend(r.versions);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        token = r.next_page_token;
    }
}

/// A plain HTTP GET of `path` from the server at `addr` (`http://…`):
/// its status and body.
async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = &raw[split + 4..];
    // A body cut short (the server failed after its head) is an error, as
    // it is to any HTTP client, not a short file.
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk_whole(body).ok_or_else(|| std::io::Error::other("chunked body cut short"))?
    } else {
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if length.is_some_and(|n| n != body.len()) {
            return Err(std::io::Error::other(
                "body shorter than its content-length",
            ));
        }
        body.to_vec()
    };
    Ok((status, body))
}

/// A chunked body decoded, or `None` unless it ends with its last
/// (empty) chunk.
fn dechunk_whole(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let data = b.get(eol + 2..eol + 2 + size)?;
        out.extend_from_slice(data);
        b = b.get(eol + 2 + size + 2..)?;
    }
}

/// Downloads version `version` of `path`; returns its length and the
/// content hash of the bytes that came.
pub async fn read_version(
    c: &mut Client,
    path: &str,
    version: u64,
) -> Result<(u64, String), Status> {
    let mut stream = c
        .download_file(pb::FileDownloadRequest {
            file_name: path.to_string(),
            version,
        })
        .await?
        .into_inner();
    let mut h = StreamContentHasher::new();
    let mut n = 0u64;
    while let Some(msg) = stream.message().await? {
        n += msg.file_data.len() as u64;
        h.update(&msg.file_data);
    }
    Ok((n, h.finish()))
}

#[cfg(test)]
mod tests {
    use super::dechunk_whole;

    #[test]
    fn a_chunked_body_counts_only_when_it_ends() {
        assert_eq!(
            dechunk_whole(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk_whole(b"3\r\nabc\r\n"), None, "no last chunk");
        assert_eq!(dechunk_whole(b"5\r\nab"), None, "a chunk cut short");
        assert_eq!(dechunk_whole(b""), None, "nothing at all");
    }
}
