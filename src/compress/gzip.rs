//! Parallel gzip (as pigz writes it): one gzip member whose deflate stream is cut into
//! fixed-size blocks compressed on worker threads, each primed with the previous block's last
//! 32 KiB as dictionary and ended with a sync flush, so the blocks concatenate into one valid
//! raw deflate stream. The CRC32s of the blocks are combined into the trailer's.
//!
//! The bytes depend only on the input: block boundaries are fixed offsets of the stream (not of
//! `write` calls, and `flush` never ends a block), and each block's output depends only on its
//! data and dictionary, so 1, 2 or 16 workers write the same blob.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Uncompressed bytes per block.
pub const BLOCK: usize = 256 * 1024;
/// The deflate window: the dictionary carried from one block to the next.
const WINDOW: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 255 (unknown, as Go).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

struct Job {
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Done>>,
}

struct Done {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
    /// The input buffer, handed back for reuse.
    data: Vec<u8>,
}

/// A gzip writer compressing on `threads` worker threads; [`GzEncoder::finish`] ends it.
pub struct GzEncoder<W: Write> {
    inner: Option<W>,
    block: Vec<u8>,
    dictionary: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Done>>>,
    spare: Vec<Vec<u8>>,
    max_pending: usize,
    crc: crc32fast::Hasher,
    header_written: bool,
}

impl<W: Write> GzEncoder<W> {
    /// A gzip writer at `level` into `inner`, with `threads` (at least one) workers.
    ///
    /// # Errors
    /// The OS refusing to start a thread.
    pub fn new(inner: W, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|i| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("gzip-{i}"))
                    .spawn(move || work(&queue, level))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            inner: Some(inner),
            block: Vec::with_capacity(BLOCK),
            dictionary: Vec::new(),
            jobs: Some(jobs),
            workers,
            pending: VecDeque::new(),
            spare: Vec::new(),
            max_pending: 2 * threads + 1,
            crc: crc32fast::Hasher::new(),
            header_written: false,
        })
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    ///
    /// # Errors
    /// A write error of `inner`, or a worker failing.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_front()?;
        }
        let crc = std::mem::take(&mut self.crc);
        let size = crc.total_len() as u32;
        let inner = self.inner.as_mut().expect("writer present until finish");
        inner.write_all(&crc.finalize().to_le_bytes())?;
        inner.write_all(&size.to_le_bytes())?;
        Ok(self.inner.take().expect("writer present until finish"))
    }

    /// Sends the current block to the workers and starts a new one.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK));
        let data = std::mem::replace(&mut self.block, fresh);
        let dictionary = std::mem::replace(
            &mut self.dictionary,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let (reply, done) = mpsc::sync_channel(1);
        let job = Job {
            dictionary,
            data,
            last,
            reply,
        };
        self.jobs
            .as_ref()
            .expect("workers present until drop")
            .send(job)
            .map_err(|_| worker_failed())?;
        self.pending.push_back(done);
        while self.pending.len() > self.max_pending {
            self.write_front()?;
        }
        Ok(())
    }

    /// Waits for the oldest block and writes it.
    fn write_front(&mut self) -> io::Result<()> {
        let done = self.pending.pop_front().expect("a pending block");
        let done = done.recv().map_err(|_| worker_failed())??;
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
                Err(mpsc::TryRecvError::Disconnected) => return Err(worker_failed()),
            }
        }
        Ok(())
    }

    fn write_done(&mut self, mut done: Done) -> io::Result<()> {
        let inner = self.inner.as_mut().expect("writer present until finish");
        if !self.header_written {
            inner.write_all(&HEADER)?;
            self.header_written = true;
        }
        inner.write_all(&done.deflated)?;
        self.crc.combine(&done.crc);
        done.data.clear();
        self.spare.push(done.data);
        Ok(())
    }
}

impl<W: Write> Write for GzEncoder<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            let take = (BLOCK - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == BLOCK {
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
        self.inner
            .as_mut()
            .expect("writer present until finish")
            .flush()
    }
}

impl<W: Write> Drop for GzEncoder<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker_failed() -> io::Error {
    io::Error::other("a gzip worker thread failed")
}

/// A worker: takes jobs until the encoder goes away.
fn work(queue: &Mutex<Receiver<Job>>, level: u32) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = deflate_block(level, &job.dictionary, &job.data, job.last).map(|deflated| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&job.data);
            Done {
                deflated,
                crc,
                data: job.data,
            }
        });
        // The encoder may be gone (dropped after an error); nothing to report then.
        let _ = job.reply.send(result);
    }
}

/// Raw deflate of `data` after `dictionary`, ended by a sync flush, or as the final block.
///
/// A fresh compressor every block: zlib-rs's `reset` leaves state that changes the next
/// block's bytes, which would make them depend on which worker compressed what.
fn deflate_block(level: u32, dictionary: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let failed = |e: flate2::CompressError| io::Error::other(format!("deflate failed: {e}"));
    let mut deflate = Compress::new(flate2::Compression::new(level), false);
    if !dictionary.is_empty() {
        deflate.set_dictionary(dictionary).map_err(failed)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut used = 0;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = deflate.total_in();
        let status = deflate
            .compress_vec(&data[used..], &mut out, flush)
            .map_err(failed)?;
        used += (deflate.total_in() - before) as usize;
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if !last && used == data.len() && room_left => break,
            Status::Ok | Status::BufError => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::{Command, Stdio};

    use super::*;

    /// Compressible but not trivial: text-like lines with varying numbers.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut x = 0x2545_f491_u32;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.extend_from_slice(format!("entry {} value {}\n", x % 977, x).as_bytes());
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), 6, threads).unwrap();
        // Odd write sizes: block boundaries must not follow them.
        for piece in data.chunks(100_003) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_at_and_around_block_boundaries() {
        for len in [
            0,
            1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK - 1,
            2 * BLOCK,
            2 * BLOCK + 1,
        ] {
            let data = sample(len);
            let blob = gzip(&data, 2);
            assert_eq!(gunzip(&blob), data, "length {len}");
            let trailer = &blob[blob.len() - 8..];
            assert_eq!(trailer[..4], crc32fast::hash(&data).to_le_bytes());
            assert_eq!(trailer[4..], (len as u32).to_le_bytes());
        }
    }

    #[test]
    fn bytes_do_not_depend_on_the_thread_count() {
        let data = sample(5 * BLOCK + 12_345);
        let one = gzip(&data, 1);
        assert!(gzip(&data, 2) == one, "2 threads differ from 1");
        assert!(gzip(&data, 4) == one, "4 threads differ from 1");
        assert!(one.len() < data.len() / 2, "compresses: {}", one.len());
    }

    #[test]
    fn gzip_tool_accepts_the_stream() {
        let data = sample(3 * BLOCK + 7);
        let blob = gzip(&data, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &blob).unwrap();
        let test = Command::new("gzip").arg("-t").arg(&path).status().unwrap();
        assert!(test.success(), "gzip -t rejects the stream");
        let out = Command::new("gzip")
            .args(["-dc"])
            .arg(&path)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn empty_input_is_a_valid_gzip_of_nothing() {
        let blob = gzip(b"", 2);
        assert_eq!(blob[..10], HEADER);
        assert!(gunzip(&blob).is_empty());
        assert_eq!(blob[blob.len() - 8..], [0u8; 8]);
    }
}
