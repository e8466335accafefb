//! A fault-injecting TCP proxy on loopback: it forwards every connection
//! to one upstream address and, on command, delays what passes, or cuts
//! every connection and refuses new ones (a partition between a server
//! and a node, which signals to the node's process cannot make).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    None,
    /// Hold every read for this long before forwarding it.
    Delay(Duration),
    /// Close every open connection and every new one at once.
    Cut,
}

struct State {
    fault: Mutex<Fault>,
    /// Bumped on every cut: open connections watch it and close.
    cuts: watch::Sender<u64>,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            fault: Mutex::new(Fault::None),
            cuts: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, upstream, state.clone()));
        Ok(Proxy {
            addr,
            state,
            accept,
        })
    }

    /// `http://127.0.0.1:<port>`, to configure a client with.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` from now on (a cut also closes what is open).
    pub fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
        if fault == Fault::Cut {
            self.state.cuts.send_modify(|n| *n += 1);
        }
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.state.fault.lock().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.cuts.send_modify(|n| *n += 1);
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, state: Arc<State>) {
    while let Ok((client, _)) = listener.accept().await {
        if *state.fault.lock().unwrap() == Fault::Cut {
            continue; // dropped: the caller sees the connection close
        }
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (ur, uw) = up.into_split();
            let a = pump(cr, uw, state.clone());
            let b = pump(ur, cw, state);
            // Either direction ending (or a cut) ends the connection.
            tokio::select! {
                _ = a => {}
                _ = b => {}
            }
        });
    }
}

/// Copies `from` to `to`, applying the fault in force to each read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
) {
    let mut cuts = state.cuts.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cuts.changed() => return,
        };
        let fault = *state.fault.lock().unwrap();
        match fault {
            Fault::Cut => return,
            Fault::Delay(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = cuts.changed() => return,
                }
            }
            Fault::None => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        s.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await?;
        Ok(b.to_vec())
    }

    #[tokio::test]
    async fn forwards_then_cuts_then_forwards_again() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let addr = proxy.addr;
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");
        proxy.set(Fault::Cut);
        assert!(
            round_trip(&mut s).await.is_err(),
            "an open connection is cut"
        );
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        assert!(
            round_trip(&mut fresh).await.is_err(),
            "a new one is refused"
        );
        proxy.set(Fault::None);
        let mut healed = TcpStream::connect(addr).await.unwrap();
        assert_eq!(round_trip(&mut healed).await.unwrap(), b"ping");
    }
}
