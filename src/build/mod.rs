//! Running a buildpack group the way lifecycle's builder does, with layerization between
//! buildpacks.
//!
//! For each buildpack of `group.toml`, in order:
//! 1. `<layers>/<escaped-id>/` is created and an empty plan toml written (there is no detect
//!    phase here, so the plan has no entries);
//! 2. its `bin/build` runs (see [`exec`]) in the environment the earlier buildpacks' build
//!    layers provide (see [`env`](mod@env)); its output is passed on line by line; a non-zero
//!    exit stops the build with [`Error::BuildpackFailed`];
//! 3. as lifecycle does, a layer whose types are all false is renamed `<layer>.ignore`, then the
//!    buildpack's `build = true` layers are added to the environment of the next ones;
//! 4. its layers are committed and every committed layer is checked, changes attributed to it
//!    (see [`layerization`]); under policy `fail` a change stops the build with
//!    [`Error::Violation`].
//!
//! After the last buildpack, deferred layers are committed. Times spent in buildpacks and in
//! layerization are measured apart, so the cost of layerization is visible.
//!
//! With a volume cache, its layers are restored before the first buildpack; with an export
//! target, the image is exported after the final commit, then the cache is saved (see
//! [`deliver`]).
//!
//! What this module does not own: reading and writing layers (the layers-dir model and the
//! archive), and how layers are committed, compared and restored ([`crate::guard`]).

pub mod deliver;
pub mod env;
pub mod exec;
pub mod group;
pub mod layerization;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use deliver::{Delivered, ExportTarget};
pub use env::BuildEnv;
pub use exec::Stream;
pub use group::{Buildpack, BuildpackApi, GroupEntry};
pub use layerization::{AfterBuildpack, Finished, LayerSummary, LayerizeOptions};

use crate::error::{Error, Result};
use crate::layers_dir::{Layer, LayersDir};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The app dir: cwd of every `bin/build`.
    pub app: PathBuf,
    /// Where buildpacks live: `<buildpacks>/<escaped-id>/<version>/`.
    pub buildpacks: PathBuf,
    /// `group.toml`.
    pub group: PathBuf,
    /// The layers dir (created if missing).
    pub layers: PathBuf,
    /// The platform dir; `None` gives the buildpacks an empty one.
    pub platform: Option<PathBuf>,
    /// The base environment (see [`BuildEnv::base`]).
    pub env: BuildEnv,
    /// Store, policy and deferred layers of the layerization between buildpacks.
    pub layerize: LayerizeOptions,
    /// The volume cache to restore before the first buildpack and save at the end.
    pub cache_dir: Option<PathBuf>,
    /// Where to export the image after the final commit.
    pub export: Option<ExportTarget>,
}

/// Progress of a build, in order, for a caller to render.
#[derive(Debug)]
pub enum Event<'a> {
    /// A buildpack is about to run (`index` counts from 0).
    Started {
        /// The buildpack.
        buildpack: &'a Buildpack,
        /// Its place in the group.
        index: usize,
        /// Buildpacks in the group.
        total: usize,
    },
    /// A line (without its newline) the buildpack wrote.
    Output {
        /// The buildpack.
        buildpack: &'a Buildpack,
        /// stdout or stderr.
        stream: Stream,
        /// The bytes.
        line: &'a [u8],
    },
    /// The buildpack's `bin/build` succeeded; its layers are being layerized.
    Layerizing {
        /// The buildpack.
        buildpack: &'a Buildpack,
    },
    /// The buildpack and the layerization after it are done.
    Finished {
        /// What it did.
        run: &'a BuildpackRun,
    },
}

/// One buildpack's part of a build.
#[derive(Debug, Clone)]
pub struct BuildpackRun {
    /// The buildpack.
    pub buildpack: Buildpack,
    /// Wall time of its `bin/build`.
    pub elapsed: Duration,
    /// Layers renamed to `<layer>.ignore` (all types false).
    pub ignored: Vec<String>,
    /// Its commit, and the check that attributes changes to it.
    pub layerized: AfterBuildpack,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// One per buildpack, in group order.
    pub runs: Vec<BuildpackRun>,
    /// The finalize after the last buildpack, and the store's records at the end.
    pub finished: Finished,
    /// Total wall time in buildpacks' `bin/build`.
    pub buildpack_time: Duration,
    /// Total wall time in commit, check, restore, capture and finalize.
    pub layerize_time: Duration,
    /// The cache restore, export and cache save, those asked for.
    pub delivered: Delivered,
    /// Wall time of the cache restore, export and cache save.
    pub deliver_time: Duration,
}

