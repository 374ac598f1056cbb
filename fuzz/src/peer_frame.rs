//! Everything a peer's bytes go through: the handshake, the frame layer, the transport's
//! codec for `paxos::multi::Message` and the node's envelope (`node::peer::PeerMessage`).
//!
//! Input: a mode byte, then that mode's bytes.
//! - 0: `transport::codec::decode`; 1: `node::peer::decode`. Property: whatever decodes
//!   re-encodes to bytes that decode to an equal value.
//! - 2: a byte stream read with `transport::frame::read_frame` (u16 frame limit, then a read
//!   chunk size, then the stream), each frame body then decoded as a `PeerMessage`. Property:
//!   each frame read is exactly the bytes `write_frame` would write for its body, the reader
//!   consumed no byte beyond it, and every error is the one the remaining bytes call for.
//! - 3: the handshake's `Hello::decode` and `Reply::decode`. Property: a decoded handshake
//!   re-encodes to exactly the input (both are fixed layouts with no slack).

use crate::{Cursor, Seed, Writer};
use node::peer::PeerMessage;
use paxos::multi::Message;
use paxos::Slot;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};
use transport::frame::{read_frame, write_frame, FrameError, FRAME_HEADER_BYTES};
use transport::handshake::{Hello, Reply};

/// Mode bytes, also used by the seed generator.
pub const MODE_MESSAGE: u8 = 0;
/// See the module docs.
pub const MODE_PEER: u8 = 1;
/// See the module docs.
pub const MODE_FRAMES: u8 = 2;
/// See the module docs.
pub const MODE_HANDSHAKE: u8 = 3;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    match c.u8() % 4 {
        MODE_MESSAGE => check_message(c.rest()),
        MODE_PEER => check_peer(c.rest()),
        MODE_FRAMES => {
            let max = u32::from(c.u16());
            let chunk = usize::from(c.u8());
            check_frames(c.rest(), max, chunk);
        }
        _ => check_handshake(c.rest()),
    }
}

fn check_message(bytes: &[u8]) {
    if let Ok(m) = transport::codec::decode(bytes) {
        let again = transport::codec::encode(&m).expect("a decoded message encodes");
        assert_eq!(
            transport::codec::decode(&again).as_ref(),
            Ok(&m),
            "re-encoded message decodes differently"
        );
    }
}

fn check_peer(bytes: &[u8]) {
    if let Ok(m) = node::peer::decode(bytes) {
        let again = node::peer::encode(&m).expect("a decoded peer message encodes");
        assert_eq!(
            node::peer::decode(&again).as_ref(),
            Ok(&m),
            "re-encoded peer message decodes differently"
        );
    }
}

/// A reader that hands out at most `chunk` bytes per read (0: all that fits), so that the
/// frame layer's loops over short reads run as they do on a socket.
struct ChunkedReader<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let left = self.data.len() - self.pos;
        let mut n = left.min(buf.remaining());
        if self.chunk > 0 {
            n = n.min(self.chunk);
        }
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Drives a future whose I/O never waits (an in-memory reader) to completion. A `Pending`
/// would mean the frame layer waits on something other than its reader: a harness bug.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory read returned Pending"),
    }
}

fn check_frames(stream: &[u8], max: u32, chunk: usize) {
    let mut reader = ChunkedReader {
        data: stream,
        pos: 0,
        chunk,
    };
    // Where the next frame starts, by the property's own account.
    let mut at = 0usize;
    loop {
        let result = block_on(read_frame(&mut reader, max));
        match result {
            Ok(Some(body)) => {
                assert!(body.len() as u64 <= u64::from(max), "frame over the limit");
                let mut framed = Vec::new();
                block_on(write_frame(&mut framed, &body)).expect("writing to a Vec");
                assert_eq!(
                    stream.get(at..at + framed.len()),
                    Some(&framed[..]),
                    "a frame read is not the bytes its body frames to"
                );
                at += framed.len();
                assert_eq!(reader.pos, at, "read past the end of a frame");
                check_peer(&body);
            }
            Ok(None) => {
                assert_eq!(at, stream.len(), "clean end of stream inside a frame");
                return;
            }
            Err(FrameError::TooLarge { len, max: limit }) => {
                assert_eq!(limit, max);
                assert!(len > max, "refused a frame within the limit");
                let header = stream
                    .get(at..at + FRAME_HEADER_BYTES)
                    .expect("a length was read, so its four bytes were there");
                assert_eq!(
                    u32::from_be_bytes([header[0], header[1], header[2], header[3]]),
                    len
                );
                return;
            }
            Err(FrameError::Truncated) => {
                let left = stream.len() - at;
                assert!(left > 0, "truncation reported at a frame boundary");
                if left >= FRAME_HEADER_BYTES {
                    let h = &stream[at..at + FRAME_HEADER_BYTES];
                    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                    assert!(
                        left < FRAME_HEADER_BYTES + len,
                        "truncation reported for a whole frame"
                    );
                }
                return;
            }
            Err(FrameError::Io(e)) => panic!("an in-memory read failed: {e}"),
        }
    }
}

