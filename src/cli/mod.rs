//! Command-line front end: one file per subcommand (its arguments and its `run`), shared
//! rendering in [`output`]. The library does the work; nothing here decides a layer byte.

mod build;
mod cache;
mod check;
mod commit;
mod export;
mod extract;
mod ls;
mod output;
mod owner;
mod push;
mod restore;
mod tar;
mod verify;

use clap::{Parser, Subcommand};
use layerize::error::{EXIT_OK, EXIT_USAGE, Result};

/// Reproducible OCI layers from Cloud Native Buildpacks layer directories.
#[derive(Debug, Parser)]
#[command(name = "layerize", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the reproducible layer tar of any directory and print its digests.
    Tar(tar::TarArgs),
    /// Safely extract a layer blob (plain, gzip or zstd tar) into a directory.
    Extract(extract::ExtractArgs),
    /// List the layers of a CNB layers directory.
    Ls(ls::LsArgs),
    /// Check every blob of a store against its digest and every record's blob references.
    Verify(verify::VerifyArgs),
    /// Write an OCI image: run image layers, launch layers in group order, the app dir.
    Export(export::ExportArgs),
    /// Save or restore lifecycle's volume cache (cache = true layers).
    Cache(cache::CacheArgs),
    /// Push an image of an OCI layout to a registry (OCI distribution API).
    Push(push::PushArgs),
    /// Commit a buildpack's layers (tar, record, stat snapshot) right after it ran.
    Commit(commit::CommitArgs),
    /// Compare committed layers to their snapshots after a buildpack ran.
    Check(check::CheckArgs),
    /// Put changed committed layers back to their committed state.
    Restore(restore::RestoreArgs),
    /// Run a buildpack group over a layers dir, layerizing between buildpacks.
    Build(build::BuildArgs),
}

/// Runs the parsed command; the exit code of a run that did not fail.
fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Tar(args) => tar::run(args).map(|()| EXIT_OK),
        Command::Extract(args) => extract::run(args).map(|()| EXIT_OK),
        Command::Ls(args) => ls::run(args).map(|()| EXIT_OK),
        Command::Verify(args) => verify::run(args).map(|()| EXIT_OK),
        Command::Export(args) => export::run(args).map(|()| EXIT_OK),
        Command::Cache(args) => cache::run(args).map(|()| EXIT_OK),
        Command::Push(args) => push::run(args).map(|()| EXIT_OK),
        Command::Commit(args) => commit::run(args).map(|()| EXIT_OK),
        Command::Check(args) => check::run(args).map(|()| EXIT_OK),
        Command::Restore(args) => restore::run(args).map(|()| EXIT_OK),
        Command::Build(args) => build::run(args),
    }
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    layerize::archive::raise_open_file_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("layerize: error: {e}");
            e.exit_code()
        }
    }
}
