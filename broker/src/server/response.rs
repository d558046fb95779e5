//! Response frames, with segment-file regions spliced in for zero-copy fetches.
//!
//! A Fetch response is encoded by the protocol crate like any other message, except that each
//! partition's `records` field points into [`PLACEHOLDER`]. [`SpliceBuf`] recognises those slices
//! as they are written, records where in the frame each file region goes, and skips the copy.
//! The writer then sends the encoded bytes and, in between, the file regions with `sendfile(2)`:
//! record data goes from the page cache to the socket without passing through user space.

use std::os::fd::AsRawFd;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

use crate::log::FileSlice;

/// Largest file region spliced into one partition's records (bigger reads are capped).
pub const MAX_SPLICE: usize = 64 << 20;

/// Zero bytes whose address marks "a file region goes here". Lives in .bss: never touched.
pub static PLACEHOLDER: [u8; MAX_SPLICE] = [0; MAX_SPLICE];

/// A `records` value standing for `len` bytes of a file region.
pub fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDER[..len])
}

/// An encoded response: bytes, with file regions to send at given positions.
#[derive(Debug, Default)]
pub struct Frame {
    /// Encoded bytes, starting with the 4-byte length.
    pub bytes: BytesMut,
    /// (position in `bytes`, region) in ascending position order.
    pub splices: Vec<(usize, FileSlice)>,
}

impl Frame {
    /// Total length on the wire.
    pub fn wire_len(&self) -> usize {
        self.bytes.len() + self.splices.iter().map(|(_, s)| s.len as usize).sum::<usize>()
    }

    /// Patch the 4-byte length prefix to the wire length.
    pub fn finish(&mut self) {
        let len = (self.wire_len() - 4) as i32;
        self.bytes[0..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Copy spliced regions into the bytes (when zero copy is off).
    pub fn materialize(mut self) -> std::io::Result<Self> {
        if self.splices.is_empty() {
            return Ok(self);
        }
        let mut out = BytesMut::with_capacity(self.wire_len());
        let mut at = 0;
        for (pos, s) in self.splices.drain(..) {
            out.extend_from_slice(&self.bytes[at..pos]);
            out.extend_from_slice(&s.read_bytes()?);
            at = pos;
        }
        out.extend_from_slice(&self.bytes[at..]);
        Ok(Self { bytes: out, splices: Vec::new() })
    }
}

/// A buffer that diverts placeholder slices into splice records.
pub struct SpliceBuf {
    frame: Frame,
    pending: std::collections::VecDeque<FileSlice>,
}

impl SpliceBuf {
    /// A buffer expecting `pending` regions, in encoding order.
    pub fn new(capacity: usize, pending: Vec<FileSlice>) -> Self {
        Self { frame: Frame { bytes: BytesMut::with_capacity(capacity), splices: Vec::new() }, pending: pending.into() }
    }

    /// The frame, once encoding is done. Fails if a region was never placed.
    pub fn into_frame(self) -> Result<Frame, &'static str> {
        if !self.pending.is_empty() {
            return Err("encoder skipped a spliced records field");
        }
        Ok(self.frame)
    }
}

unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.frame.bytes.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded contract: the caller initialised `cnt` bytes of `chunk_mut`.
        unsafe { self.frame.bytes.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.frame.bytes.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        let is_placeholder = src.as_ptr() == PLACEHOLDER.as_ptr()
            && self.pending.front().map(|s| s.len as usize == src.len()).unwrap_or(false);
        if is_placeholder && !src.is_empty() {
            let s = self.pending.pop_front().expect("checked");
            self.frame.splices.push((self.frame.bytes.len(), s));
        } else {
            self.frame.bytes.extend_from_slice(src);
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.frame.bytes.len()
    }
    fn seek(&mut self, offset: usize) {
        self.frame.bytes.truncate(offset)
    }
    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.frame.bytes[r]
    }
}

/// Write a frame: bytes with `write_all`, file regions with `sendfile`.
pub async fn write_frame(w: &mut OwnedWriteHalf, frame: &Frame) -> std::io::Result<()> {
    let mut at = 0;
    for (pos, s) in &frame.splices {
        w.write_all(&frame.bytes[at..*pos]).await?;
        send_file(w, s).await?;
        at = *pos;
    }
    w.write_all(&frame.bytes[at..]).await
}

async fn send_file(w: &mut OwnedWriteHalf, s: &FileSlice) -> std::io::Result<()> {
    let sock = w.as_ref();
    let sock_fd = sock.as_raw_fd();
    let file_fd = s.file.as_raw_fd();
    let mut offset = s.position as libc::off_t;
    let end = s.position + s.len;
    while (offset as u64) < end {
        sock.writable().await?;
        let left = (end - offset as u64) as usize;
        let res = sock.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration (we hold the socket half and an
            // Arc of the file); `offset` is a valid out-parameter owned by this frame.
            let n = unsafe { libc::sendfile(sock_fd, file_fd, &mut offset, left) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match res {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the region being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
