//! Read-only build layers between buildpacks (the RFC "Make build layers read only for
//! subsequent buildpacks"): commit, check, restore, capture.
//!
//! - [`commit()`] runs right after a buildpack: every layer it declared (a toml with `build`,
//!   `launch` or `cache`) becomes a reproducible tar in the [`Store`] (the diffID lifecycle's
//!   exporter computes) plus a stat snapshot taken in the same walk. A layer whose toml bytes,
//!   tar parameters and stat snapshot (times, ctime and inode included) equal its record is a
//!   cache hit: nothing is read but `lstat`. With captured deltas, the expected snapshot is the
//!   last delta's, and a hit keeps them (export ships each on top of the original layer).
//!   `--defer` layers wait for [`finalize`].
//! - [`check`] runs before the next buildpack and at the end: a fresh `lstat` walk of every
//!   committed layer against its snapshot (with `verify_content`, files are re-hashed too),
//!   typed results attributed to the buildpack that just ran, and a [`Policy`]: warn, fail
//!   (exit 3), ignore, or capture the change as a delta layer owned by that buildpack (an OCI
//!   changeset tar with `.wh.` whiteouts, applied after the original; the layer's expected
//!   state then includes it). An adopted layer (below) has no stored tar: under `capture` its
//!   change is reported, not captured. `restore` with `capture` does not restore: the change
//!   is kept, as its delta.
//! - [`restore()`] puts a changed layer back to its committed state, rewriting only what
//!   changed from the stored tars (verified while read), with the original mtimes, then
//!   refreshes the snapshot so the next commit is a cache hit with the same diffID.
//! - [`adopt`] is for a layer restored from cache: it records a snapshot without committing,
//!   so the owner may change the layer until its own commit while any other buildpack's change
//!   is a violation (ownership is counted after restore, as the spike asked). A cache restorer
//!   calls it for every layer it put back, with the cached tar when it knows the tar is the one
//!   a commit would write: the owner's commit of the unchanged layer is then a cache hit that
//!   takes that tar, with no re-tar (the rule is in [`adopt`]'s module).
//!
//! Ownership always comes from the `<escaped-id>` directory of the layer. Every mutation of the
//! store happens under [`Store::lock`].
//!
//! # Examples
//! ```no_run
//! use layerize::guard::{self, CheckOptions, CommitOptions, Policy};
//! use layerize::{BuildpackId, LayersDir};
//!
//! let layers = LayersDir::open("/layers")?;
//! let jdk = BuildpackId::new("paketo-buildpacks/jdk")?;
//! let maven = BuildpackId::new("paketo-buildpacks/maven")?;
//!
//! // After the jdk buildpack: its layers become tars + snapshots in <layers>/.layerize.
//! let report = guard::commit(&layers, &jdk, &CommitOptions::default())?;
//! for layer in &report.layers {
//!     println!("{}:{} {:?} {:?}", layer.owner, layer.layer, layer.outcome, layer.diff_id);
//! }
//!
//! // After the maven buildpack: did it touch the jdk's layers?
//! let options = CheckOptions { policy: Policy::Fail, ..CheckOptions::default() };
//! let check = guard::check(&layers, &maven, &options)?;
//! for change in &check.changed {
//!     println!("{} changed {}:{}: {:?}", change.by, change.owner, change.layer, change.added_paths());
//! }
//! if check.violation() {
//!     guard::restore(&layers, &Default::default())?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adopt;
mod check;
mod commit;
mod delta;
mod restore;

use std::path::PathBuf;

use crate::archive::writer::{ancestor_names, normalize_prefix};
use crate::archive::{Ancestor, TarSpec};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::normalize::{self, DEFAULT_LAYERS_ROOT, Owner};
use crate::store::{LayerRecord, Store};

pub use adopt::adopt;
pub use check::{CheckOptions, CheckReport, LayerChange, Policy, check};
pub use commit::{CommitOptions, CommitOutcome, CommitReport, CommittedLayer, commit, finalize};
pub use restore::{RestoreOptions, RestoreReport, RestoredLayer, restore};

/// Where the guard keeps its store and how it names layers in the image; shared by every
/// operation.
#[derive(Debug, Clone)]
pub struct GuardPaths {
    /// Store directory; `None` means `<layers>/.layerize`.
    pub store: Option<PathBuf>,
    /// In-image path of the layers dir (default `/layers`).
    pub layers_root: String,
    /// Owner written into tar headers (the build user).
    pub owner: Owner,
}

impl Default for GuardPaths {
    fn default() -> Self {
        Self {
            store: None,
            layers_root: DEFAULT_LAYERS_ROOT.to_owned(),
            owner: Owner::default(),
        }
    }
}

