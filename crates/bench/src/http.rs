//! A plain HTTP/1.1 `GET` of a member's HTTP endpoints (`/metrics`, `/health`), as `curl`
//! sends it: one fresh connection, `Connection: close`, the whole answer read (chunked bodies
//! joined). For tools that watch a cluster (`synod top`, `cargo xtask
//! bench-observe-overhead`); plain `http://` endpoints only.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An answer: its status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked, decoded lossily as UTF-8.
    pub body: String,
}

/// `GET path` from `endpoint` (`http://host:port` or `host:port`): connecting, and each read,
/// within `timeout`; at most `bytes_max` of the answer read.
pub fn get(
    endpoint: &str,
    path: &str,
    timeout: Duration,
    bytes_max: u64,
) -> std::io::Result<HttpAnswer> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to nothing")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(bytes_max).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpAnswer { status, body })
}

/// Joins a chunked body's chunks (a malformed size ends it).
pub fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_and_a_bad_size_ends_the_body() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("5\r\nhello\r\nzz\r\nmore"), "hello");
    }
}
