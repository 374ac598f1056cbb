//! Length-prefixed frames: a `u32` big-endian body length, then the body.
//!
//! Big-endian because it is the network byte order every packet dump tool shows readably;
//! the cost of a byte swap per frame is nothing next to a syscall.

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes taken by the length prefix in front of every frame.
pub const FRAME_HEADER_BYTES: usize = 4;
/// A frame body's buffer grows by at most this much per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The prefix announced a body larger than the limit. Refused before allocating, so a
    /// peer cannot make us reserve memory by lying about a length.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced body length.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// The connection ended inside a frame (after at least one byte of it).
    #[error("connection closed inside a frame")]
    Truncated,
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame whose body is at most `max_bytes`. `Ok(None)` is a clean end of stream
/// at a frame boundary (the peer closed between frames).
///
/// Not cancel-safe: callers drop the connection if they abandon a read half-way.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_bytes: u32,
) -> Result<Option<Bytes>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    // Read the first byte separately so that EOF before any byte (a clean close) can be told
    // apart from EOF inside the header (a truncated frame).
    if r.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    read_exact_or_truncated(r, &mut header[1..]).await?;
    let len = u32::from_be_bytes(header);
    if len > max_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_bytes,
        });
    }
    // Grow the buffer as bytes arrive rather than trusting the prefix: a peer that announces
    // a large frame and sends little makes us hold little.
    let len = len as usize;
    let mut body = BytesMut::with_capacity(len.min(READ_CHUNK_BYTES));
    let mut limited = (&mut *r).take(len as u64);
    while body.len() < len {
        if body.len() == body.capacity() {
            body.reserve((len - body.len()).min(READ_CHUNK_BYTES));
        }
        if limited.read_buf(&mut body).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(body.freeze()))
}

async fn read_exact_or_truncated<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Writes one frame (without flushing: callers batch frames and flush once).
///
/// The caller guarantees `body.len() <= u32::MAX`; bodies are checked against the (smaller)
/// configured frame limit before they are queued.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame body over u32::MAX")
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 5], "length prefix is big-endian");
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r, 16).await.unwrap().unwrap(),
            &b"hello"[..]
        );
        assert_eq!(read_frame(&mut r, 16).await.unwrap().unwrap(), &b""[..]);
        assert!(read_frame(&mut r, 16).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_reading_body() {
        let bytes = [0xff, 0xff, 0xff, 0xff];
        let mut r = &bytes[..];
        match read_frame(&mut r, 1024).await {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, u32::MAX);
                assert_eq!(max, 1024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn truncated_header_and_body_are_errors() {
        let mut r = &[0u8, 0][..];
        assert!(matches!(
            read_frame(&mut r, 16).await,
            Err(FrameError::Truncated)
        ));
        let mut r = &[0u8, 0, 0, 4, 1, 2][..];
        assert!(matches!(
            read_frame(&mut r, 16).await,
            Err(FrameError::Truncated)
        ));
        // A large announced length with little behind it is only as costly as what arrived.
        let mut lying = (16u32 << 20).to_be_bytes().to_vec();
        lying.extend_from_slice(&[7; 10]);
        let mut r = &lying[..];
        assert!(matches!(
            read_frame(&mut r, 16 << 20).await,
            Err(FrameError::Truncated)
        ));
    }

    #[tokio::test]
    async fn a_frame_larger_than_one_read_chunk_arrives_whole() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        write_frame(&mut buf, &body).await.unwrap();
        let mut r = &buf[..];
        let got = read_frame(&mut r, 1 << 20).await.unwrap().unwrap();
        assert_eq!(&got[..], &body[..]);
    }
}