impl GuardPaths {
    /// Opens the store (creating it if needed).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_store(&self, layers: &LayersDir) -> Result<Store> {
        match &self.store {
            Some(dir) => Store::open(dir),
            None => Store::open(layers.root().join(".layerize")),
        }
    }

    /// The in-image path of a layer: `<layers-root>/<escaped-id>/<layer>`.
    pub fn image_path(&self, owner: &BuildpackId, layer: &str) -> Vec<u8> {
        let mut path = normalize_prefix(self.layers_root.as_bytes());
        path.push(b'/');
        path.extend_from_slice(owner.escaped().as_bytes());
        path.push(b'/');
        path.extend_from_slice(layer.as_bytes());
        path
    }

    /// The tar spec of a layer, as lifecycle's exporter writes it: ancestors keep the mode and
    /// owner of the real directories they stand for (`<layers-root>` ↔ the layers dir,
    /// `<layers-root>/<escaped-id>` ↔ the buildpack dir; any higher ancestor is 0755 root).
    ///
    /// # Errors
    /// [`Error::Read`] when an ancestor directory cannot be stat'ed.
    pub fn tar_spec(
        &self,
        layers: &LayersDir,
        owner: &BuildpackId,
        layer: &str,
    ) -> Result<TarSpec> {
        let name = self.image_path(owner, layer);
        let names = ancestor_names(&name);
        let real = [layers.root().to_path_buf(), layers.buildpack_dir(owner)];
        // The last ancestors stand for real dirs: the buildpack dir last, the layers dir before.
        let shown = names.len().min(real.len());
        let first_real = names.len() - shown;
        let skip = real.len() - shown;
        let mut ancestors = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let (mode, dir_owner) = match i.checked_sub(first_real) {
                Some(k) => {
                    let path = &real[skip + k];
                    let meta = std::fs::metadata(path).map_err(Error::read(path))?;
                    (normalize::mode(&meta), Owner::of(&meta))
                }
                None => (0o755, Owner::default()),
            };
            ancestors.push(Ancestor {
                name,
                mode,
                owner: dir_owner,
            });
        }
        Ok(TarSpec {
            dir: layers.buildpack_dir(owner).join(layer),
            name: Some(name),
            ancestors,
            owner: self.owner,
            hash_files: true,
        })
    }
}

/// A digest of everything but the tree that decides a layer's tar bytes (name, ancestors,
/// owner): a commit cache hit needs it unchanged.
fn spec_digest(spec: &TarSpec) -> Digest {
    let mut text = format!(
        "name={}\nowner={}:{}\n",
        String::from_utf8_lossy(spec.name.as_deref().unwrap_or_default()),
        spec.owner.uid,
        spec.owner.gid
    );
    for a in &spec.ancestors {
        text.push_str(&format!(
            "ancestor={} {:o} {}:{}\n",
            String::from_utf8_lossy(&a.name),
            a.mode,
            a.owner.uid,
            a.owner.gid
        ));
    }
    Digest::of_bytes(text.as_bytes())
}

/// The record holding the state a committed layer is expected in: its last captured delta,
/// else its own; `all` is every record of the store.
fn latest_record<'a>(all: &'a [LayerRecord], record: &'a LayerRecord) -> &'a LayerRecord {
    all.iter()
        .filter_map(|r| Some((r, r.delta_of.as_ref()?)))
        .filter(|(_, of)| of.owner == record.owner && of.layer == record.layer)
        .max_by_key(|(_, of)| of.seq)
        .map_or(record, |(r, _)| r)
}

/// The snapshot digest of a record; every record this version writes has one.
fn snapshot_digest<'a>(store: &Store, record: &'a LayerRecord) -> Result<&'a Digest> {
    record.snapshot.as_ref().ok_or_else(|| {
        Error::invalid(
            store.root(),
            format!(
                "record of {}:{} has no snapshot (written by an older layerize?)",
                record.owner, record.layer
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ancestors_take_mode_and_owner_of_the_real_dirs_they_stand_for() {
        let tmp = tempfile::tempdir().unwrap();
        let id = BuildpackId::new("acme/jdk").unwrap();
        let bp = tmp.path().join("acme_jdk");
        std::fs::create_dir_all(bp.join("jre")).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&bp, std::fs::Permissions::from_mode(0o750)).unwrap();
        let layers = LayersDir::open(tmp.path()).unwrap();
        let me = Owner::of(&std::fs::metadata(&bp).unwrap());
        let paths = GuardPaths {
            layers_root: "/opt/cnb/layers/".to_owned(),
            owner: Owner {
                uid: 1000,
                gid: 1001,
            },
            ..GuardPaths::default()
        };
        let spec = paths.tar_spec(&layers, &id, "jre").unwrap();
        assert_eq!(
            spec.name.as_deref(),
            Some(&b"/opt/cnb/layers/acme_jdk/jre"[..])
        );
        let got: Vec<(String, u32, Owner)> = spec
            .ancestors
            .iter()
            .map(|a| (String::from_utf8(a.name.clone()).unwrap(), a.mode, a.owner))
            .collect();
        let root = Owner::default();
        assert_eq!(
            got,
            [
                ("/opt".to_owned(), 0o755, root),
                ("/opt/cnb".to_owned(), 0o755, root),
                ("/opt/cnb/layers".to_owned(), 0o711, me),
                ("/opt/cnb/layers/acme_jdk".to_owned(), 0o750, me),
            ]
        );
        assert_eq!(
            spec.owner,
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert!(spec.hash_files);
    }
}
