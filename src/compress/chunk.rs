//! Chunks of a stream shared without copying: the writer of a layer fills a buffer once, then
//! the diffID hasher and every compressor read that same buffer ([`super::blocks`] hands whole
//! blocks of it to its workers), and the last one done gives it back to its pool for the next
//! chunk. So the tar bytes are copied once, into the chunk, whatever the number of outputs,
//! and no chunk is allocated twice: the pool holds at most the chunks that were in flight at
//! once.

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

/// Buffers of `capacity` bytes, handed back by the [`Chunk`]s made of them.
#[derive(Debug)]
pub struct ChunkPool {
    spare: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
}

impl ChunkPool {
    /// A pool of buffers of `capacity` bytes.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            spare: Mutex::new(Vec::new()),
            capacity,
        })
    }

    /// The capacity of the pool's buffers: how many bytes a chunk holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// An empty buffer to fill: a spare one, or a new one.
    pub fn buffer(&self) -> Vec<u8> {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Shares the filled `bytes` (from [`ChunkPool::buffer`]); they come back to the pool when
    /// the last holder drops them.
    pub fn share(self: &Arc<Self>, bytes: Vec<u8>) -> Arc<Chunk> {
        Arc::new(Chunk {
            bytes,
            pool: Arc::clone(self),
        })
    }
}

/// Bytes of a stream, read-only and shared; see the module doc.
#[derive(Debug)]
pub struct Chunk {
    bytes: Vec<u8>,
    pool: Arc<ChunkPool>,
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        self.pool
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_the_last_holder_drops_it() {
        let pool = ChunkPool::new(16);
        let mut bytes = pool.buffer();
        bytes.extend_from_slice(b"abc");
        let address = bytes.as_ptr();
        let chunk = pool.share(bytes);
        let held = Arc::clone(&chunk);
        drop(chunk);
        assert_eq!(&**held, b"abc");
        assert_eq!(pool.spare.lock().unwrap().len(), 0, "still held");
        drop(held);
        let again = pool.buffer();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same buffer, reused");
        assert!(again.capacity() >= 16);
    }
}
