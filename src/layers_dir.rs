//! The CNB layers directory: buildpack ids and their directory names, layer tomls, owners.
//!
//! `<layers>/<escaped-id>/<layer>.toml` plus `<layer>/` is a layer of buildpack `<id>`, where
//! escaping replaces `/` with `_` (ids contain letters, digits, `.`, `/`, `-` only, so the
//! mapping is one-to-one). The owner of a layer is always the id read from its path. The toml
//! holds `[types]` (`build`, `launch`, `cache`, unset = false) and free-form `[metadata]`;
//! `build`/`launch`/`cache` at top level is the pre-0.6 form, refused as lifecycle refuses it.
//! Not layers: `launch.toml`, `build.toml`, `store.toml`, SBOM files, `*.ignore`, a layer dir
//! without a toml, top-level entries that are not buildpack dirs (`config/`, `sbom/`, `*.toml`,
//! hidden entries such as the store `.layerize/`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Buildpack ids the spec reserves; their directories are never buildpack dirs.
const RESERVED_IDS: [&str; 4] = ["app", "config", "generated", "sbom"];
/// Toml files in a buildpack dir that are not layers.
const NOT_LAYER_TOMLS: [&str; 3] = ["launch", "build", "store"];

/// A buildpack id such as `paketo-buildpacks/jdk`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuildpackId(String);

impl BuildpackId {
    /// Parses and validates an id.
    ///
    /// # Errors
    /// An empty id, a character outside letters, digits, `.`, `/`, `-`, or a reserved id.
    pub fn new(id: &str) -> std::result::Result<Self, String> {
        if id.is_empty() {
            return Err("empty buildpack id".into());
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-')))
        {
            return Err(format!(
                "buildpack id {id:?} contains {c:?}: only letters, digits, '.', '/' and '-' are allowed"
            ));
        }
        if RESERVED_IDS.contains(&id) {
            return Err(format!("buildpack id {id:?} is reserved"));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id a buildpack directory name stands for (`_` → `/`).
    ///
    /// # Errors
    /// A name that no valid id escapes to.
    pub fn from_dir_name(name: &str) -> std::result::Result<Self, String> {
        Self::new(&name.replace('_', "/")).map_err(|reason| {
            format!("directory name {name:?} is not an escaped buildpack id: {reason}")
        })
    }

    /// The directory name (`/` → `_`).
    pub fn escaped(&self) -> String {
        self.0.replace('/', "_")
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuildpackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BuildpackId {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::new(&s)
    }
}

impl From<BuildpackId> for String {
    fn from(id: BuildpackId) -> String {
        id.0
    }
}

impl std::str::FromStr for BuildpackId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::new(s)
    }
}

/// The `[types]` table of a layer toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerTypes {
    /// Available to later buildpacks.
    #[serde(default)]
    pub build: bool,
    /// Goes into the image.
    #[serde(default)]
    pub launch: bool,
    /// Saved to and restored from the cache.
    #[serde(default)]
    pub cache: bool,
}

impl LayerTypes {
    /// True when at least one type is set (lifecycle renames others to `<layer>.ignore`).
    pub fn any(self) -> bool {
        self.build || self.launch || self.cache
    }
}

/// A parsed `<layer>.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerToml {
    /// `[types]`.
    #[serde(default)]
    pub types: LayerTypes,
    /// `[metadata]`, free-form.
    #[serde(default)]
    pub metadata: toml::Table,
}

impl LayerToml {
    /// Parses a layer toml; `path` names it in errors.
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed toml, wrong types, or the pre-0.6 top-level flags.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::invalid(path, format!("malformed layer toml: {}", e.message()))
        })?;
        if let Some(key) = ["build", "launch", "cache"]
            .into_iter()
            .find(|k| table.contains_key(*k))
        {
            return Err(Error::invalid(
                path,
                format!(
                    "top-level `{key}` is the pre-0.6 form: the launch, cache and build flags must be in the [types] table"
                ),
            ));
        }
        let types = match table.get("types") {
            None => LayerTypes::default(),
            Some(value) => value.clone().try_into().map_err(|e: toml::de::Error| {
                Error::invalid(path, format!("bad [types] table: {}", e.message()))
            })?,
        };
        let metadata = match table.get("metadata") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t.clone(),
            Some(other) => {
                return Err(Error::invalid(
                    path,
                    format!("`metadata` must be a table, not a {}", other.type_str()),
                ));
            }
        };
        Ok(Self { types, metadata })
    }

    /// Reads and parses the toml at `path`.
    ///
    /// # Errors
    /// As [`LayerToml::parse`], or [`Error::Read`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(Error::read(path))?;
        Self::parse(path, &text)
    }

    /// `[metadata]` as JSON (for records and image labels).
    pub fn metadata_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.metadata).unwrap_or_default()
    }
}

