//! The buildpack group and the buildpacks it names: `group.toml` (`[[group]] id, version, api`
//! in order) and each buildpack's `buildpack.toml`, found where lifecycle looks for it:
//! `<buildpacks>/<escaped-id>/<version>/buildpack.toml`.
//!
//! The buildpack API that decides how `bin/build` is invoked is the one in `buildpack.toml`
//! (as in lifecycle); the group's `api` is only checked against it. APIs before 0.6 are refused:
//! their layer tomls put the types at the top level, which the layers-dir model rejects.

use std::cmp::Ordering;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};

/// Oldest buildpack API this driver runs.
pub const MIN_API: BuildpackApi = BuildpackApi { major: 0, minor: 6 };
/// Newest buildpack API this driver runs.
pub const MAX_API: BuildpackApi = BuildpackApi {
    major: 0,
    minor: 12,
};

/// A buildpack API version such as `0.10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuildpackApi {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl BuildpackApi {
    /// Parses `<major>.<minor>`.
    ///
    /// # Errors
    /// Anything else, as a reason.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("buildpack API {text:?} is not <major>.<minor>");
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u32>().map_err(|_| bad())
        };
        Ok(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }

    /// True when this API is `other` or newer.
    pub fn at_least(self, other: BuildpackApi) -> bool {
        self >= other
    }
}

impl PartialOrd for BuildpackApi {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BuildpackApi {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor).cmp(&(other.major, other.minor))
    }
}

