//! The test oracle of the deflate scan ([`super::deflate_scan`]): a full raw inflate with
//! zlib-rs in `Z_BLOCK` mode, which stops at every block boundary and reports the unused bits
//! of the input it consumed (`data_type`), so it finds the final block as the scan does, and
//! also returns the bytes the stream inflates to.

use std::ffi::c_int;
use std::io;

use libz_rs_sys::{
    Z_BLOCK, Z_BUF_ERROR, Z_OK, Z_STREAM_END, inflate, inflateEnd, inflateInit2_, z_stream,
    zlibVersion,
};

use super::deflate_scan::FinalBlock;

/// zlib's `data_type`: inflate stopped at a block boundary (after a header or an end-of-block).
const AT_BOUNDARY: c_int = 128;
/// zlib's `data_type`: the block just decoded is the stream's final one.
const IN_LAST: c_int = 64;
/// zlib's `data_type`: bits held but not yet used (zlib-rs keeps up to 63).
const HELD_BITS: c_int = 63;

/// Inflates `deflated`, a complete raw deflate stream that ends with its final block's
/// padding, into at most `limit` bytes; returns where the final block lies and the bytes.
///
/// # Errors
/// zlib-rs rejecting the stream, the stream not ending within `deflated` or decoding to more
/// than `limit` bytes, or bytes after the final block's padding.
pub fn inflate_stream(deflated: &[u8], limit: usize) -> io::Result<(FinalBlock, Vec<u8>)> {
    let bad = |why: &str| io::Error::other(format!("zlib-rs oracle: {why}"));
    let mut inflater = Inflater::new().ok_or_else(|| bad("inflateInit failed"))?;
    // One byte more than the limit: a longer stream fills it and is an error.
    let mut out = vec![0u8; limit + 1];
    let stream = &mut inflater.stream;
    stream.next_in = deflated.as_ptr();
    stream.avail_in = u32::try_from(deflated.len()).map_err(|_| bad("input too large"))?;
    stream.next_out = out.as_mut_ptr();
    stream.avail_out = u32::try_from(out.len()).map_err(|_| bad("output too large"))?;
    let mut header = 0;
    loop {
        // SAFETY: the stream was initialised by inflateInit2_ and not moved since (it is
        // boxed); next_in/avail_in and next_out/avail_out describe live slices (`deflated`,
        // `out`) that inflate advances within their bounds.
        let ret = unsafe { inflate(&mut **stream, Z_BLOCK) };
        if ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR {
            return Err(bad(&format!("inflate returned {ret}")));
        }
        let written = out.len() - stream.avail_out as usize;
        if written > limit {
            return Err(bad("more bytes than the limit"));
        }
        let consumed = deflated.len() - stream.avail_in as usize;
        let bit = 8 * consumed - (stream.data_type & HELD_BITS) as usize;
        if stream.data_type & AT_BOUNDARY != 0 {
            if stream.data_type & IN_LAST != 0 {
                if bit.div_ceil(8) != deflated.len() {
                    return Err(bad("bytes follow the final block"));
                }
                out.truncate(written);
                return Ok((FinalBlock { header, end: bit }, out));
            }
            header = bit;
        } else if ret != Z_OK {
            return Err(bad("the stream ends before its final block"));
        }
    }
}

/// A zlib-rs raw inflate stream, ended on drop.
struct Inflater {
    /// Boxed: zlib's state points back at its stream, which must not move.
    stream: Box<z_stream>,
}

impl Inflater {
    fn new() -> Option<Self> {
        let mut stream = Box::new(z_stream::default());
        let size = c_int::try_from(std::mem::size_of::<z_stream>()).ok()?;
        // SAFETY: `stream` is a default z_stream (no custom allocator); -15 asks for raw deflate
        // with a 32 KiB window; the version string is the library's own.
        let ret = unsafe { inflateInit2_(&mut *stream, -15, zlibVersion(), size) };
        (ret == Z_OK).then_some(Self { stream })
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by inflateInit2_ in `new`.
        unsafe { inflateEnd(&mut *self.stream) };
    }
}
