//! The environment a buildpack's `bin/build` runs in, built the way lifecycle's builder does.
//!
//! - The base is the process environment filtered to lifecycle's include list (`CNB_STACK_ID`,
//!   `HOSTNAME`, `HOME`, the proxy variables) plus the variables layers feed (`PATH`,
//!   `LD_LIBRARY_PATH`, `LIBRARY_PATH`, `CPATH`, `PKG_CONFIG_PATH`): a build does not depend on
//!   the shell it was started from. The platform's `env/` directory is the way to pass more.
//! - After each buildpack, each of its `build = true` layers (by name) adds, in this order: its
//!   `bin/` to `PATH`, `lib/` to `LD_LIBRARY_PATH` and `LIBRARY_PATH`, `include/` to `CPATH`,
//!   `pkgconfig/` to `PKG_CONFIG_PATH` (each prepended with `:`, when the directory exists),
//!   then the files of `env/`, then of `env.build/`.
//! - An env file is `NAME.<action>` (`override`, `default`, `prepend`, `append`; no suffix means
//!   `override`, the rule since buildpack API 0.5); `prepend`/`append` join with the content of
//!   `NAME.delim` (nothing when absent) and add no delimiter to an empty value; `default` sets
//!   only an unset or empty variable; `NAME.delim` itself and unknown actions set nothing.
//!   Values are the files' bytes, verbatim. Files apply in name order; directories are skipped.
//! - In an image (export), each launch layer adds, at its in-image path, `bin/` to `PATH` and
//!   `lib/` to `LD_LIBRARY_PATH` (as lifecycle's launcher does), then the files of `env/`, then
//!   of `env.launch/`, with the same file rules.
//! - Per buildpack, unless it sets `clear-env`, the platform's `env/` files apply last: a layer
//!   variable (`PATH`, ...) gets the value prepended with `:`, any other is overridden.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Layer subdirectories and the variables each is prepended to.
const ROOT_DIRS: [(&str, &[&str]); 4] = [
    ("bin", &["PATH"]),
    ("lib", &["LD_LIBRARY_PATH", "LIBRARY_PATH"]),
    ("include", &["CPATH"]),
    ("pkgconfig", &["PKG_CONFIG_PATH"]),
];

/// Process variables that pass into the build besides the [`ROOT_DIRS`] ones.
const INCLUDE_LIST: [&str; 9] = [
    "CNB_STACK_ID",
    "HOSTNAME",
    "HOME",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A set of environment variables, kept sorted so the child's environment is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    vars: BTreeMap<OsString, OsString>,
}

impl BuildEnv {
    /// The base environment from `vars` (e.g. [`std::env::vars_os`]), filtered as lifecycle
    /// filters it.
    pub fn base(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let kept = |name: &OsStr| {
            INCLUDE_LIST.iter().any(|k| OsStr::new(k) == name)
                || ROOT_DIRS
                    .iter()
                    .flat_map(|(_, vars)| vars.iter())
                    .any(|k| OsStr::new(k) == name)
        };
        Self {
            vars: vars.into_iter().filter(|(k, _)| kept(k)).collect(),
        }
    }

    /// The environment of an image config's `Env` (`NAME=value` strings), unfiltered.
    pub fn from_config(entries: &[String]) -> Self {
        let vars = entries
            .iter()
            .map(|entry| {
                let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
                (OsString::from(name), OsString::from(value))
            })
            .collect();
        Self { vars }
    }

    /// `NAME=value` strings for an image config, sorted by name (bytes that are not UTF-8 are
    /// replaced: an image config is JSON).
    pub fn to_config(&self) -> Vec<String> {
        self.vars()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect()
    }

