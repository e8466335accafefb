//! A hand-framed grpc-web client over plain HTTP/1.1, sharing no code with
//! the server or tonic-web: one unary call, as a browser would make it.

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

/// Calls `path` (e.g. `/FileStorage/ListFiles`) with the encoded message
/// `body`, sending `authorization` if given.
pub async fn call(addr: &str, path: &str, authorization: Option<&str>, body: &[u8]) -> WebReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(body);
    let auth = authorization
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\naccept: application/grpc-web+proto\r\n{auth}\
         content-length: {}\r\nConnection: close\r\n\r\n",
        framed.len()
    );
    s.write_all(head.as_bytes()).await.expect("send");
    s.write_all(&framed).await.expect("send");
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
