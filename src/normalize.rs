//! Every reproducibility rule lifecycle applies to a layer entry, in one place.
//!
//! Lifecycle's `NormalizingTarWriter` fixes mtime to 1980-01-01T00:00:01Z, empties uname and
//! gname and sets uid/gid to the build user's; Go's `FileInfoHeader` keeps the permission bits
//! plus setuid/setgid/sticky and no file-type bits. Directory entries of the ancestors of a layer
//! keep their own mode and owner. The header encoder ([`crate::archive`]) takes these values
//! as given.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// mtime of every entry: 1980-01-01T00:00:01Z, lifecycle's `archive.NormalizedModTime`.
pub const NORMALIZED_MTIME: i64 = 315_532_801;

/// Mode bits kept in a header: permissions plus setuid, setgid and sticky.
pub const MODE_MASK: u32 = 0o7777;

/// The default in-image root of the layers directory.
pub const DEFAULT_LAYERS_ROOT: &str = "/layers";

/// Owner applied to layer entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// uid written into headers.
    pub uid: u64,
    /// gid written into headers.
    pub gid: u64,
}

impl Owner {
    /// The build user lifecycle's exporter uses: `CNB_USER_ID`/`CNB_GROUP_ID`, else root.
    ///
    /// # Errors
    /// An environment value that is set but not a number.
    pub fn from_env() -> Result<Self, String> {
        let read = |name: &str| match std::env::var(name) {
            Ok(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}={value:?} is not a numeric id")),
            Err(_) => Ok(0),
        };
        Ok(Self {
            uid: read("CNB_USER_ID")?,
            gid: read("CNB_GROUP_ID")?,
        })
    }

    /// The owner a directory actually has on disk.
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            uid: u64::from(metadata.uid()),
            gid: u64::from(metadata.gid()),
        }
    }
}

/// Header mode for a file with this metadata.
pub fn mode(metadata: &Metadata) -> u32 {
    metadata.mode() & MODE_MASK
}
