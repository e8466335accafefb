//! A hand-framed grpc-web client over plain HTTP/1.1, sharing no code with
//! the server or tonic-web: a unary call, or a server stream read message
//! by message, as a browser would make them.

/// What a grpc-web call returned.
#[derive(Debug, Clone)]
pub struct WebReply {
    /// HTTP status.
    pub http: u16,
    /// `grpc-status`, from the headers or the trailer frame.
    pub code: i32,
    pub message: String,
    /// The first data frame's payload.
    pub data: Vec<u8>,
}

/// Connects and sends a grpc-web request for `path` with the encoded
/// message `body`, as a browser's fetch would; `close` asks the server to
/// close the connection after its answer.
async fn send(
    addr: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
    close: bool,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(body);
    let auth = authorization
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\naccept: application/grpc-web+proto\r\n{auth}\
         content-length: {}\r\n{connection}\r\n",
        framed.len()
    );
    s.write_all(head.as_bytes()).await.expect("send");
    s.write_all(&framed).await.expect("send");
    s
}

/// Calls `path` (e.g. `/FileStorage/ListFiles`) with the encoded message
/// `body`, sending `authorization` if given.
pub async fn call(addr: &str, path: &str, authorization: Option<&str>, body: &[u8]) -> WebReply {
    use tokio::io::AsyncReadExt;
    let mut s = send(addr, path, authorization, body, true).await;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        body = crate::server::dechunk(&body);
    }
    let http = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        lower.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .map(|v| v.trim().to_string())
        })
    };
    let mut code = header("grpc-status").and_then(|v| v.parse().ok());
    let mut message = header("grpc-message").unwrap_or_default();
    let mut data = Vec::new();
    let mut rest = &body[..];
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..(5 + len).min(rest.len())];
        if flag & 0x80 != 0 {
            let text = String::from_utf8_lossy(payload).to_ascii_lowercase();
            for l in text.lines() {
                if let Some(v) = l.strip_prefix("grpc-status:") {
                    code = v.trim().parse().ok();
                }
                if let Some(v) = l.strip_prefix("grpc-message:") {
                    message = v.trim().to_string();
                }
            }
        } else if data.is_empty() {
            data = payload.to_vec();
        }
        rest = &rest[(5 + len).min(rest.len())..];
    }
    WebReply {
        http,
        code: code.unwrap_or(-1),
        message,
        data,
    }
}

/// A server-streaming grpc-web call, read one message at a time.
pub struct WebStream {
    s: tokio::net::TcpStream,
    /// Bytes after the response head, still chunk-encoded.
    raw: Vec<u8>,
    head_done: bool,
    chunked: bool,
    /// Decoded body bytes not yet taken as frames.
    body: Vec<u8>,
}

impl WebStream {
    /// Opens `path` with the encoded request `body`.
    pub async fn open(addr: &str, path: &str, authorization: Option<&str>, body: &[u8]) -> Self {
        Self {
            s: send(addr, path, authorization, body, false).await,
            raw: Vec::new(),
            head_done: false,
            chunked: false,
            body: Vec::new(),
        }
    }

    /// The next message's payload; `Err` with the trailer's text once the
    /// stream ends.
    pub async fn next(&mut self) -> Result<Vec<u8>, String> {
        use tokio::io::AsyncReadExt;
        loop {
            self.decode();
            if self.body.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.body[1], self.body[2], self.body[3], self.body[4]])
                        as usize;
                if self.body.len() >= 5 + len {
                    let flag = self.body[0];
                    let payload = self.body[5..5 + len].to_vec();
                    self.body.drain(..5 + len);
                    if flag & 0x80 != 0 {
                        return Err(String::from_utf8_lossy(&payload).into_owned());
                    }
                    return Ok(payload);
                }
            }
            let mut buf = [0u8; 16 * 1024];
            let n = self.s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!(
                    "the connection closed: {}",
                    String::from_utf8_lossy(&self.raw)
                ));
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// Moves what has arrived complete from `raw` to `body`.
    fn decode(&mut self) {
        if !self.head_done {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            self.chunked = head.contains("transfer-encoding: chunked");
            self.raw.drain(..end + 4);
            self.head_done = true;
        }
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&self.raw[..eol]).trim(), 16)
                .unwrap_or(0);
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let chunk = self.raw[eol + 2..eol + 2 + size].to_vec();
            self.body.extend_from_slice(&chunk);
            self.raw.drain(..eol + 2 + size + 2);
            if size == 0 {
                return;
            }
        }
    }
}