    /// Adds what the launch layer found at `layer_dir` provides in an image where it lives at
    /// `image_dir`: `bin/` to `PATH` and `lib/` to `LD_LIBRARY_PATH`, then `env/`, then
    /// `env.launch/`.
    ///
    /// # Errors
    /// [`Error::Read`] for an unreadable env dir or file.
    pub fn add_launch_layer(&mut self, layer_dir: &Path, image_dir: &Path) -> Result<()> {
        for (sub, name) in [("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")] {
            if layer_dir.join(sub).is_dir() {
                let dir = image_dir.join(sub);
                self.prepend(OsStr::new(name), dir.as_os_str().as_bytes(), b":");
            }
        }
        self.add_env_dir(&layer_dir.join("env"))?;
        self.add_env_dir(&layer_dir.join("env.launch"))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Every variable, sorted by name.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    fn value(&self, name: &OsStr) -> &[u8] {
        self.vars.get(name).map_or(&[], |v| v.as_bytes())
    }

    /// `value` + `delim` + old value (no delimiter when the old value is empty).
    fn prepend(&mut self, name: &OsStr, value: &[u8], delim: &[u8]) {
        let old = self.value(name);
        let mut new = value.to_vec();
        if !old.is_empty() {
            new.extend_from_slice(delim);
            new.extend_from_slice(old);
        }
        self.vars.insert(name.to_owned(), OsString::from_vec(new));
    }

    /// Old value + `delim` + `value` (no delimiter when the old value is empty).
    fn append(&mut self, name: &OsStr, value: &[u8], delim: &[u8]) {
        let mut new = self.value(name).to_vec();
        if !new.is_empty() {
            new.extend_from_slice(delim);
        }
        new.extend_from_slice(value);
        self.vars.insert(name.to_owned(), OsString::from_vec(new));
    }

    /// Adds what the build layer at `layer_dir` provides: its root dirs, then `env/`, then
    /// `env.build/`.
    ///
    /// # Errors
    /// [`Error::Read`] for an unreadable directory or env file.
    pub fn add_build_layer(&mut self, layer_dir: &Path) -> Result<()> {
        let layer_dir = std::path::absolute(layer_dir).map_err(Error::read(layer_dir))?;
        for (sub, names) in ROOT_DIRS {
            let dir = layer_dir.join(sub);
            match fs::metadata(&dir) {
                Ok(_) => {
                    for name in names {
                        self.prepend(OsStr::new(name), dir.as_os_str().as_bytes(), b":");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Read {
                        path: dir,
                        source: e,
                    });
                }
            }
        }
        self.add_env_dir(&layer_dir.join("env"))?;
        self.add_env_dir(&layer_dir.join("env.build"))
    }

    /// Applies the env files of `dir` (absent = nothing) by their action suffix.
    ///
    /// # Errors
    /// [`Error::Read`] for an unreadable directory or file.
    pub fn add_env_dir(&mut self, dir: &Path) -> Result<()> {
        for (file_name, value) in env_files(dir)? {
            let bytes = file_name.as_bytes();
            let (name, action) = match bytes.iter().position(|&b| b == b'.') {
                Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
                None => (bytes, &b"override"[..]),
            };
            let name = OsStr::from_bytes(name);
            let delim = || -> Result<Vec<u8>> {
                let path = dir.join(OsStr::from_bytes(&[name.as_bytes(), b".delim"].concat()));
                match fs::read(&path) {
                    Ok(d) => Ok(d),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                    Err(e) => Err(Error::Read { path, source: e }),
                }
            };
            match action {
                b"override" => self.set(name, OsString::from_vec(value)),
                b"default" if self.value(name).is_empty() => {
                    self.set(name, OsString::from_vec(value))
                }
                b"prepend" => self.prepend(name, &value, &delim()?),
                b"append" => self.append(name, &value, &delim()?),
                _ => {}
            }
        }
        Ok(())
    }

    /// This environment with the platform's `<platform>/env/` files applied: a variable that
    /// layers feed gets the value prepended with `:`, any other is set to it.
    ///
    /// # Errors
    /// [`Error::Read`] for an unreadable directory or file.
    pub fn with_platform(&self, platform_dir: &Path) -> Result<BuildEnv> {
        let mut env = self.clone();
        for (name, value) in env_files(&platform_dir.join("env"))? {
            let is_root_var = ROOT_DIRS
                .iter()
                .flat_map(|(_, vars)| vars.iter())
                .any(|k| OsStr::new(k) == name);
            if is_root_var {
                env.prepend(&name, &value, b":");
            } else {
                env.set(name, OsString::from_vec(value));
            }
        }
        Ok(env)
    }
}

/// The files of `dir` (following symlinks, skipping directories) by name, with their bytes.
fn env_files(dir: &Path) -> Result<Vec<(OsString, Vec<u8>)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source: e,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(Error::read(dir))?.path();
        if fs::metadata(&path).map_err(Error::read(&path))?.is_dir() {
            continue;
        }
        let value = fs::read(&path).map_err(Error::read(&path))?;
        let name = path.file_name().expect("a dir entry has a name").to_owned();
        files.push((name, value));
    }
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(dir: &Path, files: &[(&str, &str)], start: &[(&str, &str)]) -> BuildEnv {
        fs::create_dir_all(dir).unwrap();
        for (name, value) in files {
            fs::write(dir.join(name), value).unwrap();
        }
        let mut env = BuildEnv::default();
        for (k, v) in start {
            env.set(*k, *v);
        }
        env.add_env_dir(dir).unwrap();
        env
    }

    fn get(env: &BuildEnv, name: &str) -> Option<String> {
        env.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn override_and_no_suffix_replace_the_value() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(
            d.path(),
            &[("A.override", "new"), ("B", "bare")],
            &[("A", "old"), ("B", "old")],
        );
        assert_eq!(get(&env, "A").as_deref(), Some("new"));
        assert_eq!(get(&env, "B").as_deref(), Some("bare"));
    }

    #[test]
    fn default_sets_only_unset_or_empty() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(
            d.path(),
            &[
                ("SET.default", "d"),
                ("EMPTY.default", "d"),
                ("UNSET.default", "d"),
            ],
            &[("SET", "kept"), ("EMPTY", "")],
        );
        assert_eq!(get(&env, "SET").as_deref(), Some("kept"));
        assert_eq!(get(&env, "EMPTY").as_deref(), Some("d"));
        assert_eq!(get(&env, "UNSET").as_deref(), Some("d"));
    }

    #[test]
    fn prepend_and_append_use_the_delim_file() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(
            d.path(),
            &[
                ("P.prepend", "front"),
                ("P.delim", ":"),
                ("Q.append", "back"),
                ("Q.delim", ";"),
                ("NODELIM.append", "x"),
            ],
            &[("P", "old"), ("Q", "old"), ("NODELIM", "old")],
        );
        assert_eq!(get(&env, "P").as_deref(), Some("front:old"));
        assert_eq!(get(&env, "Q").as_deref(), Some("old;back"));
        assert_eq!(get(&env, "NODELIM").as_deref(), Some("oldx"));
        assert_eq!(get(&env, "DELIM"), None, "a .delim file sets nothing");
    }

    #[test]
    fn prepend_and_append_to_an_empty_value_add_no_delim() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(
            d.path(),
            &[
                ("P.prepend", "v"),
                ("P.delim", ":"),
                ("A.append", "v"),
                ("A.delim", ":"),
            ],
            &[],
        );
        assert_eq!(get(&env, "P").as_deref(), Some("v"));
        assert_eq!(get(&env, "A").as_deref(), Some("v"));
    }

    #[test]
    fn values_are_verbatim_and_unknown_actions_ignored() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(d.path(), &[("V.override", "a b\n"), ("W.bogus", "x")], &[]);
        assert_eq!(get(&env, "V").as_deref(), Some("a b\n"));
        assert_eq!(get(&env, "W"), None);
    }

    #[test]
    fn a_build_layer_feeds_root_dirs_then_env_then_env_build() {
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("rt");
        for sub in ["bin", "lib", "env", "env.build"] {
            fs::create_dir_all(layer.join(sub)).unwrap();
        }
        fs::write(layer.join("env/X.override"), "from-env").unwrap();
        fs::write(layer.join("env.build/X.override"), "from-env.build").unwrap();
        let mut env = BuildEnv::base([
            ("PATH".into(), "/usr/bin".into()),
            ("SECRET".into(), "s".into()),
        ]);
        env.add_build_layer(&layer).unwrap();
        let bin = layer.join("bin");
        assert_eq!(
            get(&env, "PATH"),
            Some(format!("{}:/usr/bin", bin.display()))
        );
        assert_eq!(
            get(&env, "LD_LIBRARY_PATH"),
            Some(layer.join("lib").display().to_string())
        );
        assert_eq!(get(&env, "LIBRARY_PATH"), get(&env, "LD_LIBRARY_PATH"));
        assert_eq!(get(&env, "CPATH"), None);
        assert_eq!(get(&env, "X").as_deref(), Some("from-env.build"));
        assert_eq!(get(&env, "SECRET"), None, "the base env is filtered");
    }

    #[test]
    fn platform_env_prepends_root_vars_and_overrides_others() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("env")).unwrap();
        fs::write(d.path().join("env/PATH"), "/plat/bin").unwrap();
        fs::write(d.path().join("env/FOO"), "bar").unwrap();
        let mut env = BuildEnv::default();
        env.set("PATH", "/usr/bin");
        env.set("FOO", "old");
        let env = env.with_platform(d.path()).unwrap();
        assert_eq!(get(&env, "PATH").as_deref(), Some("/plat/bin:/usr/bin"));
        assert_eq!(get(&env, "FOO").as_deref(), Some("bar"));
    }

    #[test]
    fn launch_layers_add_in_image_paths_then_env_and_env_launch() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        for sub in ["bin", "env", "env.launch/web", "env.build"] {
            fs::create_dir_all(layer.join(sub)).unwrap();
        }
        for (name, value) in [
            ("KEEP.default", "ignored"),
            ("EMPTY.default", "filled"),
            ("OPTS.append", "-b"),
            ("OPTS.delim", " "),
        ] {
            fs::write(layer.join("env").join(name), value).unwrap();
        }
        fs::write(layer.join("env.launch/MODE"), "prod").unwrap();
        fs::write(layer.join("env.launch/web/ONLY_WEB"), "x").unwrap();
        fs::write(layer.join("env.build/BUILD_ONLY"), "x").unwrap();
        let mut env = BuildEnv::from_config(&[
            "PATH=/usr/bin".into(),
            "KEEP=k".into(),
            "OPTS=-a".into(),
            "EMPTY=".into(),
        ]);
        env.add_launch_layer(layer, Path::new("/layers/bp/l"))
            .unwrap();
        let get = |name| env.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("PATH").as_deref(), Some("/layers/bp/l/bin:/usr/bin"));
        assert_eq!(get("KEEP").as_deref(), Some("k"));
        assert_eq!(get("EMPTY").as_deref(), Some("filled"));
        assert_eq!(get("OPTS").as_deref(), Some("-a -b"));
        assert_eq!(get("MODE").as_deref(), Some("prod"));
        assert_eq!(
            get("ONLY_WEB"),
            None,
            "process-specific env is not image-wide"
        );
        assert_eq!(get("BUILD_ONLY"), None);
        assert_eq!(get("LD_LIBRARY_PATH"), None, "no lib/ dir, nothing added");
        assert_eq!(env.to_config()[0], "EMPTY=filled");
    }
}
