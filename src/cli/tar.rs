//! `layerize tar`: the reproducible layer of any directory, with its digests.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;
use layerize::error::{Error, Result};
use layerize::store::StoreLock;
use layerize::{Compression, Store, TarSpec, pipeline};
use serde_json::json;

use super::output::{self, OutputArgs, Progress};
use super::owner::OwnerArgs;

/// `layerize tar`.
#[derive(Debug, Args)]
pub struct TarArgs {
    /// Directory to archive.
    pub dir: PathBuf,
    /// In-image path of DIR (e.g. /layers/example_runtime/rt); without it, names are relative
    /// to DIR and DIR itself is not written.
    #[arg(long)]
    pub prefix: Option<PathBuf>,
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Compression of the written blob.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Where to write the blob; without it only digests are computed.
    #[arg(long, short, conflicts_with = "store")]
    pub output: Option<PathBuf>,
    /// Put the blobs (the plain tar and the --compression one) into this content-addressed
    /// store instead, holding its lock.
    #[arg(long)]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The build user: flags, else `CNB_USER_ID`/`CNB_GROUP_ID`, else root.
pub fn run(args: TarArgs) -> Result<()> {
    let owner = args.owner.owner()?;
    let meta = std::fs::metadata(&args.dir).map_err(Error::read(&args.dir))?;
    if !meta.is_dir() {
        return Err(Error::invalid(&args.dir, "not a directory"));
    }
    let spec = match &args.prefix {
        Some(prefix) => TarSpec::prefixed(&args.dir, prefix.as_os_str().as_bytes(), owner),
        None => TarSpec::relative(&args.dir, owner),
    };
    let bar = output::bytes_progress("layerizing");
    let (blobs, temp) = match (&args.output, &args.store) {
        (_, Some(root)) => {
            let store = Store::open(root)?;
            let _lock = lock_store(&store)?;
            let blobs = store
                .put_layer(&spec, &[args.compression], &mut |_| {})
                .map_err(|e| name_output(e, &store.root().join("tmp")))?;
            (blobs, None)
        }
        (Some(path), None) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let temp = tempfile::Builder::new()
                .prefix(".layerize-")
                .tempfile_in(dir)
                .map_err(Error::write(path))?;
            let file =
                io::BufWriter::with_capacity(1 << 20, temp.reopen().map_err(Error::write(path))?);
            let writer: Box<dyn Write> = Box::new(Progress {
                inner: file,
                bar: bar.clone(),
            });
            let (blobs, mut writers) = pipeline::layerize(&spec, vec![(args.compression, writer)])
                .map_err(|e| name_output(e, path))?;
            writers
                .pop()
                .expect("one output")
                .flush()
                .map_err(Error::write(path))?;
            (blobs, Some(temp))
        }
        (None, None) => {
            let writer: Box<dyn Write> = Box::new(Progress {
                inner: io::sink(),
                bar: bar.clone(),
            });
            (
                pipeline::layerize(&spec, vec![(args.compression, writer)])?.0,
                None,
            )
        }
    };
    bar.finish_and_clear();
    if let (Some(temp), Some(path)) = (temp, &args.output) {
        temp.as_file().sync_all().map_err(Error::write(path))?;
        temp.persist(path).map_err(|e| Error::Write {
            path: path.clone(),
            source: e.error,
        })?;
    }
    for skipped in &blobs.summary.skipped {
        output::warn(format_args!(
            "{}: {} skipped (not allowed in a layer)",
            skipped.path.display(),
            skipped.kind
        ));
    }
    let blob = blobs
        .blobs
        .iter()
        .find(|b| b.compression == args.compression)
        .expect("a blob in the requested compression");
    if args.out.json {
        output::json_line(&json!({
            "diff_id": blobs.diff_id,
            "digest": blob.digest,
            "size": blob.size,
            "media_type": blob.media_type,
            "files": blobs.summary.entries,
        }));
    } else {
        println!("diff_id     {}", blobs.diff_id);
        println!("digest      {}", blob.digest);
        println!(
            "size        {} bytes ({}, tar {} bytes)",
            blob.size, blob.compression, blobs.tar_size
        );
        println!("media_type  {}", blob.media_type);
        println!("files       {}", blobs.summary.entries);
        if let Some(path) = &args.output {
            println!("written to  {}", path.display());
        }
        if let Some(store) = &args.store {
            println!("stored in   {}", store.display());
        }
    }
    Ok(())
}

/// Takes the store's lock, saying on stderr when it has to wait for another process.
fn lock_store(store: &Store) -> Result<StoreLock> {
    if let Some(lock) = store.try_lock()? {
        return Ok(lock);
    }
    output::warn(format_args!(
        "waiting for the lock of store {} (held by another process)",
        store.root().display()
    ));
    store.lock()
}

/// Names the file behind the pipeline's `<output>` in a write error.
fn name_output(error: Error, path: &Path) -> Error {
    match error {
        Error::Write { path: p, source } if p == Path::new("<output>") => Error::Write {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    }
}