fn check_handshake(bytes: &[u8]) {
    if let Ok(hello) = Hello::decode(bytes) {
        assert_eq!(
            &hello.encode()[..],
            bytes,
            "Hello does not re-encode exactly"
        );
    }
    if let Ok(reply) = Reply::decode(bytes) {
        assert_eq!(
            &reply.encode()[..],
            bytes,
            "Reply does not re-encode exactly"
        );
    }
}

/// One message of every kind, for the seeds.
pub fn sample_messages() -> Vec<Message> {
    transport::codec::samples()
}

/// One envelope of every kind, for the seeds.
pub fn sample_peer_messages() -> Vec<PeerMessage> {
    node::peer::samples()
}

/// Valid encodings of every mode.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for (i, m) in sample_messages().iter().enumerate() {
        let mut w = Writer::default();
        w.u8(MODE_MESSAGE)
            .bytes(&transport::codec::encode(m).expect("encodes"));
        out.push((format!("message-{i:02}"), w.0));
    }
    for (i, m) in sample_peer_messages().iter().enumerate() {
        let mut w = Writer::default();
        w.u8(MODE_PEER)
            .bytes(&node::peer::encode(m).expect("encodes"));
        out.push((format!("peer-{i:02}"), w.0));
    }
    // A stream of three frames, read whole and in 3-byte pieces.
    let mut stream = Vec::new();
    for m in [
        PeerMessage::Paxos(sample_messages()[3].clone()),
        PeerMessage::Probe,
        PeerMessage::SnapshotAsk {
            through: Slot(5),
            offset: 0,
        },
    ] {
        let body = node::peer::encode(&m).expect("encodes");
        block_on(write_frame(&mut stream, &body)).expect("writing to a Vec");
    }
    for (name, chunk) in [("frames-whole", 0u8), ("frames-chunked", 3)] {
        let mut w = Writer::default();
        w.u8(MODE_FRAMES).u16(4096).u8(chunk).bytes(&stream);
        out.push((name.into(), w.0));
    }
    let hello = Hello {
        version: transport::handshake::PROTOCOL_VERSION,
        cluster_id: 0x5eed,
        from: 1,
        to: 2,
    };
    let mut w = Writer::default();
    w.u8(MODE_HANDSHAKE).bytes(&hello.encode());
    out.push(("hello".into(), w.0));
    let welcome = Reply::Welcome {
        version: transport::handshake::PROTOCOL_VERSION,
        cluster_id: 0x5eed,
        member_id: 2,
    };
    let mut w = Writer::default();
    w.u8(MODE_HANDSHAKE).bytes(&welcome.encode());
    out.push(("welcome".into(), w.0));
    let refused = transport::handshake::judge(&hello, 0xbad, 2, |_| true);
    let mut w = Writer::default();
    w.u8(MODE_HANDSHAKE).bytes(&refused.encode());
    out.push(("refused".into(), w.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_encodings() {
        for (name, data) in seeds() {
            let body = &data[1..];
            let ok = match data[0] {
                MODE_MESSAGE => transport::codec::decode(body).is_ok(),
                MODE_PEER => node::peer::decode(body).is_ok(),
                MODE_FRAMES => {
                    let mut r = ChunkedReader {
                        data: &data[4..],
                        pos: 0,
                        chunk: usize::from(data[3]),
                    };
                    let mut frames = 0;
                    while let Some(body) = block_on(read_frame(&mut r, 4096)).expect("reads") {
                        node::peer::decode(&body).expect("a peer message");
                        frames += 1;
                    }
                    frames == 3
                }
                _ => Hello::decode(body).is_ok() || Reply::decode(body).is_ok(),
            };
            assert!(ok, "seed {name} is not a valid encoding");
        }
    }
}
