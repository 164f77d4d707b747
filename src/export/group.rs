//! Buildpack order for export: `group.toml`'s `[[group]]` entries (id and version), or, without
//! a group file, the buildpack dirs of the layers dir sorted by id with no version.

use std::path::Path;

use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};

/// A buildpack of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Its id.
    pub id: BuildpackId,
    /// Its version (empty when unknown).
    pub version: String,
}

/// The group order: from `group` when given, else the layers dir's buildpacks by id.
///
/// # Errors
/// [`Error::Read`], or [`Error::Invalid`] for a group file without valid `[[group]]` entries.
pub fn group_order(layers: &LayersDir, group: Option<&Path>) -> Result<Vec<GroupEntry>> {
    let Some(path) = group else {
        return Ok(layers
            .buildpacks()?
            .into_iter()
            .map(|id| GroupEntry {
                id,
                version: String::new(),
            })
            .collect());
    };
    let text = std::fs::read_to_string(path).map_err(Error::read(path))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Error::invalid(path, format!("malformed group toml: {}", e.message()))
    })?;
    let Some(toml::Value::Array(entries)) = table.get("group") else {
        return Err(Error::invalid(path, "no [[group]] entries"));
    };
    entries
        .iter()
        .map(|entry| {
            let field = |key: &str| entry.get(key).and_then(toml::Value::as_str);
            let id =
                field("id").ok_or_else(|| Error::invalid(path, "a [[group]] entry has no id"))?;
            Ok(GroupEntry {
                id: BuildpackId::new(id).map_err(|reason| Error::invalid(path, reason))?,
                version: field("version").unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_file_sets_order_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a_first")).unwrap();
        std::fs::create_dir_all(dir.path().join("z_last")).unwrap();
        let layers = LayersDir::open(dir.path()).unwrap();
        let sorted = group_order(&layers, None).unwrap();
        assert_eq!(sorted[0].id.as_str(), "a/first");
        let group = dir.path().join("group.toml");
        std::fs::write(
            &group,
            "[[group]]\nid = \"z/last\"\nversion = \"2.0\"\napi = \"0.10\"\n\n[[group]]\nid = \"a/first\"\nversion = \"1.0\"\n",
        )
        .unwrap();
        let ordered = group_order(&layers, Some(&group)).unwrap();
        assert_eq!(ordered[0].id.as_str(), "z/last");
        assert_eq!(ordered[0].version, "2.0");
        std::fs::write(&group, "[[group]]\nversion = \"1\"\n").unwrap();
        assert!(
            group_order(&layers, Some(&group))
                .unwrap_err()
                .to_string()
                .contains("no id")
        );
    }
}