/// One layer of a buildpack in a layers dir.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Owner, from the path.
    pub buildpack: BuildpackId,
    /// Layer name.
    pub name: String,
    /// `<layers>/<escaped-id>/<name>`.
    pub dir: PathBuf,
    /// `<layers>/<escaped-id>/<name>.toml`.
    pub toml_path: PathBuf,
    /// The parsed toml.
    pub toml: LayerToml,
}

impl Layer {
    /// `<buildpack>:<layer>`, the form used on the command line.
    pub fn key(&self) -> String {
        format!("{}:{}", self.buildpack, self.name)
    }
}

/// A layers directory.
#[derive(Debug, Clone)]
pub struct LayersDir {
    root: PathBuf,
}

impl LayersDir {
    /// Opens an existing layers dir.
    ///
    /// # Errors
    /// [`Error::Read`] when `root` is not a readable directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let meta = fs::metadata(&root).map_err(Error::read(&root))?;
        if !meta.is_dir() {
            return Err(Error::invalid(&root, "layers dir is not a directory"));
        }
        Ok(Self { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<layers>/<escaped-id>`.
    pub fn buildpack_dir(&self, id: &BuildpackId) -> PathBuf {
        self.root.join(id.escaped())
    }

    /// The buildpacks that have a directory here, sorted by id.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] for a directory whose name is not an escaped id.
    pub fn buildpacks(&self) -> Result<Vec<BuildpackId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(Error::read(&self.root))? {
            let entry = entry.map_err(Error::read(&self.root))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(Error::invalid(
                    &path,
                    "directory name is not UTF-8: not a buildpack dir",
                ));
            };
            let is_dir = entry.file_type().map_err(Error::read(&path))?.is_dir();
            if !is_dir || name.starts_with('.') || RESERVED_IDS.contains(&name.as_str()) {
                continue;
            }
            ids.push(
                BuildpackId::from_dir_name(&name)
                    .map_err(|reason| Error::invalid(&path, reason))?,
            );
        }
        ids.sort();
        Ok(ids)
    }

    /// The layers of one buildpack, sorted by name. A toml without its directory is a layer
    /// with no content (`dir` does not exist).
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] for a malformed toml or a forbidden layer name.
    pub fn layers_of(&self, id: &BuildpackId) -> Result<Vec<Layer>> {
        let bp_dir = self.buildpack_dir(id);
        let entries = match fs::read_dir(&bp_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Read {
                    path: bp_dir,
                    source: e,
                });
            }
        };
        let mut layers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::read(&bp_dir))?;
            let toml_path = entry.path();
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".toml")) else {
                continue;
            };
            if NOT_LAYER_TOMLS.contains(&name) || name.contains(".sbom.") || name.is_empty() {
                continue;
            }
            if !entry
                .file_type()
                .map_err(Error::read(&toml_path))?
                .is_file()
            {
                continue;
            }
            let toml = LayerToml::read(&toml_path)?;
            layers.push(Layer {
                buildpack: id.clone(),
                name: name.to_owned(),
                dir: bp_dir.join(name),
                toml_path,
                toml,
            });
        }
        layers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(layers)
    }

    /// Every layer of every buildpack, by buildpack id then layer name.
    ///
    /// # Errors
    /// As [`LayersDir::buildpacks`] and [`LayersDir::layers_of`].
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let mut all = Vec::new();
        for id in self.buildpacks()? {
            all.extend(self.layers_of(&id)?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_escape_and_unescape() {
        let id = BuildpackId::new("paketo-buildpacks/jdk").unwrap();
        assert_eq!(id.escaped(), "paketo-buildpacks_jdk");
        assert_eq!(
            BuildpackId::from_dir_name("paketo-buildpacks_jdk").unwrap(),
            id
        );
        assert!(BuildpackId::new("bad id").is_err());
        assert!(BuildpackId::new("a_b").is_err());
        assert!(BuildpackId::new("config").is_err());
        assert!(BuildpackId::from_dir_name("caf\u{e9}").is_err());
    }

    #[test]
    fn types_default_to_false_and_metadata_is_kept() {
        let t = LayerToml::parse(
            Path::new("x.toml"),
            "[types]\nlaunch = true\n[metadata]\nv = \"1\"\n",
        )
        .unwrap();
        assert_eq!(
            t.types,
            LayerTypes {
                build: false,
                launch: true,
                cache: false
            }
        );
        assert_eq!(t.metadata["v"].as_str(), Some("1"));
        assert_eq!(
            LayerToml::parse(Path::new("x.toml"), "").unwrap(),
            LayerToml::default()
        );
    }

    #[test]
    fn malformed_and_pre_06_tomls_name_the_file() {
        for (text, needle) in [
            ("launch = true\n", "pre-0.6"),
            ("[types\n", "malformed"),
            ("[types]\nbuild = \"yes\"\n", "bad [types]"),
            ("[types]\nbild = true\n", "bad [types]"),
            ("metadata = 3\n", "must be a table"),
        ] {
            let err = LayerToml::parse(Path::new("/l/bp/x.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("/l/bp/x.toml: "), "{err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
