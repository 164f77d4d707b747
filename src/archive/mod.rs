//! Layer archives: the reproducible tar writer (Go `archive/tar` byte format, lifecycle's walk
//! and normalization) and safe extraction.

mod checked_read;
pub mod extract;
pub mod header;
mod readahead;
mod walk;
pub mod writer;

pub use extract::{ExtractOptions, ExtractSummary, extract};
pub use walk::raise_open_file_limit;
pub use writer::{
    Ancestor, Skipped, TarSpec, TarSummary, WalkedEntry, write_tar, write_tar_observed,
};
pub(crate) use writer::{reader_threads, write_tar_read_by};
