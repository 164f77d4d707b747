//! # layerize
//!
//! Turns Cloud Native Buildpacks layer directories into reproducible OCI tar layers whose
//! diffIDs equal the ones lifecycle's exporter computes, stores them content-addressed, and
//! keeps build layers read-only in effect between buildpacks.
//!
//! The pipeline, one module per stage:
//!
//! | stage | module |
//! |---|---|
//! | the CNB layers dir: ids, layer tomls, owners | [`layers_dir`] |
//! | lifecycle's normalization rules | [`normalize`] |
//! | reproducible tar (Go `archive/tar` bytes) and safe extraction | [`archive`] |
//! | digests, hashing writer, verifying reader | [`digest`] |
//! | gzip / zstd, deterministic | [`compress`] |
//! | one pass: tar → diffID + compressed blobs | [`pipeline`] |
//! | content-addressed store and layer records | [`store`] |
//! | whole-store verification (blobs, record references) | [`verify`] |
//! | a layer's committed tar and its compressed blobs | [`layer_blob`] |
//! | OCI image layout directories | [`oci_layout`] |
//! | export: committed layers to an OCI image | [`export`](mod@export) |
//! | lifecycle's volume cache: save and restore | [`cache`] |
//! | push to a registry (OCI distribution API) | [`registry`] |
//! | stat snapshots of layer dirs and their diff | [`snapshot`] |
//! | read-only build layers: commit, check, restore, capture | [`guard`] |
//! | running a buildpack group (lifecycle's builder) | [`build`] |
//!
//! ```no_run
//! use layerize::{Compression, Owner, TarSpec, pipeline};
//!
//! // The diffID lifecycle would give /layers/example_runtime/rt, and a gzip blob of it.
//! let spec = TarSpec::prefixed("layers/example_runtime/rt", b"/layers/example_runtime/rt", Owner { uid: 1000, gid: 1000 });
//! let out = std::fs::File::create("rt.tar.gz")?;
//! let (blobs, _) = pipeline::layerize(&spec, vec![(Compression::Gzip, out)])?;
//! println!("{} {}", blobs.diff_id, blobs.blobs[0].digest);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod blob_file;
pub mod build;
pub mod cache;
pub mod compress;
pub mod digest;
pub mod error;
pub mod export;
pub mod guard;
pub mod layer_blob;
pub mod layers_dir;
pub mod normalize;
pub mod oci_layout;
pub mod pipeline;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod verify;

pub use archive::{
    Ancestor, ExtractOptions, ExtractSummary, Skipped, TarSpec, TarSummary, extract, write_tar,
};
pub use build::{BuildEnv, BuildOptions, BuildReport, Buildpack, BuildpackRun};
pub use compress::Compression;
pub use digest::Digest;
pub use error::{Error, Result};
pub use export::{ExportOptions, ExportReport, export};
pub use guard::{
    CheckOptions, CheckReport, CommitOptions, CommitOutcome, CommitReport, GuardPaths, LayerChange,
    Policy, RestoreOptions, RestoreReport, adopt, check, commit, finalize, restore,
};
pub use layers_dir::{BuildpackId, Layer, LayerToml, LayerTypes, LayersDir};
pub use normalize::Owner;
pub use oci_layout::{ImageLayout, LayoutRef};
pub use pipeline::{BlobInfo, LayerBlobs};
pub use snapshot::{Changes, Snapshot, What};
pub use store::{AdoptedTar, Adoption, Deferred, DeltaOf, LayerRecord, Store};
