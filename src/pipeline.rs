//! One pass from a directory to layer blobs: the tar stream is hashed into the diffID and fed to
//! every requested compressor at once, each hashing its own output into the blob digest.
//!
//! Files are read once whatever the number of outputs. Outputs are plain writers, so the same
//! pass serves `layerize tar` (a file or nothing), the store (temp files renamed by digest) and
//! tests (memory).

use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::archive::{TarSpec, TarSummary, WalkedEntry, write_tar_observed};
use crate::compress::{Compression, Encoder};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};

/// Digest and size of one blob of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// How the blob is compressed.
    pub compression: Compression,
    /// sha256 of the blob bytes (equals the diffID for `none`).
    pub digest: Digest,
    /// Blob size in bytes.
    pub size: u64,
    /// OCI media type.
    pub media_type: String,
}

/// What one pass produced.
#[derive(Debug, Clone)]
pub struct LayerBlobs {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// One per output, in the order given.
    pub blobs: Vec<BlobInfo>,
    /// What the walk wrote and skipped.
    pub summary: TarSummary,
}

/// Writes the tar of `spec` once, into every `(compression, writer)` output, and returns the
/// outputs with their digests. With no outputs, only the diffID is computed.
///
/// # Errors
/// As [`write_tar`]; a failing output is [`Error::Write`] naming `<output>`.
pub fn layerize<W: Write>(
    spec: &TarSpec,
    outputs: Vec<(Compression, W)>,
) -> Result<(LayerBlobs, Vec<W>)> {
    layerize_observed(spec, outputs, &mut |_| {})
}

/// [`layerize`], reporting each entry of the tree to `observer` (see [`write_tar_observed`]).
///
/// # Errors
/// As [`layerize`].
pub fn layerize_observed<W: Write>(
    spec: &TarSpec,
    outputs: Vec<(Compression, W)>,
    observer: &mut dyn FnMut(&WalkedEntry<'_>),
) -> Result<(LayerBlobs, Vec<W>)> {
    let mut encoders = Vec::with_capacity(outputs.len());
    for (compression, writer) in outputs {
        let encoder = compression
            .encoder(HashingWriter::new(writer))
            .map_err(output_error)?;
        encoders.push((compression, encoder));
    }
    let mut tee = Tee {
        diff: HashingWriter::new(io::sink()),
        outputs: encoders,
    };
    let summary = write_tar_observed(spec, &mut tee, observer)?;
    let (_, diff_id, tar_size) = tee.diff.finish();
    let mut blobs = Vec::new();
    let mut writers = Vec::new();
    for (compression, encoder) in tee.outputs {
        let (writer, digest, size) = encoder.finish().map_err(output_error)?.finish();
        blobs.push(BlobInfo {
            compression,
            digest,
            size,
            media_type: compression.media_type().to_owned(),
        });
        writers.push(writer);
    }
    Ok((
        LayerBlobs {
            diff_id,
            tar_size,
            blobs,
            summary,
        },
        writers,
    ))
}

fn output_error(source: io::Error) -> Error {
    Error::Write {
        path: PathBuf::from("<output>"),
        source,
    }
}

struct Tee<W: Write> {
    diff: HashingWriter<io::Sink>,
    outputs: Vec<(Compression, Encoder<HashingWriter<W>>)>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.diff.write_all(buf)?;
        for (_, output) in &mut self.outputs {
            output.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for (_, output) in &mut self.outputs {
            output.flush()?;
        }
        Ok(())
    }
}
