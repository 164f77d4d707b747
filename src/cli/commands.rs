//! One function per subcommand: resolve arguments, call the library, render.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use layerize::error::{EXIT_OK, Error, Result};
use layerize::{ExtractOptions, LayersDir, Owner, TarSpec, extract, pipeline};
use serde_json::json;

use super::args::{Cli, Command, ExtractArgs, LsArgs, TarArgs};
use super::output::{self, Progress};

/// Runs the parsed command; returns the exit code for a run that did not fail.
pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Tar(args) => tar(args),
        Command::Extract(args) => extract_blob(args),
        Command::Ls(args) => ls(args),
    }
    .map(|()| EXIT_OK)
}

/// The build user: flags, else `CNB_USER_ID`/`CNB_GROUP_ID`, else root.
fn owner(uid: Option<u64>, gid: Option<u64>) -> Result<Owner> {
    let env = Owner::from_env().map_err(|reason| Error::invalid("<environment>", reason))?;
    Ok(Owner {
        uid: uid.unwrap_or(env.uid),
        gid: gid.unwrap_or(env.gid),
    })
}

fn tar(args: TarArgs) -> Result<()> {
    let owner = owner(args.uid, args.gid)?;
    let meta = std::fs::metadata(&args.dir).map_err(Error::read(&args.dir))?;
    if !meta.is_dir() {
        return Err(Error::invalid(&args.dir, "not a directory"));
    }
    let spec = match &args.prefix {
        Some(prefix) => TarSpec::prefixed(&args.dir, prefix.as_os_str().as_bytes(), owner),
        None => TarSpec::relative(&args.dir, owner),
    };
    let bar = output::bytes_progress("layerizing");
    let (blobs, temp) = match &args.output {
        Some(path) => {
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
            let (blobs, mut writers) = pipeline::layerize(&spec, vec![(args.compression, writer)])?;
            writers
                .pop()
                .expect("one output")
                .flush()
                .map_err(Error::write(path))?;
            (blobs, Some(temp))
        }
        None => {
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
    let blob = &blobs.blobs[0];
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
    }
    Ok(())
}

fn extract_blob(args: ExtractArgs) -> Result<()> {
    let file = File::open(&args.file).map_err(Error::read(&args.file))?;
    let options = ExtractOptions {
        whiteouts: args.whiteouts,
        max_bytes: args.max_bytes,
    };
    let summary = extract(&args.file, file, &args.dir, options)?;
    if args.out.json {
        output::json_line(&json!({
            "file": args.file,
            "dir": args.dir,
            "entries": summary.entries,
            "bytes": summary.bytes,
            "whiteouts": summary.whiteouts,
            "compression": summary.compression,
        }));
    } else {
        println!(
            "extracted {} entries ({} bytes, {}) into {}{}",
            summary.entries,
            summary.bytes,
            summary.compression,
            args.dir.display(),
            if summary.whiteouts > 0 {
                format!(", {} whiteouts applied", summary.whiteouts)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn ls(args: LsArgs) -> Result<()> {
    let layers = LayersDir::open(&args.layers)?.layers()?;
    if args.out.json {
        for layer in &layers {
            output::json_line(&json!({
                "buildpack": layer.buildpack,
                "layer": layer.name,
                "build": layer.toml.types.build,
                "launch": layer.toml.types.launch,
                "cache": layer.toml.types.cache,
                "path": layer.dir,
            }));
        }
        return Ok(());
    }
    if layers.is_empty() {
        println!("no layers in {}", args.layers.display());
        return Ok(());
    }
    let width = layers
        .iter()
        .map(|l| l.key().len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:<width$}  {:<5} {:<6} {:<5}  PATH",
        "LAYER", "BUILD", "LAUNCH", "CACHE"
    );
    let flag = |b: bool| if b { "yes" } else { "-" };
    for layer in &layers {
        let t = layer.toml.types;
        println!(
            "{:<width$}  {:<5} {:<6} {:<5}  {}",
            layer.key(),
            flag(t.build),
            flag(t.launch),
            flag(t.cache),
            layer.dir.display()
        );
    }
    Ok(())
}