/// Runs the group of `opts`, reporting progress to `on_event`.
///
/// # Errors
/// [`Error::UnknownBuildpack`] / [`Error::Invalid`] for a group or buildpack that cannot be
/// used (nothing runs then); [`Error::NoBuildExecutable`] and [`Error::BuildpackFailed`] stop
/// the build at that buildpack; [`Error::Invalid`] for a layer toml a buildpack wrote wrong;
/// [`Error::Violation`] when a buildpack changed a committed layer under policy `fail` (its
/// run, with the check, was reported to `on_event` first); [`Error::Read`] / [`Error::Write`]
/// for the directories involved and the store.
pub fn build(opts: &BuildOptions, on_event: &mut dyn FnMut(Event<'_>)) -> Result<BuildReport> {
    let group = group::read_group(&opts.group)?;
    let buildpacks = group::resolve(&opts.buildpacks, &group)?;
    let app = existing_dir(&opts.app, "app dir")?;
    fs::create_dir_all(&opts.layers).map_err(Error::write(&opts.layers))?;
    let layers = LayersDir::open(existing_dir(&opts.layers, "layers dir")?)?;
    deliver::check_store(
        layers.root(),
        opts.layerize.paths.store.as_deref(),
        opts.cache_dir.is_some() || opts.export.is_some(),
    )?;
    let started = Instant::now();
    let restored = deliver::restore(&layers, opts.cache_dir.as_ref())?;
    let mut deliver_time = started.elapsed();
    let scratch = tempfile::Builder::new()
        .prefix("layerize-build-")
        .tempdir()
        .map_err(Error::write(std::env::temp_dir()))?;
    let platform = match &opts.platform {
        Some(dir) => existing_dir(dir, "platform dir")?,
        None => {
            let dir = scratch.path().join("platform");
            fs::create_dir(&dir).map_err(Error::write(&dir))?;
            dir
        }
    };
    let mut env = opts.env.clone();
    let mut runs: Vec<BuildpackRun> = Vec::new();
    let (mut buildpack_time, mut layerize_time) = (Duration::ZERO, Duration::ZERO);
    for (index, bp) in buildpacks.iter().enumerate() {
        on_event(Event::Started {
            buildpack: bp,
            index,
            total: buildpacks.len(),
        });
        let started = Instant::now();
        run_one(bp, &app, &layers, &platform, scratch.path(), &env, on_event)?;
        let elapsed = started.elapsed();
        let (kept, ignored) = settle_layers(&layers, bp)?;
        for layer in kept.iter().filter(|l| l.toml.types.build) {
            env.add_build_layer(&layer.dir)?;
        }
        on_event(Event::Layerizing { buildpack: bp });
        let layerized = layerization::after_buildpack(&layers, &bp.id, &opts.layerize)?;
        buildpack_time += elapsed;
        layerize_time += layerized.elapsed;
        let run = BuildpackRun {
            buildpack: bp.clone(),
            elapsed,
            ignored,
            layerized,
        };
        on_event(Event::Finished { run: &run });
        if run.layerized.check.violation() {
            return Err(Error::Violation {
                count: run.layerized.check.changed.len(),
                by: bp.id.to_string(),
            });
        }
        runs.push(run);
    }
    let finished = layerization::finish(&layers, &opts.layerize)?;
    layerize_time += finished.elapsed;
    let started = Instant::now();
    let delivered = deliver::finish(
        &layers,
        &app,
        &opts.group,
        opts.layerize.paths.owner,
        opts.export.as_ref(),
        opts.cache_dir.as_ref(),
        restored,
    )?;
    deliver_time += started.elapsed();
    Ok(BuildReport {
        runs,
        finished,
        buildpack_time,
        layerize_time,
        delivered,
        deliver_time,
    })
}

/// Prepares the buildpack's layers dir and plan, then runs its `bin/build`.
fn run_one(
    bp: &Buildpack,
    app: &Path,
    layers: &LayersDir,
    platform: &Path,
    scratch: &Path,
    env: &BuildEnv,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    let bp_layers = layers.buildpack_dir(&bp.id);
    fs::create_dir_all(&bp_layers).map_err(Error::write(&bp_layers))?;
    let plan_dir = scratch.join("plans").join(bp.id.escaped());
    fs::create_dir_all(&plan_dir).map_err(Error::write(&plan_dir))?;
    let plan = plan_dir.join("plan.toml");
    fs::write(&plan, "").map_err(Error::write(&plan))?;
    let dirs = exec::Dirs {
        app,
        bp_layers: &bp_layers,
        platform,
        plan: &plan,
    };
    let invocation = exec::invocation(bp, dirs, env)?;
    exec::run(bp, &invocation, &mut |stream, line| {
        on_event(Event::Output {
            buildpack: bp,
            stream,
            line,
        })
    })
}

/// Lifecycle's processing after a buildpack: a layer with all types false becomes
/// `<layer>.ignore` (a stale `.ignore` from an earlier build is replaced). Returns the layers
/// that stay and the names of those set aside.
fn settle_layers(layers: &LayersDir, bp: &Buildpack) -> Result<(Vec<Layer>, Vec<String>)> {
    let mut kept = Vec::new();
    let mut ignored = Vec::new();
    for layer in layers.layers_of(&bp.id)? {
        if layer.toml.types.any() {
            kept.push(layer);
            continue;
        }
        let mut target = layer.dir.clone().into_os_string();
        target.push(".ignore");
        let target = PathBuf::from(target);
        if !layer.dir.exists() {
            continue;
        }
        if target.exists() {
            fs::remove_dir_all(&target).map_err(Error::write(&target))?;
        }
        fs::rename(&layer.dir, &target).map_err(Error::write(&layer.dir))?;
        ignored.push(layer.name);
    }
    Ok((kept, ignored))
}

/// `dir` as an absolute path, if it is a directory.
fn existing_dir(dir: &Path, what: &str) -> Result<PathBuf> {
    let meta = fs::metadata(dir).map_err(Error::read(dir))?;
    if !meta.is_dir() {
        return Err(Error::invalid(dir, format!("{what} is not a directory")));
    }
    std::path::absolute(dir).map_err(Error::read(dir))
}
