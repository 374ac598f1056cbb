//! Tolerance for clients that send a whole URL as the HTTP/2 `:authority`.
//!
//! etcdctl 3.4's `endpoint status --endpoints=http://host:port` dials the raw URL, and grpc-go
//! then sends `:authority: http://host:port`. That is not an authority (RFC 7540 §8.1.2.3,
//! RFC 3986 §3.2; cf. etcd issue 13192): etcd's Go server lets it through, h2 refuses the request
//! as a malformed header and resets the stream with PROTOCOL_ERROR. h2 has no hook before that
//! check, so the fix sits below it: [`AuthorityFix`] wraps each accepted connection and, on the
//! client → server side, rewrites header blocks whose `:authority` carries a scheme. Writes (server
//! → client) and every frame other than HEADERS and CONTINUATION pass through byte for byte.
//!
//! HPACK makes a header block depend on every block before it (the dynamic table), so a block can
//! only be changed by decoding the connection's blocks in order. A rewritten block is re-encoded
//! with literals that never touch the server's dynamic table; from then on h2's table no longer
//! matches the client's, so every later block of that connection is re-encoded the same way
//! (rewrite mode). A connection whose first `:authority` is fine never needs the fix (clients send
//! one authority per connection): it drops the rewriter and is a plain pass-through from then on,
//! so well-behaved clients pay for one decoded block per connection.
//!
//! Cost (release build, measured on this project's 2-core machine): frames other than headers are
//! scanned in place, never copied (1 MiB of DATA: 21.3 µs through the fix, 20.9 µs without).
//! Decoding a connection's first block takes about 0.2 ms, nearly all of it in loona-hpack's
//! Huffman decoder (some 25 µs per Huffman-coded string; grpc-go's first block has eight), after
//! which a well-behaved connection costs nothing more. A rewritten connection pays that decoder
//! for each Huffman-coded literal in each later block: grpc-go repeats most fields by index and
//! sends one or two literals per request (its timeout), some 25–50 µs.
//!
//! Bounds: a header block is buffered up to [`BLOCK_BYTES_MAX`] and re-encoded up to
//! [`REENCODED_BYTES_MAX`]; other frames are never buffered whatever their length. Anything this
//! module cannot follow (not HTTP/2, malformed frames, an HPACK error, a block over a bound) stops
//! the rewriting and hands the rest of the connection to h2 unchanged, which then reports its own
//! error — unless a block was already rewritten: h2's table then differs from the client's, and
//! passing on a block encoded against the client's table could make h2 read other headers than
//! the client sent, so the connection is closed instead ([`AuthorityError`]).

use loona_hpack::decoder::DecoderError;
use loona_hpack::Decoder;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// What every HTTP/2 client sends first (RFC 7540 §3.5).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length (24 bits), type, flags, stream id (31 bits).
const FRAME_HEADER_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The most a header block may take on the wire, frame headers included, before this module
/// gives up on it. h2 (through hyper's 16 KiB default header list) refuses far smaller ones.
pub const BLOCK_BYTES_MAX: usize = 64 * 1024;
/// The most a re-encoded block may take. Indexed fields expand when re-encoded as literals (a
/// 1-byte reference to a 4 KiB table entry), so this bounds memory separately from the input.
pub const REENCODED_BYTES_MAX: usize = 64 * 1024;
/// Frames this module emits carry at most this much: SETTINGS_MAX_FRAME_SIZE's initial value,
/// which a server never goes below (tonic keeps it unless `max_frame_size` is set higher).
const FRAME_PAYLOAD_OUT: usize = 16_384;
/// SETTINGS_HEADER_TABLE_SIZE of the server's HPACK decoder: tonic does not set it, so h2 keeps
/// the initial 4096, and a client asking for a larger table is refused by both decoders alike.
const HEADER_TABLE_BYTES: usize = 4096;
/// Blocks without an `:authority` watched before giving up: a client that sends none has nothing
/// to fix, and decoding forever would tax it for nothing.
const WATCH_BLOCKS_MAX: u32 = 8;
/// "Literal Header Field Never Indexed — New Name" (RFC 7541 §6.2.3). Never-indexed rather than
/// without-indexing: an intermediary must keep a field the client marked never-indexed that way
/// (§7.1.3), and the decoder does not say which ones were, so every field gets the stricter form.
const LITERAL_NEVER_INDEXED: u8 = 0x10;

/// Why a connection whose header blocks were already being rewritten had to be closed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The client's block does not decode against the table the client built.
    #[error("undecodable HPACK header block after an :authority rewrite: {0}")]
    Hpack(DecoderError),
    /// A block (on the wire, or re-encoded) over its bound.
    #[error(
        "a header block of {0} bytes or more after an :authority rewrite, over the 64 KiB bound"
    )]
    BlockTooLarge(usize),
    /// HEADERS without a stream, a stray or foreign CONTINUATION, or padding longer than the frame.
    #[error("malformed HEADERS/CONTINUATION framing after an :authority rewrite")]
    Malformed,
}