impl fmt::Display for BuildpackApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One `[[group]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupEntry {
    /// Buildpack id.
    pub id: BuildpackId,
    /// Buildpack version: the directory under `<buildpacks>/<escaped-id>/`.
    pub version: String,
    /// The API the detector recorded, if any.
    #[serde(default)]
    pub api: Option<String>,
}

#[derive(Deserialize)]
struct GroupToml {
    #[serde(default)]
    group: Vec<GroupEntry>,
}

/// Reads `group.toml`: the buildpacks to run, in order.
///
/// # Errors
/// [`Error::Read`], or [`Error::Invalid`] for malformed toml, a bad id, or an empty group.
pub fn read_group(path: &Path) -> Result<Vec<GroupEntry>> {
    let text = fs::read_to_string(path).map_err(Error::read(path))?;
    let parsed: GroupToml = toml::from_str(&text)
        .map_err(|e| Error::invalid(path, format!("malformed group toml: {}", e.message())))?;
    if parsed.group.is_empty() {
        return Err(Error::invalid(
            path,
            "the group names no buildpack ([[group]])",
        ));
    }
    Ok(parsed.group)
}

/// The buildpack order of a finished build, for export and cache: `group` when given, else the
/// layers dir's buildpacks by id (version unknown: empty).
///
/// # Errors
/// As [`read_group`] and [`LayersDir::buildpacks`].
pub fn group_order(layers: &LayersDir, group: Option<&Path>) -> Result<Vec<GroupEntry>> {
    match group {
        Some(path) => read_group(path),
        None => Ok(layers
            .buildpacks()?
            .into_iter()
            .map(|id| GroupEntry {
                id,
                version: String::new(),
                api: None,
            })
            .collect()),
    }
}

/// A buildpack ready to run: its descriptor and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildpack {
    /// Buildpack id (from `buildpack.toml`, equal to the group's).
    pub id: BuildpackId,
    /// Version.
    pub version: String,
    /// The buildpack API from `buildpack.toml`.
    pub api: BuildpackApi,
    /// `<buildpacks>/<escaped-id>/<version>`, absolute.
    pub dir: PathBuf,
    /// `[buildpack] clear-env`: the platform's `env/` is not applied.
    pub clear_env: bool,
}

impl Buildpack {
    /// `<dir>/bin/build`.
    pub fn build_executable(&self) -> PathBuf {
        self.dir.join("bin").join("build")
    }
}

impl fmt::Display for Buildpack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

#[derive(Deserialize)]
struct DescriptorToml {
    api: String,
    buildpack: DescriptorInfo,
}

#[derive(Deserialize)]
struct DescriptorInfo {
    id: String,
    version: String,
    #[serde(default, rename = "clear-env")]
    clear_env: bool,
}

/// Finds and reads the `buildpack.toml` of every group entry under `buildpacks_dir`.
///
/// # Errors
/// [`Error::UnknownBuildpack`] when an entry's directory or descriptor is missing;
/// [`Error::Invalid`] for a malformed descriptor, an id or version that differs from the
/// group's, an API that differs from the group's, or an unsupported API.
pub fn resolve(buildpacks_dir: &Path, group: &[GroupEntry]) -> Result<Vec<Buildpack>> {
    let root = std::path::absolute(buildpacks_dir).map_err(Error::read(buildpacks_dir))?;
    group
        .iter()
        .map(|entry| resolve_one(&root, entry))
        .collect()
}

fn resolve_one(root: &Path, entry: &GroupEntry) -> Result<Buildpack> {
    if entry.version.is_empty() || entry.version.contains('/') || entry.version.starts_with('.') {
        return Err(Error::invalid(
            root,
            format!(
                "buildpack {} has version {:?}: not a directory name",
                entry.id, entry.version
            ),
        ));
    }
    let dir = root.join(entry.id.escaped()).join(&entry.version);
    let path = dir.join("buildpack.toml");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::UnknownBuildpack {
                id: entry.id.to_string(),
                version: entry.version.clone(),
                path,
            });
        }
        Err(e) => return Err(Error::Read { path, source: e }),
    };
    let descriptor: DescriptorToml = toml::from_str(&text)
        .map_err(|e| Error::invalid(&path, format!("malformed buildpack.toml: {}", e.message())))?;
    if descriptor.buildpack.id != entry.id.as_str() || descriptor.buildpack.version != entry.version
    {
        return Err(Error::invalid(
            &path,
            format!(
                "describes {}@{}, but the group names {}@{} here",
                descriptor.buildpack.id, descriptor.buildpack.version, entry.id, entry.version
            ),
        ));
    }
    let api = BuildpackApi::parse(&descriptor.api).map_err(|r| Error::invalid(&path, r))?;
    if let Some(group_api) = &entry.api
        && BuildpackApi::parse(group_api).ok() != Some(api)
    {
        return Err(Error::invalid(
            &path,
            format!("declares buildpack API {api}, but the group says {group_api:?}"),
        ));
    }
    if api < MIN_API || api > MAX_API {
        return Err(Error::invalid(
            &path,
            format!("buildpack API {api} is not supported (supported: {MIN_API} to {MAX_API})"),
        ));
    }
    Ok(Buildpack {
        id: entry.id.clone(),
        version: entry.version.clone(),
        api,
        dir,
        clear_env: descriptor.buildpack.clear_env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(s: &str) -> BuildpackApi {
        BuildpackApi::parse(s).unwrap()
    }

    #[test]
    fn apis_compare_numerically() {
        assert!(api("0.10") > api("0.8"));
        assert!(api("0.8").at_least(api("0.8")));
        assert!(!api("0.7").at_least(api("0.8")));
        assert_eq!(api("1.0").to_string(), "1.0");
        for bad in ["0", "0.x", ".1", "0.1.2", "-1.0", "0.+1"] {
            assert!(BuildpackApi::parse(bad).is_err(), "{bad}");
        }
    }

    fn write_bp(root: &Path, id: &str, version: &str, api: &str) {
        let dir = root.join(id.replace('/', "_")).join(version);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("buildpack.toml"),
            format!("api = \"{api}\"\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n"),
        )
        .unwrap();
    }

    fn entry(id: &str, version: &str, api: Option<&str>) -> GroupEntry {
        GroupEntry {
            id: BuildpackId::new(id).unwrap(),
            version: version.into(),
            api: api.map(str::to_owned),
        }
    }

    #[test]
    fn group_is_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.toml");
        fs::write(
            &path,
            "[[group]]\nid = \"b/x\"\nversion = \"1\"\napi = \"0.10\"\n\n[[group]]\nid = \"a\"\nversion = \"2\"\n",
        )
        .unwrap();
        let group = read_group(&path).unwrap();
        assert_eq!(
            group,
            vec![entry("b/x", "1", Some("0.10")), entry("a", "2", None)]
        );
        fs::write(&path, "").unwrap();
        assert!(
            read_group(&path)
                .unwrap_err()
                .to_string()
                .contains("no buildpack")
        );
        fs::write(&path, "[[group]]\nid = \"bad id\"\nversion = \"1\"\n").unwrap();
        assert!(
            read_group(&path)
                .unwrap_err()
                .to_string()
                .contains("malformed")
        );
    }

    #[test]
    fn descriptors_are_found_by_escaped_id_and_version() {
        let dir = tempfile::tempdir().unwrap();
        write_bp(dir.path(), "org/rt", "1.0", "0.7");
        let bps = resolve(dir.path(), &[entry("org/rt", "1.0", Some("0.7"))]).unwrap();
        assert_eq!(bps[0].api, api("0.7"));
        assert!(bps[0].dir.ends_with("org_rt/1.0"));
        assert!(bps[0].dir.is_absolute());

        let unknown = resolve(dir.path(), &[entry("org/rt", "2.0", None)]).unwrap_err();
        assert!(
            matches!(unknown, Error::UnknownBuildpack { .. }),
            "{unknown}"
        );
        assert_eq!(unknown.exit_code(), crate::error::EXIT_INVALID_INPUT);

        let mismatch = resolve(dir.path(), &[entry("org/rt", "1.0", Some("0.8"))]).unwrap_err();
        assert!(mismatch.to_string().contains("group says"), "{mismatch}");
    }

    #[test]
    fn old_and_future_apis_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_bp(dir.path(), "old", "1", "0.5");
        write_bp(dir.path(), "new", "1", "0.13");
        for id in ["old", "new"] {
            let err = resolve(dir.path(), &[entry(id, "1", None)]).unwrap_err();
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }
}
