//! Ordered parallel block compression, shared by the compressors: the stream is cut into
//! blocks at fixed offsets, worker threads compress them independently (each with its own
//! compressor state), and the outputs are written in stream order.
//!
//! The bytes depend only on the input: block boundaries are offsets of the stream, not of
//! `write` calls, `flush` never ends a block, and a block's output depends only on its data and
//! on whether it is the last; so 1, 2 or 16 workers write the same bytes. At most `n + 1`
//! blocks are in flight (one per worker and the one the writer waits for), so memory stays flat
//! whatever the stream's length; a deeper queue was measured to buy no speed, only memory.
//! A slow block holds back only the writing of the ones after it.
//!
//! Bytes come either as a plain [`Write`], copied into the block being filled, or as shared
//! [`Chunk`]s ([`BlockWriter::write_chunk`]), whose whole blocks the workers read in place: the
//! same fixed offsets either way, so the same bytes, one copy fewer.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::chunk::Chunk;

/// Compresses one block: `(data, last, out)`, appending to `out` (empty on entry).
pub type CompressBlock = Box<dyn FnMut(&[u8], bool, &mut Vec<u8>) -> io::Result<()> + Send>;

/// A block's bytes: filled by copying, or a whole block of a shared chunk.
enum Input {
    Owned(Vec<u8>),
    Shared(Arc<Chunk>, Range<usize>),
}

impl Input {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Owned(bytes) => bytes,
            Input::Shared(chunk, range) => &chunk[range.clone()],
        }
    }
}

struct Job {
    data: Input,
    /// An output buffer to fill (empty; recycled like the input buffers).
    out: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Done>>,
}

struct Done {
    compressed: Vec<u8>,
    /// The input, handed back for reuse.
    data: Input,
}

/// A writer compressing `block`-byte blocks on worker threads into `inner`;
/// [`BlockWriter::finish`] compresses the rest (always a last block, possibly empty).
pub struct BlockWriter<W: Write> {
    inner: Option<W>,
    block: Vec<u8>,
    block_size: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Done>>>,
    /// Input and output buffers of written blocks, for reuse: no allocation per block, so
    /// memory stays at the blocks in flight.
    spare: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    max_pending: usize,
    name: &'static str,
}

impl<W: Write> BlockWriter<W> {
    /// Starts `threads` (at least one) workers named `<name>-<i>`, each compressing with the
    /// state `worker()` gives it.
    ///
    /// # Errors
    /// `worker` failing, or the OS refusing to start a thread.
    pub fn new(
        inner: W,
        block_size: usize,
        threads: usize,
        name: &'static str,
        worker: impl Fn() -> io::Result<CompressBlock>,
    ) -> io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|i| {
                let queue = Arc::clone(&queue);
                let compress = worker()?;
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || work(&queue, compress))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            inner: Some(inner),
            block: Vec::with_capacity(block_size),
            block_size,
            jobs: Some(jobs),
            workers,
            pending: VecDeque::new(),
            spare: Vec::new(),
            spare_out: Vec::new(),
            max_pending: threads + 1,
            name,
        })
    }

    /// The writer the blocks go to (for a container format's header).
    pub fn inner_mut(&mut self) -> &mut W {
        self.inner.as_mut().expect("writer present until finish")
    }

    /// Compresses the rest as the last block, writes every block and returns the inner writer.
    ///
    /// # Errors
    /// A write error of `inner`, or a worker failing.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_front()?;
        }
        Ok(self.inner.take().expect("writer present until finish"))
    }

    /// Writes `chunk`: its whole blocks go to the workers as they are, the bytes before and
    /// after them are copied into blocks as [`Write::write`] does.
    ///
    /// # Errors
    /// As [`Write::write`].
    pub fn write_chunk(&mut self, chunk: &Arc<Chunk>) -> io::Result<()> {
        let mut offset = 0;
        if !self.block.is_empty() {
            offset = (self.block_size - self.block.len()).min(chunk.len());
            self.write_all(&chunk[..offset])?;
        }
        while chunk.len() - offset >= self.block_size {
            let block = offset..offset + self.block_size;
            self.send(Input::Shared(Arc::clone(chunk), block), false)?;
            offset += self.block_size;
        }
        self.write_all(&chunk[offset..])
    }

    /// Sends the current block to the workers and starts a new one.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.block_size));
        let data = std::mem::replace(&mut self.block, fresh);
        self.send(Input::Owned(data), last)
    }

    /// Sends a block to the workers.
    fn send(&mut self, data: Input, last: bool) -> io::Result<()> {
        let out = self.spare_out.pop().unwrap_or_default();
        let (reply, done) = mpsc::sync_channel(1);
        let job = Job {
            data,
            out,
            last,
            reply,
        };
        let failed = self.worker_failed();
        self.jobs
            .as_ref()
            .expect("workers present until drop")
            .send(job)
            .map_err(|_| failed)?;
        self.pending.push_back(done);
        while self.pending.len() > self.max_pending {
            self.write_front()?;
        }
        Ok(())
    }

    /// Waits for the oldest block and writes it.
    fn write_front(&mut self) -> io::Result<()> {
        let done = self.pending.pop_front().expect("a pending block");
        let done = done.recv().map_err(|_| self.worker_failed())??;
        self.write_done(done)
    }

    /// Writes the finished blocks at the front without waiting.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(front) = self.pending.front() {
            match front.try_recv() {
                Ok(done) => {
                    self.pending.pop_front();
                    self.write_done(done?)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Err(self.worker_failed()),
            }
        }
        Ok(())
    }

    fn write_done(&mut self, mut done: Done) -> io::Result<()> {
        self.inner_mut().write_all(&done.compressed)?;
        if let Input::Owned(mut data) = done.data {
            data.clear();
            self.spare.push(data);
        }
        done.compressed.clear();
        self.spare_out.push(done.compressed);
        Ok(())
    }

    fn worker_failed(&self) -> io::Error {
        io::Error::other(format!("a {} worker thread failed", self.name))
    }
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            let take = (self.block_size - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == self.block_size {
                self.dispatch(false)?;
            }
        }
        self.write_ready()?;
        Ok(written)
    }

    /// Writes the blocks already compressed and flushes the inner writer; it does not end the
    /// current block, so the output does not depend on when it is called.
    fn flush(&mut self) -> io::Result<()> {
        self.write_ready()?;
        self.inner_mut().flush()
    }
}

