//! One pass from a directory to layer blobs, overlapped across threads so that the slowest
//! stage sets the pace: the calling thread walks and reads the tree into chunks of tar stream
//! (1 MiB, or a compressor's block size if larger) and shares them uncopied
//! ([`crate::compress::chunk`]) with every requested output and with a hashing thread that
//! turns them into the diffID; each compressor runs its own workers ([`crate::compress`]),
//! which read the chunks in place, and hashes its output into the blob digest. A few chunks are
//! in flight at a time, so memory stays flat whatever the size of the layer.
//!
//! Files are read once whatever the number of outputs. Outputs are plain writers, so the same
//! pass serves `layerize tar` (a file or nothing), the store (temp files renamed by digest) and
//! tests (memory). [`layerize_many`] runs the layers of one buildpack side by side.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::archive::{TarSpec, TarSummary, WalkedEntry, reader_threads, write_tar_read_by};
use crate::compress::chunk::{Chunk, ChunkPool};
use crate::compress::{Compression, Encoder};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};

/// Bytes of tar stream handed from the reading thread to the others at a time, at least; more
/// with a compressor whose blocks are larger, as chunks must hold whole blocks to be compressed
/// in place. (Hashing alone, 4 MiB chunks were measured 15 % slower than 1 MiB on small files.)
const MIN_CHUNK: usize = 1 << 20;
/// Bytes of chunks queued for the hashing thread, at most (and at least two chunks).
const QUEUED_BYTES: usize = 4 << 20;

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
/// As [`write_tar`](crate::archive::write_tar); a failing output is [`Error::Write`] naming
/// `<output>`.
pub fn layerize<W: Write>(
    spec: &TarSpec,
    outputs: Vec<(Compression, W)>,
) -> Result<(LayerBlobs, Vec<W>)> {
    layerize_observed(spec, outputs, &mut |_| {})
}

