//! What each stage of layer creation costs on its own, for `bench/run`'s floors: the CPU time
//! of reading a tree, and of hashing and of each compressor over its tar already in memory,
//! each with no other stage competing. A layer cannot be written in less CPU than the sum of
//! its stages, so that sum over the cores is a floor for the wall time of `layerize tar` on the
//! same tree. Each stage runs three times and the cheapest run counts: on a shared machine,
//! anything else running only adds time.
//!
//! Usage: `cargo bench --bench stage_costs -- TREE TAR`, TAR being TREE's tar. Prints
//! tab-separated `tar  stage  cpu_seconds  wall_seconds  bytes` (read or hashed, or written by
//! a compressor):
//! - `read`: walking TREE and reading every regular file, one thread, with the fewest system
//!   calls a reader can make (listing each directory, then `openat` relative to it, `fstat`,
//!   `read`, `close` per file; no change check, no tar);
//! - `sha256`: the diffID, one thread (it is one stream);
//! - `libdeflate-N`: libdeflate level N alone on 1 MiB blocks (no joining);
//! - `libdeflate-5/1`: the same at the levels layerize picks: 5, and 1 for blocks that look
//!   already compressed ([`layerize::compress::gzip::looks_compressed`]);
//! - `layerize-gzip`: layerize's gzip encoder (those levels, blocks joined into one stream,
//!   CRC);
//! - `zstd-3`: libzstd level 3 in 4 MiB frames with a 4 MiB window (layerize's zstd);
//! - `zstd-...`: cheaper zstd parameter sets on the same frames, for their sizes.
//!
//! The compressors run on as many threads as `layerize tar` uses (one per core), in the same
//! block sizes.

use std::fs::File;
use std::io::Write;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// layerize's own block sizes, levels and window, so the stages follow the product.
use layerize::compress::gzip::{BLOCK as DEFLATE_BLOCK, COMPRESSED_DATA_LEVEL, looks_compressed};
use layerize::compress::zstd::{BLOCK as ZSTD_FRAME, WINDOW_LOG};
use layerize::compress::{Compression, GZIP_LEVEL, ZSTD_LEVEL};
use rustix::fs::{FileType, Mode, OFlags, RawDir, openat};
use sha2::{Digest, Sha256};
use zstd::zstd_safe::{CParameter, Strategy};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [tree, tar] = &args[..] else {
        panic!("usage: stage_costs TREE TAR");
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = |stage: &str, (cpu, wall, bytes): (Duration, Duration, usize)| {
        println!(
            "{tar}\t{stage}\t{:.3}\t{:.3}\t{bytes}",
            cpu.as_secs_f64(),
            wall.as_secs_f64()
        );
    };
    report("read", measure(|| read_tree(Path::new(tree))));
    let data = std::fs::read(tar).unwrap_or_else(|e| panic!("{tar}: {e}"));
    report("sha256", measure(|| sha256(&data)));
    for level in [4, 5] {
        let stage = format!("libdeflate-{level}");
        report(&stage, measure(|| libdeflate(&data, level, threads, false)));
    }
    report(
        "libdeflate-5/1",
        measure(|| libdeflate(&data, GZIP_LEVEL as i32, threads, true)),
    );
    report("layerize-gzip", measure(|| layerize_gzip(&data)));
    for (stage, params) in zstd_sets() {
        report(stage, measure(|| zstd_frames(&data, params, threads)));
    }
}

/// Times each stage runs.
const RUNS: usize = 3;

/// The CPU time of this process (all threads) and the wall time of the cheapest of [`RUNS`]
/// runs of `run`, and what it returned.
fn measure(mut run: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    (0..RUNS)
        .map(|_| {
            let (cpu, wall) = (process_cpu(), Instant::now());
            let bytes = run();
            (process_cpu() - cpu, wall.elapsed(), bytes)
        })
        .min()
        .expect("at least one run")
}

fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to fill.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(ret, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Reads every regular file below `root`; the bytes read.
fn read_tree(root: &Path) -> usize {
    let dir = File::open(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    // Large files stream through 1 MiB, as in `layerize tar`.
    let (mut listing, mut content) = (vec![MaybeUninit::uninit(); 64 << 10], vec![0; 1 << 20]);
    read_dir(&dir, &mut listing, &mut content)
}

fn read_dir(dir: &File, listing: &mut [MaybeUninit<u8>], content: &mut [u8]) -> usize {
    let mut entries = Vec::new();
    let mut raw = RawDir::new(dir, listing);
    while let Some(entry) = raw.next() {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if name != c"." && name != c".." {
            entries.push((name.to_owned(), entry.file_type()));
        }
    }
    let mut bytes = 0;
    for (name, kind) in entries {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match kind {
            FileType::Directory => {
                let sub = openat(dir, &name, flags | OFlags::DIRECTORY, Mode::empty());
                bytes += read_dir(&File::from(sub.expect("a directory")), listing, content);
            }
            FileType::RegularFile => {
                let file = File::from(openat(dir, &name, flags, Mode::empty()).expect("a file"));
                let mut left = file.metadata().expect("fstat").len() as usize;
                while left > 0 {
                    let want = left.min(content.len());
                    match rustix::io::read(&file, &mut content[..want]).expect("read") {
                        0 => break,
                        n => (bytes, left) = (bytes + n, left - n),
                    }
                }
            }
            _ => {}
        }
    }
    bytes
}

/// Hashes `data`; the bytes hashed.
fn sha256(data: &[u8]) -> usize {
    std::hint::black_box(Sha256::digest(data));
    data.len()
}

/// Runs `compress` over the `block`-sized pieces of `data` on `threads` threads; the summed
/// output sizes.
fn blocks(
    data: &[u8],
    block: usize,
    threads: usize,
    compress: impl Fn() -> Box<dyn FnMut(&[u8]) -> usize> + Sync,
) -> usize {
    let pieces: Vec<&[u8]> = data.chunks(block).collect();
    let (next, total) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut one = compress();
                while let Some(piece) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) {
                    total.fetch_add(one(piece), Ordering::Relaxed);
                }
            });
        }
    });
    total.into_inner()
}

/// libdeflate over 1 MiB blocks at `level`; if `adaptive`, at level 1 for blocks that look
/// already compressed, as layerize does.
fn libdeflate(data: &[u8], level: i32, threads: usize, adaptive: bool) -> usize {
    blocks(data, DEFLATE_BLOCK, threads, || {
        let compressor = |level| {
            libdeflater::Compressor::new(
                libdeflater::CompressionLvl::new(level).expect("a libdeflate level"),
            )
        };
        let (mut asked, mut fast) = (compressor(level), compressor(COMPRESSED_DATA_LEVEL));
        let mut out = vec![0; asked.deflate_compress_bound(DEFLATE_BLOCK)];
        Box::new(move |piece| {
            let compressor = if adaptive && looks_compressed(piece) {
                &mut fast
            } else {
                &mut asked
            };
            compressor
                .deflate_compress(piece, &mut out)
                .expect("deflate")
        })
    })
}

fn layerize_gzip(data: &[u8]) -> usize {
    let mut encoder = Compression::Gzip.encoder(Vec::new()).expect("an encoder");
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory").len()
}

/// Named zstd parameter sets, each on top of level 3 with a 4 MiB window.
fn zstd_sets() -> Vec<(&'static str, &'static [CParameter])> {
    use CParameter::{ChainLog, HashLog, Strategy as Strat};
    vec![
        ("zstd-3", &[]),
        ("zstd-3-hash16", &[HashLog(16), ChainLog(15)]),
        (
            "zstd-fast-hash17",
            &[Strat(Strategy::ZSTD_fast), HashLog(17)],
        ),
    ]
}

fn zstd_frames(data: &[u8], params: &'static [CParameter], threads: usize) -> usize {
    blocks(data, ZSTD_FRAME, threads, || {
        let mut frames = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context");
        frames
            .set_parameter(CParameter::WindowLog(WINDOW_LOG))
            .expect("window");
        for &param in params {
            frames.set_parameter(param).expect("a zstd parameter");
        }
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(ZSTD_FRAME));
        Box::new(move |piece| {
            out.clear();
            frames.compress_to_buffer(piece, &mut out).expect("zstd")
        })
    })
}
