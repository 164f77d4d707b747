//! The guard through its library API, as a build driver or a cache restorer calls it:
//! adoption of cache-restored layers, and `verify_content` for changes stat cannot see.

mod common;

use std::path::Path;

use common::*;
use layerize::guard::{self, CheckOptions, CommitOptions, CommitOutcome, GuardPaths};
use layerize::{BuildpackId, LayersDir, Snapshot, Store, What};

fn id(s: &str) -> BuildpackId {
    BuildpackId::new(s).unwrap()
}

fn setup(tmp: &Path) -> LayersDir {
    let root = tmp.join("layers");
    make_lifecycle_fixture(&root, "plain");
    LayersDir::open(root).unwrap()
}

#[test]
fn an_adopted_layer_may_change_by_its_owner_but_not_by_another_buildpack() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = setup(tmp.path());
    let owner = id("example/runtime");
    let rt = layers.buildpack_dir(&owner).join("rt");
    guard::adopt(&layers, &owner, "rt", &GuardPaths::default(), None).unwrap();

    // The owner runs and changes its restored layer: not a violation.
    std::fs::write(rt.join("a.c"), "changed by its owner").unwrap();
    let by_owner = guard::check(&layers, &owner, &CheckOptions::default()).unwrap();
    assert!(by_owner.changed.is_empty(), "{:?}", by_owner.changed);

    // Another buildpack's change is reported, as adopted, to that buildpack.
    let other = id("later/bp");
    std::fs::write(rt.join("by-other"), "x").unwrap();
    let report = guard::check(&layers, &other, &CheckOptions::default()).unwrap();
    assert_eq!(report.changed.len(), 1);
    let change = &report.changed[0];
    assert!(change.adopted);
    assert_eq!(change.by, other);
    assert_eq!(change.added_paths(), ["by-other"]);
    assert_eq!(change.modified_paths(), ["a.c"]);

    // The owner's commit turns the adoption into a committed record.
    let commit = guard::commit(&layers, &owner, &CommitOptions::default()).unwrap();
    assert_eq!(commit.layers[0].outcome, CommitOutcome::Committed);
    let store = GuardPaths::default().open_store(&layers).unwrap();
    assert!(store.adoptions().unwrap().is_empty());
    assert!(
        guard::check(&layers, &other, &CheckOptions::default())
            .unwrap()
            .changed
            .is_empty()
    );
}

/// Makes the stored snapshot agree with the current `lstat` of `rel` while keeping its old
/// content digest: what a change made with the clock set back looks like to the stat tier.
fn forge_stat(store: &Store, owner: &BuildpackId, dir: &Path, rel: &str) {
    let mut record = store.record(owner, "rt").unwrap().unwrap();
    let mut snapshot = Snapshot::load(store, record.snapshot.as_ref().unwrap()).unwrap();
    let fresh = Snapshot::walk(dir).unwrap().unwrap();
    for (old, new) in snapshot.entries.iter_mut().zip(&fresh.entries) {
        if new.path == rel.as_bytes() {
            let content = old.content.clone();
            *old = new.clone();
            old.content = content;
        }
    }
    record.snapshot = Some(snapshot.save(store).unwrap());
    store.put_record(&record).unwrap();
}

#[test]
fn verify_content_catches_what_stat_misses_and_clears_a_mere_touch() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = setup(tmp.path());
    let owner = id("example/runtime");
    let rt = layers.buildpack_dir(&owner).join("rt");
    guard::commit(&layers, &owner, &CommitOptions::default()).unwrap();
    let store = GuardPaths::default().open_store(&layers).unwrap();

    std::fs::write(rt.join("a/b"), "Q").unwrap();
    forge_stat(&store, &owner, &rt, "a/b");
    sh(&format!("touch -d '2001-01-01' {}/a.c", rt.display()));
    let later = id("later/bp");

    let stat_only = guard::check(&layers, &later, &CheckOptions::default()).unwrap();
    let modified = &stat_only.changed[0].changes.modified;
    assert_eq!(modified.len(), 1, "{modified:?}");
    assert_eq!(
        (modified[0].path.as_slice(), &modified[0].what[..]),
        (&b"a.c"[..], &[What::Content][..])
    );

    let options = CheckOptions {
        verify_content: true,
        ..CheckOptions::default()
    };
    let verified = guard::check(&layers, &later, &options).unwrap();
    let found: Vec<(String, Vec<What>)> = verified.changed[0]
        .changes
        .modified
        .iter()
        .map(|m| (String::from_utf8(m.path.clone()).unwrap(), m.what.clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("a/b".to_owned(), vec![What::Content]),
            ("a.c".to_owned(), vec![What::Times])
        ]
    );
}
