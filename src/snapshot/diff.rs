//! The typed difference between two snapshots of one layer dir.
//!
//! What counts is what can change the layer's tar or its files: type, mode, owner, symlink
//! target, and for a regular file its content. Without reading content, a file whose size,
//! mtime, ctime, inode or device differ is taken as modified in [`What::Content`] (except a
//! new ctime that a mode or owner change explains); callers that
//! re-hash ([`crate::guard::check`] with `verify_content`) refine that to [`What::Times`] when
//! the bytes are the same. A directory's times and inode are not compared (adding or removing a
//! child changes them and is reported as that child), nor a symlink's (its tar entry is its
//! target).

use std::collections::HashMap;

use serde::Serialize;

use super::{EntryKind, EntryStat, Snapshot};

/// One aspect of an entry that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum What {
    /// It became another type (file, directory, symlink).
    Type,
    /// Permission, setuid/setgid or sticky bits.
    Mode,
    /// uid or gid.
    Owner,
    /// A symlink's target.
    LinkTarget,
    /// A file's content (by stat, or by digest with `verify_content`).
    Content,
    /// Only times or inode changed; the content was re-hashed and is the same.
    Times,
}

/// A modified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// Relative path, raw bytes.
    pub path: Vec<u8>,
    /// What changed, sorted.
    pub what: Vec<What>,
}

/// Added, removed and modified entries, each in walk order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Present now, not in the old snapshot.
    pub added: Vec<Vec<u8>>,
    /// In the old snapshot, gone now.
    pub removed: Vec<Vec<u8>>,
    /// In both, changed.
    pub modified: Vec<Modified>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }

    /// Every path concerned (added, removed, modified).
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.added
            .iter()
            .chain(&self.removed)
            .map(Vec::as_slice)
            .chain(self.modified.iter().map(|m| m.path.as_slice()))
    }
}

/// What changed from `old` to `new`.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Changes {
    let mut changes = Changes::default();
    let aligned = old.entries.len() == new.entries.len()
        && old
            .entries
            .iter()
            .zip(&new.entries)
            .all(|(a, b)| a.path == b.path);
    if aligned {
        for (a, b) in old.entries.iter().zip(&new.entries) {
            compare(a, b, &mut changes);
        }
        return changes;
    }
    let by_path: HashMap<&[u8], &EntryStat> =
        old.entries.iter().map(|e| (e.path.as_slice(), e)).collect();
    let mut present = std::collections::HashSet::with_capacity(new.entries.len());
    for b in &new.entries {
        present.insert(b.path.as_slice());
        match by_path.get(b.path.as_slice()) {
            Some(a) => compare(a, b, &mut changes),
            None => changes.added.push(b.path.clone()),
        }
    }
    changes.removed = old
        .entries
        .iter()
        .filter(|a| !present.contains(a.path.as_slice()))
        .map(|a| a.path.clone())
        .collect();
    changes
}

/// True when `new` is `old` exactly by stat (every field, times and inodes included): the
/// condition for a commit cache hit.
pub fn identical(old: &Snapshot, new: &Snapshot) -> bool {
    old.entries.len() == new.entries.len()
        && old
            .entries
            .iter()
            .zip(&new.entries)
            .all(|(a, b)| a.path == b.path && a.same_stat(b))
}

fn compare(a: &EntryStat, b: &EntryStat, changes: &mut Changes) {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push(What::Type);
    } else {
        if a.mode != b.mode {
            what.push(What::Mode);
        }
        if a.uid != b.uid || a.gid != b.gid {
            what.push(What::Owner);
        }
        match a.kind {
            EntryKind::Symlink if a.link_target != b.link_target => what.push(What::LinkTarget),
            EntryKind::File
                if a.size != b.size
                    || a.mtime != b.mtime
                    || a.ino != b.ino
                    || a.dev != b.dev
                    // A new ctime alone is explained by a chmod or chown reported above.
                    || (a.ctime != b.ctime && what.is_empty()) =>
            {
                what.push(What::Content);
            }
            _ => {}
        }
    }
    if !what.is_empty() {
        changes.modified.push(Modified {
            path: a.path.clone(),
            what,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reports_added_removed_and_each_kind_of_modification() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        for name in ["same", "edit", "chmod", "gone", "sub/typ"] {
            fs::write(d.join(name), "v1").unwrap();
        }
        std::os::unix::fs::symlink("a", d.join("link")).unwrap();
        let old = Snapshot::walk(d).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));

        fs::write(d.join("edit"), "v2").unwrap();
        fs::set_permissions(d.join("chmod"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(d.join("gone")).unwrap();
        fs::remove_file(d.join("sub/typ")).unwrap();
        fs::create_dir(d.join("sub/typ")).unwrap();
        fs::remove_file(d.join("link")).unwrap();
        std::os::unix::fs::symlink("b", d.join("link")).unwrap();
        fs::write(d.join("new"), "n").unwrap();
        let new = Snapshot::walk(d).unwrap().unwrap();

        let changes = diff(&old, &new);
        assert_eq!(changes.added, [b"new".to_vec()]);
        assert_eq!(changes.removed, [b"gone".to_vec()]);
        let modified: Vec<(String, Vec<What>)> = changes
            .modified
            .iter()
            .map(|m| (String::from_utf8(m.path.clone()).unwrap(), m.what.clone()))
            .collect();
        assert_eq!(
            modified,
            [
                ("chmod".to_owned(), vec![What::Mode]),
                ("edit".to_owned(), vec![What::Content]),
                ("link".to_owned(), vec![What::LinkTarget]),
                ("sub/typ".to_owned(), vec![What::Type]),
            ]
        );
        assert!(!identical(&old, &new));
        assert!(identical(&new, &Snapshot::walk(d).unwrap().unwrap()));
        assert!(diff(&new, &new).is_empty());
    }
}
