//! The accept loop: every connection on the port, plain or TLS, served by
//! hyper with the limits a public server needs, so no client can exhaust
//! it by holding connections or streams open:
//!
//! - at most `max_connections` connections are served at once; further
//!   ones wait in the kernel's backlog;
//! - at most `max_per_address` of them come from one client address; one
//!   more from it is closed at once, so one host cannot take every slot;
//! - a connection's first bytes (a TLS handshake, then the HTTP/2
//!   preface or an HTTP/1 request head) must arrive within the header
//!   time-out, and a whole HTTP/1 request head too: a socket that never
//!   speaks gives its slot back;
//! - HTTP/2 connections take at most `http2_max_streams` concurrent calls,
//!   bounded header lists and send buffers, and are pinged: a peer that
//!   answers no ping within the idle time-out is dropped;
//! - over TLS, every answer says `Strict-Transport-Security`;
//! - on shutdown, in-flight requests get [`SHUTDOWN_GRACE`] to finish.

use crate::per_key::PerKey;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub http2_max_streams: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `Strict-Transport-Security` on every answer over TLS: a year.
const HSTS: &str = "max-age=31536000";

/// Largest request head (HTTP/1) or header list (HTTP/2) accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Bytes HTTP/2 buffers per stream ahead of the peer's flow control: a
/// stalled reader pins at most this much per stream, and downloads count
/// it in their budget.
const H2_SEND_BUFFER: usize = crate::budget::SEND_BUFFER;

/// Serves `router` on `listener` (with TLS when `tls` is set) until
/// `shutdown`, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_send_buf_size(H2_SEND_BUFFER)
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.idle_timeout / 2);
    let builder = Arc::new(builder);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerKey::new(limits.max_per_address);
    let proxies: Arc<[ipnet::IpNet]> = limits.trusted_proxies.clone().into();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
        };
        let (tcp, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(held) = per_address.enter(&[addr.ip()]) else {
            tracing::debug!(%addr, "too many connections from this address; closed");
            continue;
        };
        // Small responses must not wait for the peer's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let proxies = proxies.clone();
        let hsts = acceptor.is_some();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            let client = client_address(addr, req.headers(), &proxies);
            let secure = Secure(hsts || proxied_https(addr, req.headers(), &proxies));
            req.extensions_mut().insert(ConnectInfo(client));
            req.extensions_mut().insert(secure);
            let answer = router.clone().oneshot(req);
            async move {
                let mut resp = answer.await?;
                if hsts {
                    // Served over TLS: browsers keep to HTTPS from now on.
                    resp.headers_mut()
                        .entry(hyper::header::STRICT_TRANSPORT_SECURITY)
                        .or_insert(hyper::header::HeaderValue::from_static(HSTS));
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = (slot, held);
            let result = match acceptor {
                None => {
                    let io = FirstBytes::new(tcp, handshake);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned();
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let io = FirstBytes::new(stream, handshake);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // In-flight requests get a while to finish; a client that stalls its
    // download does not hold the shutdown up beyond it.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            secs = SHUTDOWN_GRACE.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

/// The client a request comes from, as every layer above sees it (login
/// throttling, share links, logs): the peer itself, unless the peer is a
/// trusted proxy; then the nearest address in `X-Forwarded-For` that is
/// not one (the header's left part is the client's own say, and only
/// what trusted proxies appended can be believed).
/// Whether a request came over TLS (to this server, or to a trusted proxy
/// that says so with `X-Forwarded-Proto: https`): HTTP Basic is taken only
/// then, unless the operator allows it over plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure(pub bool);

fn proxied_https(
    peer: std::net::SocketAddr,
    headers: &hyper::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> bool {
    trusted.iter().any(|n| n.contains(&peer.ip()))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn client_address(
    peer: std::net::SocketAddr,
    headers: &hyper::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return std::net::SocketAddr::new(ip, peer.port()),
            // Garbage where an address should be: believe nothing older.
            Err(_) => break,
        }
    }
    peer
}

/// A connection that must send its first bytes within a time-out: until
/// it has, a read that waits past the deadline fails with `TimedOut`, and
/// hyper closes the connection. (hyper's own HTTP/1 header time-out only
/// starts once it has bytes to tell HTTP/1 from HTTP/2.)
struct FirstBytes<T> {
    inner: T,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> FirstBytes<T> {
    fn new(inner: T, within: Duration) -> Self {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstBytes<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the header time-out",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytes<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.7".parse().unwrap(),
        );
        let proxy: std::net::SocketAddr = "10.0.0.1:5555".parse().unwrap();
        let stranger: std::net::SocketAddr = "198.51.100.1:5555".parse().unwrap();
        // Through two of our proxies: the client is the first address
        // they did not add themselves, not what the client claimed.
        assert_eq!(
            client_address(proxy, &h, &trusted).ip().to_string(),
            "203.0.113.9"
        );
        assert_eq!(client_address(stranger, &h, &trusted), stranger);
        assert_eq!(
            client_address(proxy, &hyper::HeaderMap::new(), &trusted),
            proxy
        );
        assert_eq!(client_address(proxy, &h, &[]), proxy);
        let mut bad = hyper::HeaderMap::new();
        bad.insert("x-forwarded-for", "nonsense".parse().unwrap());
        assert_eq!(client_address(proxy, &bad, &trusted), proxy);
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_one_that_speaks_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut silent = FirstBytes::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let err = tokio::io::AsyncReadExt::read(&mut silent, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut speaks = FirstBytes::new(server, Duration::from_millis(50));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"PRI")
            .await
            .unwrap();
        let n = tokio::io::AsyncReadExt::read(&mut speaks, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"PRI");
        // Past the deadline, a quiet connection that has spoken waits on.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = tokio::time::timeout(
            Duration::from_millis(50),
            tokio::io::AsyncReadExt::read(&mut speaks, &mut buf),
        )
        .await;
        assert!(more.is_err(), "no time-out once it has spoken");
    }
}