/// [`layerize`], reporting each entry of the tree to `observer` (see
/// [`write_tar_observed`](crate::archive::write_tar_observed)); the observer runs on the
/// calling thread.
///
/// # Errors
/// As [`layerize`].
pub fn layerize_observed<W: Write>(
    spec: &TarSpec,
    outputs: Vec<(Compression, W)>,
    observer: &mut dyn FnMut(&WalkedEntry<'_>),
) -> Result<(LayerBlobs, Vec<W>)> {
    let mut sinks = Vec::with_capacity(outputs.len());
    for (compression, writer) in outputs {
        sinks.push(match compression {
            Compression::None => Sink::Plain(writer),
            _ => Sink::Compressed(
                compression,
                Box::new(
                    compression
                        .encoder(HashingWriter::new(writer))
                        .map_err(output_error)?,
                ),
            ),
        });
    }
    // Block sizes are powers of two: the largest is a multiple of the others.
    let chunk_size = sinks
        .iter()
        .filter_map(|sink| match sink {
            Sink::Compressed(compression, _) => compression.block_size(),
            Sink::Plain(_) => None,
        })
        .fold(MIN_CHUNK, usize::max);
    let compressing = sinks.iter().any(|s| matches!(s, Sink::Compressed(..)));
    let (summary, diff_id, tar_size) = std::thread::scope(|scope| {
        let queued = (QUEUED_BYTES / chunk_size).max(2);
        let (chunks, queue) = mpsc::sync_channel::<Arc<Chunk>>(queued);
        let hashing = std::thread::Builder::new()
            .name("diff-id".into())
            .spawn_scoped(scope, move || hash_chunks(queue))
            .map_err(output_error)?;
        let pool = ChunkPool::new(chunk_size);
        let mut stream = ChunkStream {
            chunk: pool.buffer(),
            pool,
            chunks: Some(chunks),
            sinks: &mut sinks,
        };
        let written = write_tar_read_by(spec, &mut stream, observer, reader_threads(compressing));
        let ended = stream.end();
        let (diff_id, tar_size) = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let summary = written?;
        ended.map_err(output_error)?;
        Ok::<_, Error>((summary, diff_id, tar_size))
    })?;
    let mut blobs = Vec::with_capacity(sinks.len());
    let mut writers = Vec::with_capacity(sinks.len());
    for sink in sinks {
        let (compression, digest, size, writer) = match sink {
            Sink::Plain(writer) => (Compression::None, diff_id.clone(), tar_size, writer),
            Sink::Compressed(compression, encoder) => {
                let (writer, digest, size) = encoder.finish().map_err(output_error)?.finish();
                (compression, digest, size, writer)
            }
        };
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

/// One layer for [`layerize_many`]: what to archive, where to write it, and who watches.
pub struct LayerJob<'a, W> {
    /// The tree and its names.
    pub spec: TarSpec,
    /// Outputs, as for [`layerize`].
    pub outputs: Vec<(Compression, W)>,
    /// Sees each entry of this layer's tree (see [`layerize_observed`]).
    pub observer: Box<dyn FnMut(&WalkedEntry<'_>) + Send + 'a>,
}

impl<'a, W> LayerJob<'a, W> {
    /// A job with no observer.
    pub fn new(spec: TarSpec, outputs: Vec<(Compression, W)>) -> Self {
        Self {
            spec,
            outputs,
            observer: Box::new(|_| {}),
        }
    }

    /// Sets the observer.
    #[must_use]
    pub fn observed(mut self, observer: impl FnMut(&WalkedEntry<'_>) + Send + 'a) -> Self {
        self.observer = Box::new(observer);
        self
    }
}

/// Layerizes several trees side by side (as many at a time as there are cores) and returns
/// one result per job, in the order given. A failing layer does not stop the others.
///
/// Each layer being written holds a few hundred descriptors open at most; a program that
/// writes layers side by side should call [`crate::archive::raise_open_file_limit`] once at
/// start, as the `layerize` command does (the library leaves process limits alone).
pub fn layerize_many<W: Write + Send>(
    jobs: Vec<LayerJob<'_, W>>,
) -> Vec<Result<(LayerBlobs, Vec<W>)>> {
    jobs.into_par_iter()
        .map(|mut job| layerize_observed(&job.spec, job.outputs, &mut job.observer))
        .collect()
}

fn output_error(source: io::Error) -> Error {
    Error::Write {
        path: PathBuf::from("<output>"),
        source,
    }
}

/// The hashing thread: the diffID and size of the chunks.
fn hash_chunks(queue: Receiver<Arc<Chunk>>) -> (Digest, u64) {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    for chunk in queue {
        hasher.update(&**chunk);
        size += chunk.len() as u64;
    }
    (Digest::from_hasher(hasher), size)
}

enum Sink<W: Write> {
    /// The tar itself: its digest is the diffID, computed once on the hashing thread.
    Plain(W),
    /// A compressor hashing its output (boxed: a compressor's state is large).
    Compressed(Compression, Box<Encoder<HashingWriter<W>>>),
}

/// The tar stream as the writer produces it, cut into chunks for the outputs and the hasher.
struct ChunkStream<'s, W: Write> {
    /// The chunk being filled.
    chunk: Vec<u8>,
    pool: Arc<ChunkPool>,
    chunks: Option<SyncSender<Arc<Chunk>>>,
    sinks: &'s mut [Sink<W>],
}

impl<W: Write> ChunkStream<'_, W> {
    /// Shares the current chunk with the hasher and the outputs.
    fn pass_on(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self.pool.buffer();
        let full = self.pool.share(std::mem::replace(&mut self.chunk, next));
        let chunks = self.chunks.as_ref().expect("stream not ended");
        chunks
            .send(Arc::clone(&full))
            .map_err(|_| io::Error::other("the diffID hashing thread stopped"))?;
        for sink in self.sinks.iter_mut() {
            match sink {
                Sink::Plain(writer) => writer.write_all(&full)?,
                Sink::Compressed(_, encoder) => encoder.write_chunk(&full)?,
            }
        }
        Ok(())
    }

    /// Passes on the last chunk and lets the hasher finish.
    fn end(mut self) -> io::Result<()> {
        let passed = self.pass_on();
        self.chunks = None;
        passed
    }
}

impl<W: Write> Write for ChunkStream<'_, W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        let size = self.pool.capacity();
        while !buf.is_empty() {
            let take = (size - self.chunk.len()).min(buf.len());
            self.chunk.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.chunk.len() == size {
                self.pass_on()?;
            }
        }
        Ok(written)
    }

    /// Passes on the bytes so far and flushes plain outputs; compressors are only flushed by
    /// finishing them, so their bytes do not depend on flush calls.
    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()?;
        for sink in self.sinks.iter_mut() {
            if let Sink::Plain(writer) = sink {
                writer.flush()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::archive::write_tar;
    use crate::normalize::Owner;

    /// A tree whose tar spans several chunks.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let big: Vec<u8> = (0..3 * (4 << 20) + 17u32)
            .map(|i| (i % 253) as u8 ^ (i >> 16) as u8)
            .collect();
        std::fs::write(dir.path().join("sub/big"), big).unwrap();
        std::fs::write(dir.path().join("small"), b"hello").unwrap();
        dir
    }

    fn tar_of(spec: &TarSpec) -> Vec<u8> {
        let mut tar = Vec::new();
        write_tar(spec, &mut tar).unwrap();
        tar
    }

    #[test]
    fn every_output_carries_the_tar_write_tar_writes() {
        let dir = tree();
        let spec = TarSpec::relative(dir.path(), Owner::default());
        let expected = tar_of(&spec);
        let outputs = [Compression::None, Compression::Gzip, Compression::Zstd]
            .map(|c| (c, Vec::new()))
            .to_vec();
        let (blobs, writers) = layerize(&spec, outputs).unwrap();
        assert_eq!(blobs.diff_id, Digest::of_bytes(&expected));
        assert_eq!(blobs.tar_size, expected.len() as u64);
        assert_eq!(blobs.summary.entries, 3);
        for (blob, bytes) in blobs.blobs.iter().zip(&writers) {
            assert_eq!(blob.digest, Digest::of_bytes(bytes));
            assert_eq!(blob.size, bytes.len() as u64);
            let (mut reader, found) = crate::compress::decompress(&bytes[..]).unwrap();
            assert_eq!(found, blob.compression);
            let mut tar = Vec::new();
            reader.read_to_end(&mut tar).unwrap();
            assert!(tar == expected, "{} output differs", blob.compression);
        }
    }

    #[test]
    fn a_missing_tree_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TarSpec::relative(dir.path().join("absent"), Owner::default());
        let err = layerize(&spec, vec![(Compression::Gzip, Vec::new())]).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn many_layers_give_what_one_at_a_time_gives_in_order() {
        let dirs: Vec<_> = (0..4u8)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                for f in 0..=i {
                    std::fs::write(dir.path().join(format!("f{f}")), vec![i; 5000]).unwrap();
                }
                dir
            })
            .collect();
        let specs: Vec<_> = dirs
            .iter()
            .map(|d| TarSpec::relative(d.path(), Owner::default()))
            .collect();
        let mut seen = vec![0usize; specs.len()];
        let jobs = specs
            .iter()
            .zip(seen.iter_mut())
            .map(|(spec, seen)| {
                LayerJob::new(spec.clone(), vec![(Compression::Gzip, Vec::new())])
                    .observed(move |_| *seen += 1)
            })
            .collect();
        let results = layerize_many(jobs);
        assert_eq!(seen, [1, 2, 3, 4]);
        for (spec, result) in specs.iter().zip(results) {
            let (blobs, writers) = result.unwrap();
            let (alone, alone_writers) =
                layerize(spec, vec![(Compression::Gzip, Vec::new())]).unwrap();
            assert_eq!(blobs.diff_id, alone.diff_id);
            assert_eq!(blobs.blobs, alone.blobs);
            assert_eq!(writers, alone_writers);
        }
    }
}