impl From<AuthorityError> for io::Error {
    fn from(e: AuthorityError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Wraps each connection an acceptor yields (e.g. tonic's `TcpIncoming`, whose socket options
/// still apply) in an [`AuthorityFix`], for `serve_with_incoming_shutdown`.
pub fn fix_incoming<I, S, E>(incoming: I) -> impl Stream<Item = Result<AuthorityFix<S>, E>>
where
    I: Stream<Item = Result<S, E>>,
{
    incoming.map(|conn| conn.map(AuthorityFix::new))
}

/// A client connection whose `:authority` pseudo-headers of the form `http://host:port[/…]` (or
/// `https://`) reach the server as `host:port`. See the module documentation.
pub struct AuthorityFix<S> {
    inner: S,
    /// `None` once nothing is to be rewritten and nothing is held back: reads go straight through.
    rewriter: Option<Box<Rewriter>>,
    /// The client closed its side; what is still held back goes out as it is.
    eof: bool,
}

impl<S> AuthorityFix<S> {
    /// Watches `inner` from its first byte (the client preface).
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            rewriter: Some(Box::new(Rewriter::new())),
            eof: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether this connection still inspects what the client sends (false once it is a plain
    /// pass-through), for tests and diagnostics.
    pub fn is_inspecting(&self) -> bool {
        self.rewriter
            .as_ref()
            .is_some_and(|r| !matches!(r.mode, Mode::Off))
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let Some(rw) = this.rewriter.as_deref_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if rw.deliver(buf) {
                return Poll::Ready(Ok(()));
            }
            if rw.ready < rw.stash.len() && rw.process()? {
                continue;
            }
            if rw.stash.is_empty() && matches!(rw.mode, Mode::Off) {
                // Nothing held back and nothing more to inspect: free the table and buffers.
                this.rewriter = None;
                continue;
            }
            if this.eof {
                if rw.ready < rw.stash.len() {
                    // The client closed mid-frame: h2 gets the truncated bytes and the end.
                    rw.ready = rw.stash.len();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            // Read straight into the caller's buffer, so that frames passing through are not
            // copied; bytes to hold back are moved out of it afterwards.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let got = buf.filled().len() - before;
            if got == 0 {
                this.eof = true;
                continue;
            }
            if rw.stash.is_empty() {
                let released = rw.scan_new(&buf.filled()[before..]);
                if released < got {
                    rw.stash
                        .extend_from_slice(&buf.filled()[before + released..]);
                    buf.set_filled(before + released);
                }
                if released > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // Something is already held back: the new bytes queue behind it.
                rw.stash.extend_from_slice(&buf.filled()[before..]);
                buf.set_filled(before);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How much of the connection is still inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No `:authority` seen yet; blocks are decoded (to keep the table) and passed unchanged.
    Watch { blocks: u32 },
    /// A block was rewritten: every block from then on is re-encoded.
    Rewrite,
    /// Pass-through for the rest of the connection.
    Off,
}

/// Where the scanner stands in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Within the preface, this many bytes matched.
    Preface(usize),
    /// At the first byte of a frame header.
    FrameStart,
    /// Within the payload of a frame that passes through, this many bytes to go.
    Payload(usize),
}

/// The sans-IO state of one connection's read side.
struct Rewriter {
    mode: Mode,
    position: Position,
    decoder: Decoder<'static>,
    /// Bytes read from the client but not yet handed on: `[pos, ready)` are decided and wait for
    /// the caller, `[ready, len)` are not yet decided (a header block being assembled, or bytes
    /// read behind it).
    stash: Vec<u8>,
    pos: usize,
    ready: usize,
    /// How far past `ready` the header block being assembled has been checked, frame by frame,
    /// so that a block arriving in many small reads is not re-walked from its start each time.
    block_checked: usize,
    /// The stream and END_STREAM flag of that block's HEADERS frame.
    block_stream: u32,
    block_end_stream: bool,
    /// Scratch: a block's fragments concatenated, its re-encoding, and the re-encoding framed.
    fragments: Vec<u8>,
    encoded: Vec<u8>,
    framed: Vec<u8>,
}

/// What the frame walk found at `ready`.
enum Block {
    /// More bytes are needed.
    Incomplete,
    /// A whole header block of this many bytes (frame headers included).
    Complete(usize),
    TooLarge(usize),
    Malformed,
}

/// A frame header.
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Head {
    fn parse(b: &[u8]) -> Option<Head> {
        let b: &[u8; FRAME_HEADER_BYTES] = b.get(..FRAME_HEADER_BYTES)?.try_into().ok()?;
        Some(Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            // The reserved high bit is not part of the id (RFC 7540 §4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }
}

/// What decoding one block found.
#[derive(Default)]
struct Verdict {
    /// An `:authority` lost its scheme.
    changed: bool,
    /// An `:authority` that needed nothing.
    authority_fine: bool,
    /// The re-encoding would exceed [`REENCODED_BYTES_MAX`] (and was cut short).
    overflow: bool,
}

impl Rewriter {
    fn new() -> Rewriter {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_BYTES);
        Rewriter {
            mode: Mode::Watch { blocks: 0 },
            position: Position::Preface(0),
            decoder,
            stash: Vec::new(),
            pos: 0,
            ready: 0,
            block_checked: 0,
            block_stream: 0,
            block_end_stream: false,
            fragments: Vec::new(),
            encoded: Vec::new(),
            framed: Vec::new(),
        }
    }

    /// Copies decided bytes to the caller; true if it copied any.
    fn deliver(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let n = buf.remaining().min(self.ready - self.pos);
        if n == 0 {
            return false;
        }
        buf.put_slice(&self.stash[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.ready {
            // Keep only what is undecided, so the stash holds at most one block and one read.
            self.stash.drain(..self.pos);
            self.pos = 0;
            self.ready = 0;
        }
        true
    }

    /// Scans bytes freshly read into the caller's buffer with nothing held back before them;
    /// returns how many of them may go to the caller as they are.
    fn scan_new(&mut self, data: &[u8]) -> usize {
        scan(&mut self.mode, &mut self.position, data)
    }

    /// Decides what it can of `stash[ready..]`; true if it decided anything. An error closes the
    /// connection (see the module documentation).
    fn process(&mut self) -> Result<bool, AuthorityError> {
        let start = self.ready;
        loop {
            self.ready += scan(
                &mut self.mode,
                &mut self.position,
                &self.stash[self.ready..],
            );
            if self.ready == self.stash.len() {
                break;
            }
            // Stopped at a frame header that is incomplete, HEADERS or CONTINUATION.
            match self.walk_block() {
                Block::Incomplete => break,
                Block::Complete(len) => {
                    self.block_checked = 0;
                    self.finish_block(len)?;
                }
                Block::TooLarge(len) => {
                    self.block_checked = 0;
                    self.give_up(AuthorityError::BlockTooLarge(len))?;
                }
                Block::Malformed => {
                    self.block_checked = 0;
                    self.give_up(AuthorityError::Malformed)?;
                }
            }
        }
        Ok(self.ready > start)
    }

    /// Stops inspecting; fails instead if h2's table no longer matches the client's.
    fn give_up(&mut self, why: AuthorityError) -> Result<(), AuthorityError> {
        if self.mode == Mode::Rewrite {
            tracing::debug!(error = %why, "closing a client connection whose header blocks were being rewritten");
            return Err(why);
        }
        tracing::debug!(reason = %why, "no longer inspecting a client connection's header blocks");
        self.mode = Mode::Off;
        Ok(())
    }

    /// Checks the frames of the header block starting at `ready`, from where the last call
    /// stopped.
    fn walk_block(&mut self) -> Block {
        loop {
            let at = self.ready + self.block_checked;
            let Some(head) = Head::parse(&self.stash[at..]) else {
                return Block::Incomplete;
            };
            if self.block_checked == 0 {
                if head.kind != TYPE_HEADERS || head.stream == 0 {
                    return Block::Malformed;
                }
                self.block_stream = head.stream;
                self.block_end_stream = head.flags & FLAG_END_STREAM != 0;
            } else if head.kind != TYPE_CONTINUATION || head.stream != self.block_stream {
                return Block::Malformed;
            }
            let end = self.block_checked + FRAME_HEADER_BYTES + head.len;
            if end > BLOCK_BYTES_MAX {
                return Block::TooLarge(end);
            }
            if self.stash.len() - self.ready < end {
                return Block::Incomplete;
            }
            self.block_checked = end;
            if head.flags & FLAG_END_HEADERS != 0 {
                return Block::Complete(end);
            }
        }
    }

    /// Decodes the complete block `stash[ready..ready + len]` and passes it on as it is or
    /// re-encoded.
    fn finish_block(&mut self, len: usize) -> Result<(), AuthorityError> {
        let raw = &self.stash[self.ready..self.ready + len];
        let Some(hpack) = gather_fragments(raw, &mut self.fragments) else {
            return self.give_up(AuthorityError::Malformed);
        };
        let decoded = decode_and_reencode(&mut self.decoder, hpack, &mut self.encoded);
        self.position = Position::FrameStart;
        let verdict = match decoded {
            Ok(v) => v,
            Err(e) => return self.give_up(AuthorityError::Hpack(e)),
        };
        match self.mode {
            Mode::Off => {}
            Mode::Watch { blocks } => {
                if verdict.changed && !verdict.overflow {
                    tracing::debug!(
                        stream = self.block_stream,
                        "a client sent a URL as :authority; rewriting its header blocks"
                    );
                    self.mode = Mode::Rewrite;
                } else if verdict.changed {
                    // Too big to rewrite: h2 refuses this request on its own, and since the
                    // block passes unchanged its table still matches the client's.
                    return self.give_up(AuthorityError::BlockTooLarge(REENCODED_BYTES_MAX));
                } else if verdict.authority_fine || blocks + 1 >= WATCH_BLOCKS_MAX {
                    self.mode = Mode::Off;
                } else {
                    self.mode = Mode::Watch { blocks: blocks + 1 };
                }
            }
            Mode::Rewrite if verdict.overflow => {
                return self.give_up(AuthorityError::BlockTooLarge(REENCODED_BYTES_MAX));
            }
            Mode::Rewrite => {}
        }
        if self.mode == Mode::Rewrite {
            frame_block(
                self.block_stream,
                self.block_end_stream,
                &self.encoded,
                &mut self.framed,
            );
            self.stash
                .splice(self.ready..self.ready + len, self.framed.iter().copied());
            self.ready += self.framed.len();
        } else {
            self.ready += len;
        }
        // One huge block must not pin its buffers for the life of the connection.
        for scratch in [&mut self.fragments, &mut self.encoded, &mut self.framed] {
            scratch.clear();
            scratch.shrink_to(FRAME_PAYLOAD_OUT);
        }
        Ok(())
    }
}

/// Advances over `data` (which continues the stream at `position`) as far as its bytes may pass
/// unchanged; returns how far. Stops at a frame header that is incomplete, HEADERS or
/// CONTINUATION.
fn scan(mode: &mut Mode, position: &mut Position, data: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if *mode == Mode::Off {
            return data.len();
        }
        match *position {
            Position::Preface(matched) => {
                let n = (PREFACE.len() - matched).min(data.len() - i);
                if data[i..i + n] != PREFACE[matched..matched + n] {
                    // Not HTTP/2 with prior knowledge: nothing here for us.
                    *mode = Mode::Off;
                    continue;
                }
                i += n;
                if matched + n < PREFACE.len() {
                    *position = Position::Preface(matched + n);
                    return i;
                }
                *position = Position::FrameStart;
            }
            Position::Payload(left) => {
                let n = left.min(data.len() - i);
                i += n;
                if n < left {
                    *position = Position::Payload(left - n);
                    return i;
                }
                *position = Position::FrameStart;
            }
            Position::FrameStart => {
                let Some(head) = Head::parse(&data[i..]) else {
                    return i;
                };
                if head.kind == TYPE_HEADERS || head.kind == TYPE_CONTINUATION {
                    return i;
                }
                i += FRAME_HEADER_BYTES;
                *position = Position::Payload(head.len);
            }
        }
    }
}

/// The HPACK fragment of a complete block: borrowed when it is one frame without padding or
/// priority (the usual case), else concatenated into `scratch`. None if padding overruns a frame.
fn gather_fragments<'a>(raw: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let mut at = 0;
    let mut only: Option<&[u8]> = None;
    let mut frames = 0;
    scratch.clear();
    while at < raw.len() {
        let head = Head::parse(&raw[at..])?;
        let frame = raw.get(at..at + FRAME_HEADER_BYTES + head.len)?;
        let mut start = FRAME_HEADER_BYTES;
        let mut end = frame.len();
        if head.kind == TYPE_HEADERS {
            if head.flags & FLAG_PADDED != 0 {
                let pad = usize::from(*frame.get(start)?);
                start += 1;
                end = end.checked_sub(pad)?;
            }
            if head.flags & FLAG_PRIORITY != 0 {
                // Stream dependency (4) and weight (1): h2 ignores them, so they are dropped.
                start += 5;
            }
        }
        let fragment = frame.get(start..end)?;
        frames += 1;
        if frames == 1 {
            only = Some(fragment);
        } else {
            if frames == 2 {
                scratch.extend_from_slice(only.unwrap_or_default());
            }
            scratch.extend_from_slice(fragment);
        }
        at += frame.len();
    }
    if frames <= 1 {
        Some(only.unwrap_or_default())
    } else {
        Some(scratch)
    }
}

/// Decodes one block against the connection's table and re-encodes it (with the scheme removed
/// from `:authority`) into `out` as never-indexed literals, up to [`REENCODED_BYTES_MAX`].
fn decode_and_reencode(
    decoder: &mut Decoder<'static>,
    hpack: &[u8],
    out: &mut Vec<u8>,
) -> Result<Verdict, DecoderError> {
    let mut verdict = Verdict::default();
    out.clear();
    decoder.decode_with_cb(hpack, |name, value| {
        let mut value: &[u8] = &value;
        if &*name == b":authority" {
            match strip_scheme(value) {
                Some(host) => {
                    value = host;
                    verdict.changed = true;
                }
                None => verdict.authority_fine = true,
            }
        }
        // Decoding goes on past the bound (the table must stay in step); encoding does not.
        if verdict.overflow || out.len() + name.len() + value.len() + 11 > REENCODED_BYTES_MAX {
            verdict.overflow = true;
            return;
        }
        out.push(LITERAL_NEVER_INDEXED);
        encode_string(out, &name);
        encode_string(out, value);
    })?;
    Ok(verdict)
}

/// `host:port` out of `http://host:port[/path][?query][#fragment]` (scheme in any case, or
/// https); None when `value` has no such scheme or nothing follows it, so it stays as it is.
fn strip_scheme(value: &[u8]) -> Option<&[u8]> {
    let rest = [&b"http://"[..], &b"https://"[..]]
        .into_iter()
        .find_map(|scheme| {
            value
                .get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .map(|_| &value[scheme.len()..])
        })?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|host| !host.is_empty())
}

/// An HPACK string literal without Huffman coding (RFC 7541 §5.2): h2 reads either, and copying
/// is cheaper than compressing bytes that only cross loopback into the same process.
fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_integer(out, s.len(), 7, 0);
    out.extend_from_slice(s);
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the bits above it.
fn encode_integer(out: &mut Vec<u8>, value: usize, prefix_bits: u32, first: u8) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Frames a re-encoded block as HEADERS (END_STREAM kept, no padding or priority) followed by
/// CONTINUATION frames, each at most [`FRAME_PAYLOAD_OUT`] bytes.
fn frame_block(stream: u32, end_stream: bool, block: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let chunks = block.len().div_ceil(FRAME_PAYLOAD_OUT).max(1);
    for (i, chunk) in block
        .chunks(FRAME_PAYLOAD_OUT)
        .chain(block.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let kind = if i == 0 {
            TYPE_HEADERS
        } else {
            TYPE_CONTINUATION
        };
        let mut flags = 0;
        if i == 0 && end_stream {
            flags |= FLAG_END_STREAM;
        }
        if i + 1 == chunks {
            flags |= FLAG_END_HEADERS;
        }
        let len = chunk.len().to_be_bytes();
        out.extend_from_slice(&len[len.len() - 3..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::task::Waker;

    /// What etcdctl 3.4.23 sends first on `endpoint status --endpoints=http://127.0.0.1:23790`
    /// (captured on loopback): preface, SETTINGS, SETTINGS ack, HEADERS (grpc-go's HPACK, with
    /// Huffman strings and incremental indexing; `:authority: http://127.0.0.1:23790`), DATA.
    const ETCDCTL_FIRST_FLIGHT: &str = concat!(
        "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000000400000000",
        "000000000401000000000000770104000000018386459760a924882d9dcb6571",
        "afa066a925a87510ac6e48d36a3f41909d29aee30c044eae05c0b86e09975f07",
        "5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d",
        "833505b11f40899acac8b24d494f6a7f867df71a6416ff408d25062d49587599",
        "6ee5b1063d5f03332e340000050001000000010000000000",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A client that hands over its bytes in the given pieces (never waiting).
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(front) = self.0.front_mut() {
                let n = buf.remaining().min(front.len());
                buf.put_slice(&front[..n]);
                front.drain(..n);
                if front.is_empty() {
                    self.0.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Everything the server side reads through the fix, in reads of at most `cap` bytes.
    fn read_all(pieces: Vec<Vec<u8>>, cap: usize) -> io::Result<Vec<u8>> {
        read_all_with(pieces, cap).0
    }

    fn read_all_with(pieces: Vec<Vec<u8>>, cap: usize) -> (io::Result<Vec<u8>>, bool) {
        let pieces = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let mut fix = AuthorityFix::new(Pieces(pieces));
        let mut cx = Context::from_waker(Waker::noop());
        let mut space = vec![0; cap];
        let mut out = Vec::new();
        loop {
            let mut rb = ReadBuf::new(&mut space);
            match Pin::new(&mut fix).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return (Ok(out), fix.is_inspecting())
                }
                Poll::Ready(Ok(())) => out.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return (Err(e), fix.is_inspecting()),
                Poll::Pending => panic!("the test client never makes the fix wait"),
            }
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut f = len[len.len() - 3..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])
    }

    fn data(stream: u32, payload: &[u8]) -> Vec<u8> {
        frame(0x0, 0, stream, payload)
    }

    fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut c = PREFACE.to_vec();
        for f in frames {
            c.extend_from_slice(f);
        }
        c
    }

    /// A field with its name from the static table (index `name`) and a raw value, either
    /// added to the dynamic table (incremental indexing) or not.
    fn field(name: usize, value: &str, index: bool) -> Vec<u8> {
        let mut b = Vec::new();
        if index {
            encode_integer(&mut b, name, 6, 0x40);
        } else {
            encode_integer(&mut b, name, 4, 0x00);
        }
        encode_string(&mut b, value.as_bytes());
        b
    }

    /// A request's header block: `:method POST`, `:scheme http`, a path, the given
    /// authority field, `content-type`, and `te: trailers` (new name, raw strings).
    fn request_block(authority: &[u8]) -> Vec<u8> {
        let mut b = vec![0x83, 0x86];
        b.extend(field(4, "/etcdserverpb.KV/Range", false));
        b.extend_from_slice(authority);
        b.extend(field(31, "application/grpc", false));
        b.push(0x00);
        encode_string(&mut b, b"te");
        encode_string(&mut b, b"trailers");
        b
    }

    #[derive(Debug, PartialEq)]
    struct Seen {
        stream: u32,
        end_stream: bool,
        headers: Vec<(String, String)>,
    }

    /// Reads a client's bytes as h2 would: frames at most 16 KiB, header blocks assembled from
    /// HEADERS and CONTINUATION and decoded in order with one table; DATA payloads collected.
    fn as_h2_sees_it(bytes: &[u8]) -> (Vec<Seen>, Vec<(u32, Vec<u8>)>) {
        assert!(bytes.starts_with(PREFACE));
        let mut decoder = Decoder::new();
        let (mut requests, mut datas) = (Vec::new(), Vec::new());
        let mut block: Option<(u32, bool, Vec<u8>)> = None;
        let mut at = PREFACE.len();
        while at < bytes.len() {
            let head = Head::parse(&bytes[at..]).expect("a whole frame header");
            assert!(head.len <= FRAME_PAYLOAD_OUT, "frame over h2's default max");
            let payload = &bytes[at + 9..at + 9 + head.len];
            match head.kind {
                TYPE_HEADERS => {
                    assert!(block.is_none(), "HEADERS inside a header block");
                    let mut p = payload;
                    if head.flags & FLAG_PADDED != 0 {
                        let pad = usize::from(p[0]);
                        p = &p[1..p.len() - pad];
                    }
                    if head.flags & FLAG_PRIORITY != 0 {
                        p = &p[5..];
                    }
                    block = Some((head.stream, head.flags & FLAG_END_STREAM != 0, p.to_vec()));
                }
                TYPE_CONTINUATION => {
                    let b = block.as_mut().expect("CONTINUATION outside a block");
                    assert_eq!(b.0, head.stream);
                    b.2.extend_from_slice(payload);
                }
                0x0 => datas.push((head.stream, payload.to_vec())),
                _ => {}
            }
            if matches!(head.kind, TYPE_HEADERS | TYPE_CONTINUATION)
                && head.flags & FLAG_END_HEADERS != 0
            {
                let (stream, end_stream, hpack) = block.take().unwrap();
                let headers = decoder
                    .decode(&hpack)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect();
                requests.push(Seen {
                    stream,
                    end_stream,
                    headers,
                });
            }
            at += 9 + head.len;
        }
        assert!(block.is_none(), "the last header block was never finished");
        (requests, datas)
    }

    fn authority(seen: &Seen) -> &str {
        let found: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(n, _)| n == ":authority")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{seen:?}");
        found[0]
    }

    /// Two requests on one connection: the first adds `:authority: http://…` and `x-tag: 1` to
    /// the dynamic table, the second (split into HEADERS and two CONTINUATIONs, cut in the
    /// middle of a string) refers to both by index.
    fn two_requests() -> Vec<u8> {
        let mut first = request_block(&field(1, "http://127.0.0.1:2379", true));
        first.push(0x40);
        encode_string(&mut first, b"x-tag");
        encode_string(&mut first, b"1");
        // Dynamic table, newest first: 62 = x-tag: 1, 63 = :authority: http://127.0.0.1:2379.
        let mut second = vec![0x83, 0x86];
        second.extend(field(4, "/etcdserverpb.KV/Put", false));
        second.extend_from_slice(&[0x80 | 63, 0x80 | 62]);
        let (a, rest) = second.split_at(5);
        let (b, c) = rest.split_at(7);
        connection(&[
            settings(),
            frame(0x8, 0, 0, &[0, 0, 0x10, 0]),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &first),
            data(1, b"\0\0\0\0\x03abc"),
            frame(TYPE_HEADERS, FLAG_END_STREAM, 3, a),
            frame(TYPE_CONTINUATION, 0, 3, b),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, c),
            data(1, &[7; 300]),
        ])
    }

    #[test]
    fn a_url_authority_loses_its_scheme_and_later_references_follow() {
        let out = read_all(vec![two_requests()], 1 << 16).unwrap();
        let (requests, datas) = as_h2_sees_it(&out);
        assert_eq!(requests.len(), 2);
        assert_eq!(authority(&requests[0]), "127.0.0.1:2379");
        assert_eq!(authority(&requests[1]), "127.0.0.1:2379");
        assert_eq!(
            requests[0].headers,
            vec![
                (":method".into(), "POST".into()),
                (":scheme".into(), "http".into()),
                (":path".into(), "/etcdserverpb.KV/Range".into()),
                (":authority".into(), "127.0.0.1:2379".into()),
                ("content-type".into(), "application/grpc".into()),
                ("te".into(), "trailers".into()),
                ("x-tag".into(), "1".into()),
            ]
        );
        assert_eq!(
            requests[1].headers[2..],
            [
                (":path".into(), "/etcdserverpb.KV/Put".into()),
                (":authority".into(), "127.0.0.1:2379".into()),
                ("x-tag".into(), "1".into()),
            ]
        );
        assert_eq!((requests[0].stream, requests[0].end_stream), (1, false));
        assert_eq!((requests[1].stream, requests[1].end_stream), (3, true));
        assert_eq!(
            datas,
            vec![(1, b"\0\0\0\0\x03abc".to_vec()), (1, vec![7; 300])]
        );
    }

    #[test]
    fn every_split_and_read_size_gives_the_same_output() {
        let input = two_requests();
        let whole = read_all(vec![input.clone()], 1 << 16).unwrap();
        assert_ne!(whole, input, "the rewrite happened");
        for cut in 1..input.len() {
            let pieces = vec![input[..cut].to_vec(), input[cut..].to_vec()];
            assert_eq!(read_all(pieces, 1 << 16).unwrap(), whole, "cut at {cut}");
        }
        let bytewise: Vec<Vec<u8>> = input.iter().map(|b| vec![*b]).collect();
        for cap in [1, 2, 7, 9, 10, 64] {
            assert_eq!(read_all(bytewise.clone(), cap).unwrap(), whole, "cap {cap}");
            assert_eq!(
                read_all(vec![input.clone()], cap).unwrap(),
                whole,
                "cap {cap}"
            );
        }
    }

    #[test]
    fn etcdctls_own_bytes_are_fixed() {
        let input = unhex(ETCDCTL_FIRST_FLIGHT);
        let out = read_all(vec![input.clone()], 8192).unwrap();
        let (requests, datas) = as_h2_sees_it(&out);
        assert_eq!(requests.len(), 1);
        assert_eq!(authority(&requests[0]), "127.0.0.1:23790");
        let (before, after) = as_h2_sees_it(&input);
        assert_eq!(authority(&before[0]), "http://127.0.0.1:23790");
        let others = |s: &Seen| -> Vec<(String, String)> {
            s.headers
                .iter()
                .filter(|(n, _)| n != ":authority")
                .cloned()
                .collect()
        };
        assert_eq!(others(&requests[0]), others(&before[0]));
        assert_eq!(others(&requests[0]).len(), 8);
        assert_eq!(datas, after);
    }

    #[test]
    fn frames_other_than_headers_pass_unchanged() {
        let input = connection(&[
            settings(),
            data(1, &[1; 1000]),
            frame(0x6, 0, 0, &[9; 8]),
            frame(0x3, 0, 1, &[0, 0, 0, 8]),
            data(3, &[]),
        ]);
        let (out, inspecting) = read_all_with(vec![input.clone()], 100);
        assert_eq!(out.unwrap(), input);
        assert!(inspecting, "no header block seen yet: still watching");
    }

    #[test]
    fn a_fine_authority_ends_the_inspection() {
        let fine = request_block(&field(1, "127.0.0.1:2379", true));
        let url = request_block(&field(1, "http://127.0.0.1:2379", false));
        let input = connection(&[
            settings(),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &fine),
            data(1, b"x"),
            // One authority per connection: a later URL is h2's to refuse, as without the fix.
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &url),
        ]);
        let (out, inspecting) = read_all_with(vec![input.clone()], 4096);
        assert_eq!(out.unwrap(), input);
        assert!(!inspecting);
    }

    #[test]
    fn other_authorities_are_left_alone_and_urls_lose_paths() {
        assert_eq!(
            strip_scheme(b"http://127.0.0.1:2379"),
            Some(&b"127.0.0.1:2379"[..])
        );
        assert_eq!(strip_scheme(b"HTTPS://h:1/v3/x?y#z"), Some(&b"h:1"[..]));
        assert_eq!(
            strip_scheme(b"https://[::1]:2379?a"),
            Some(&b"[::1]:2379"[..])
        );
        assert_eq!(strip_scheme(b"127.0.0.1:2379"), None);
        assert_eq!(strip_scheme(b"http:/x"), None);
        assert_eq!(strip_scheme(b"http://"), None);
        assert_eq!(strip_scheme(b"unix://sock"), None);
        assert_eq!(strip_scheme(b""), None);
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let block = request_block(&field(1, "https://node-1:2379/", false));
        let mut payload = vec![4];
        payload.extend_from_slice(&[0x80, 0, 0, 1, 200]);
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&[0; 4]);
        let flags = FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS | FLAG_END_STREAM;
        let input = connection(&[settings(), frame(TYPE_HEADERS, flags, 5, &payload)]);
        let out = read_all(vec![input], 4096).unwrap();
        let (requests, _) = as_h2_sees_it(&out);
        assert_eq!(authority(&requests[0]), "node-1:2379");
        assert!(requests[0].end_stream);
        let headers_at = PREFACE.len() + 15;
        assert_eq!(out[headers_at + 3], TYPE_HEADERS);
        assert_eq!(out[headers_at + 4], FLAG_END_HEADERS | FLAG_END_STREAM);
    }

    #[test]
    fn a_rewritten_block_over_16_kib_goes_out_in_continuations() {
        let mut block = request_block(&field(1, "http://127.0.0.1:2379", false));
        block.extend(field(58, &"u".repeat(20_000), false));
        let (a, b) = block.split_at(16_000);
        let input = connection(&[
            settings(),
            frame(TYPE_HEADERS, 0, 1, a),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b),
        ]);
        let out = read_all(vec![input], 4096).unwrap();
        let (requests, _) = as_h2_sees_it(&out);
        assert_eq!(authority(&requests[0]), "127.0.0.1:2379");
        assert!(requests[0]
            .headers
            .contains(&("user-agent".into(), "u".repeat(20_000))));
        let first = Head::parse(&out[PREFACE.len() + 15..]).unwrap();
        assert_eq!(
            (first.kind, first.len, first.flags),
            (TYPE_HEADERS, 16_384, 0)
        );
    }

    #[test]
    fn what_it_cannot_follow_passes_through_unchanged() {
        let url = field(1, "http://127.0.0.1:2379", false);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "not HTTP/2",
                b"GET / HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec(),
            ),
            (
                "index out of the table",
                connection(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x80 | 70])]),
            ),
            (
                "table larger than the server allows",
                connection(&[frame(
                    TYPE_HEADERS,
                    FLAG_END_HEADERS,
                    1,
                    &[&[0x3f, 0xe1, 0x3f][..], &request_block(&url)].concat(),
                )]),
            ),
            (
                "padding longer than the frame",
                connection(&[frame(
                    TYPE_HEADERS,
                    FLAG_END_HEADERS | FLAG_PADDED,
                    1,
                    &[&[200][..], &request_block(&url)].concat(),
                )]),
            ),
            (
                "stray CONTINUATION",
                connection(&[frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &url)]),
            ),
            (
                "HEADERS on stream 0",
                connection(&[frame(
                    TYPE_HEADERS,
                    FLAG_END_HEADERS,
                    0,
                    &request_block(&url),
                )]),
            ),
            (
                "block interrupted by DATA",
                connection(&[
                    frame(TYPE_HEADERS, 0, 1, &request_block(&url)),
                    data(1, b"x"),
                ]),
            ),
            (
                "block over 64 KiB",
                connection(&[
                    frame(TYPE_HEADERS, 0, 1, &request_block(&url)),
                    frame(TYPE_CONTINUATION, 0, 1, &[0x80 | 2; 16_384]),
                    frame(TYPE_CONTINUATION, 0, 1, &[0x80 | 2; 16_384]),
                    frame(TYPE_CONTINUATION, 0, 1, &[0x80 | 2; 16_384]),
                    frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x80 | 2; 16_384]),
                ]),
            ),
        ];
        for (what, input) in cases {
            let mut input = input;
            input.extend(data(1, &[5; 40]));
            let (out, inspecting) = read_all_with(vec![input.clone()], 1000);
            assert_eq!(out.unwrap(), input, "{what}");
            assert!(!inspecting, "{what}");
        }
    }

    #[test]
    fn a_url_block_too_big_to_reencode_passes_unchanged() {
        // 24 references to a 4 KiB table entry: 24 bytes that would re-encode to ~98 KiB, so
        // h2 gets the block as it is (and refuses it, as without the fix).
        let mut first = vec![0x40];
        encode_string(&mut first, b"x-big");
        encode_string(&mut first, &[b'b'; 4000]);
        let mut second = request_block(&field(1, "http://127.0.0.1:2379", false));
        second.extend_from_slice(&[0x80 | 62; 24]);
        let input = connection(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &first),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &second),
        ]);
        let (out, inspecting) = read_all_with(vec![input.clone()], 1 << 16);
        assert_eq!(out.unwrap(), input);
        assert!(!inspecting);
    }

    #[test]
    fn after_a_rewrite_what_cannot_be_followed_closes_the_connection() {
        let url = request_block(&field(1, "http://127.0.0.1:2379", false));
        for (what, bad) in [
            (
                "undecodable",
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0x80 | 90]),
            ),
            (
                "stray CONTINUATION",
                frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82]),
            ),
            (
                "over 64 KiB",
                [
                    frame(TYPE_HEADERS, 0, 3, &[0x82; 16_384]),
                    frame(TYPE_CONTINUATION, 0, 3, &[0x82; 16_384]),
                    frame(TYPE_CONTINUATION, 0, 3, &[0x82; 16_384]),
                    frame(TYPE_CONTINUATION, 0, 3, &[0x82; 16_384]),
                ]
                .concat(),
            ),
        ] {
            let input = connection(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &url), bad]);
            let err = read_all(vec![input], 4096).expect_err(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}");
            assert!(
                err.get_ref().is_some_and(|e| e.is::<AuthorityError>()),
                "{what}"
            );
        }
    }

    #[test]
    fn a_client_without_authority_is_watched_only_so_long() {
        let block = [0x83, 0x86, 0x84];
        let mut frames = vec![settings()];
        for i in 0..WATCH_BLOCKS_MAX {
            frames.push(frame(TYPE_HEADERS, FLAG_END_HEADERS, 2 * i + 1, &block));
        }
        let input = connection(&frames);
        let (out, inspecting) = read_all_with(vec![input.clone()], 4096);
        assert_eq!(out.unwrap(), input);
        assert!(!inspecting);
        let (_, inspecting) = read_all_with(vec![input[..input.len() - 12].to_vec()], 4096);
        assert!(inspecting, "one block fewer: still watching");
    }

    #[test]
    fn random_frames_never_panic_and_pass_unchanged() {
        // xorshift64: deterministic, so a failure names its seed.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in 0..300 {
            let mut frames = Vec::new();
            for _ in 0..next() % 8 {
                let kind = [0x0, 0x1, 0x1, 0x4, 0x8, 0x9, 0x9, 0xff][(next() % 8) as usize];
                let flags = next() as u8;
                let stream = (next() % 4) as u32;
                let payload: Vec<u8> = (0..next() % 200).map(|_| next() as u8).collect();
                frames.push(frame(kind, flags, stream, &payload));
            }
            let input = connection(&frames);
            let cut = (next() as usize) % input.len();
            let pieces = vec![input[..cut].to_vec(), input[cut..].to_vec()];
            for cap in [1, 13, 4096] {
                let out = read_all(pieces.clone(), cap);
                assert_eq!(out.unwrap(), input, "seed {seed}, cap {cap}");
            }
        }
    }

    #[test]
    fn hpack_integers_round_trip_through_the_decoder() {
        for len in [0, 1, 126, 127, 128, 255, 16_383, 16_384, 70_000] {
            let mut b = vec![LITERAL_NEVER_INDEXED];
            encode_string(&mut b, b"x-n");
            encode_string(&mut b, &vec![b'v'; len]);
            let decoded = Decoder::new().decode(&b).unwrap();
            assert_eq!(decoded, vec![(b"x-n".to_vec(), vec![b'v'; len])], "{len}");
        }
    }

    /// The real h2 server, fed etcdctl's bytes over loopback TCP with and without the fix: the
    /// authority of the request it accepts, and what it sent back. The client stays open until
    /// the server closes (after a request) or resets stream 1, so h2 never sees an early EOF.
    async fn h2_accepts(fixed: bool) -> (Option<String>, Vec<u8>) {
        use std::io::{Read, Write};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reset = frame(0x3, 0, 1, &[0, 0, 0, 1]);
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&unhex(ETCDCTL_FIRST_FLIGHT)).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut from_server = Vec::new();
            let mut chunk = [0; 4096];
            while !from_server.windows(reset.len()).any(|w| w == reset) {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => from_server.extend_from_slice(&chunk[..n]),
                }
            }
            from_server
        });
        let (socket, _) = listener.accept().await.unwrap();
        // Both arms alike; two because the connection types differ.
        let accepted = if fixed {
            let mut conn = h2::server::handshake(AuthorityFix::new(socket))
                .await
                .unwrap();
            match conn.accept().await {
                Some(Ok((req, _))) => req.uri().authority().map(|a| a.to_string()),
                _ => None,
            }
        } else {
            let mut conn = h2::server::handshake(socket).await.unwrap();
            match conn.accept().await {
                Some(Ok((req, _))) => req.uri().authority().map(|a| a.to_string()),
                _ => None,
            }
        };
        (accepted, client.join().unwrap())
    }

    #[tokio::test]
    async fn h2_serves_etcdctls_request_only_through_the_fix() {
        let (authority, _) = h2_accepts(true).await;
        assert_eq!(authority.as_deref(), Some("127.0.0.1:23790"));
        let (authority, from_server) = h2_accepts(false).await;
        assert_eq!(authority, None);
        let reset_protocol_error = frame(0x3, 0, 1, &[0, 0, 0, 1]);
        assert!(
            from_server
                .windows(reset_protocol_error.len())
                .any(|w| w == reset_protocol_error),
            "h2 resets the stream with PROTOCOL_ERROR"
        );
    }
}