impl<W: Write> Drop for BlockWriter<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker: takes jobs until the writer goes away.
fn work(queue: &Mutex<Receiver<Job>>, mut compress: CompressBlock) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut compressed = job.out;
        let result = compress(job.data.bytes(), job.last, &mut compressed).map(|()| Done {
            compressed,
            data: job.data,
        });
        // The writer may be gone (dropped after an error); nothing to report then.
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::chunk::ChunkPool;

    /// A "compressor" that tags each block with its length and whether it is the last.
    fn tagging() -> io::Result<CompressBlock> {
        Ok(Box::new(|data, last, out| {
            out.extend_from_slice(
                format!("[{}{}]", data.len(), if last { "!" } else { "" }).as_bytes(),
            );
            out.extend_from_slice(data);
            Ok(())
        }))
    }

    fn run(data: &[u8], write_size: usize, threads: usize) -> Vec<u8> {
        let mut w = BlockWriter::new(Vec::new(), 10, threads, "test", tagging).unwrap();
        for piece in data.chunks(write_size) {
            w.write_all(piece).unwrap();
            w.flush().unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn blocks_are_fixed_offsets_in_order_with_one_last_block() {
        let data: Vec<u8> = (b'a'..=b'z').collect();
        let out = run(&data, 7, 3);
        assert_eq!(out, b"[10]abcdefghij[10]klmnopqrst[6!]uvwxyz");
        assert_eq!(run(&data[..20], 3, 2), b"[10]abcdefghij[10]klmnopqrst[0!]");
        assert_eq!(run(b"", 1, 2), b"[0!]");
    }

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let one = run(&data, 1000, 1);
        for (write_size, threads) in [(1, 2), (37, 4), (4096, 16)] {
            assert!(run(&data, write_size, threads) == one);
        }
    }

    #[test]
    fn chunks_give_the_bytes_their_contents_give_aligned_or_not() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let one = run(&data, 1000, 1);
        let pool = ChunkPool::new(40);
        // Chunks of whole blocks, of less than a block, of more and not a multiple, mixed with
        // plain writes that leave a block part-filled.
        for (sizes, threads) in [
            (&[40, 20, 30][..], 1),
            (&[7, 40, 23, 10][..], 3),
            (&[24][..], 2),
        ] {
            let mut w = BlockWriter::new(Vec::new(), 10, threads, "test", tagging).unwrap();
            let mut rest = &data[..];
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, after) = rest.split_at(size.min(rest.len()));
                if size % 2 == 0 {
                    let mut bytes = pool.buffer();
                    bytes.extend_from_slice(piece);
                    w.write_chunk(&pool.share(bytes)).unwrap();
                } else {
                    w.write_all(piece).unwrap();
                }
                rest = after;
            }
            assert!(w.finish().unwrap() == one, "{sizes:?}");
        }
    }

    #[test]
    fn a_failing_block_fails_the_writer() {
        let failing = || -> io::Result<CompressBlock> {
            Ok(Box::new(|data, _, _| {
                if data.first() == Some(&b'x') {
                    Err(io::Error::other("bad block"))
                } else {
                    Ok(())
                }
            }))
        };
        let mut w = BlockWriter::new(Vec::new(), 4, 2, "test", failing).unwrap();
        let written = w
            .write_all(b"aaaaxxxxaaaa")
            .and_then(|()| w.finish().map(drop));
        assert_eq!(written.unwrap_err().to_string(), "bad block");
    }
}
