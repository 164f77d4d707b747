//! The launch environment a layer adds, written into the image config's `Env`.
//!
//! For each launch layer, in group order: `bin/` is prepended to `PATH` and `lib/` to
//! `LD_LIBRARY_PATH` (as lifecycle's launcher does for launch layers), then the files of `env/`
//! and then `env.launch/` are applied, each file `NAME.<action>` with action `override`,
//! `default` (set only when unset or empty), `prepend` or `append` (joined with the content of
//! `NAME.delim`, nothing when absent); a file with no action suffix overrides. Values are file
//! contents verbatim. Subdirectories (process-specific env) are not image-wide and are left out.
//!
//! A small self-contained copy of the rules the build-time env (branch `build`,
//! `build::env`) applies with `env.build/`; keep the two in step or share one implementation.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// An ordered environment: base variables keep their place, new ones are appended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// From `NAME=value` strings (an image config's `Env`).
    pub fn from_config(entries: &[String]) -> Self {
        let mut env = Self::default();
        for entry in entries {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            env.set(name, value.to_owned());
        }
        env
    }

    /// `NAME=value` strings.
    pub fn to_config(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name`, in place when present.
    pub fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_owned(), value)),
        }
    }

    fn prepend(&mut self, name: &str, value: String, delim: &str) {
        let joined = match self.get(name) {
            Some(old) if !old.is_empty() => format!("{value}{delim}{old}"),
            _ => value,
        };
        self.set(name, joined);
    }

    fn append(&mut self, name: &str, value: String, delim: &str) {
        let joined = match self.get(name) {
            Some(old) if !old.is_empty() => format!("{old}{delim}{value}"),
            _ => value,
        };
        self.set(name, joined);
    }

    /// Applies a launch layer found on disk at `dir`, in the image at `image_dir`.
    ///
    /// # Errors
    /// [`Error::Read`] for an unreadable env dir or file.
    pub fn apply_launch_layer(&mut self, dir: &Path, image_dir: &str) -> Result<()> {
        if dir.join("bin").is_dir() {
            self.prepend("PATH", format!("{image_dir}/bin"), ":");
        }
        if dir.join("lib").is_dir() {
            self.prepend("LD_LIBRARY_PATH", format!("{image_dir}/lib"), ":");
        }
        self.apply_env_dir(&dir.join("env"))?;
        self.apply_env_dir(&dir.join("env.launch"))
    }

    /// Applies the files of one env dir (missing: nothing), by file name.
    ///
    /// # Errors
    /// [`Error::Read`].
    pub fn apply_env_dir(&mut self, dir: &Path) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::read(dir)(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::read(dir))?;
            if entry
                .file_type()
                .map_err(Error::read(entry.path()))?
                .is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                files.push(name);
            }
        }
        files.sort();
        let read =
            |name: &str| fs::read_to_string(dir.join(name)).map_err(Error::read(dir.join(name)));
        for file in &files {
            let (name, action) = match file.rsplit_once('.') {
                Some((name, action))
                    if matches!(
                        action,
                        "override" | "default" | "prepend" | "append" | "delim"
                    ) =>
                {
                    (name, action)
                }
                _ => (file.as_str(), "override"),
            };
            let delim = || -> Result<String> {
                let delim_file = format!("{name}.delim");
                if files.contains(&delim_file) {
                    read(&delim_file)
                } else {
                    Ok(String::new())
                }
            };
            match action {
                "override" => self.set(name, read(file)?),
                "default" if self.get(name).is_none_or(str::is_empty) => {
                    self.set(name, read(file)?)
                }
                "prepend" => self.prepend(name, read(file)?, &delim()?),
                "append" => self.append(name, read(file)?, &delim()?),
                _ => {} // `delim` files are read by prepend/append; `default` when set.
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_follows_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        fs::create_dir_all(layer.join("bin")).unwrap();
        fs::create_dir_all(layer.join("env")).unwrap();
        fs::create_dir_all(layer.join("env.launch/web")).unwrap();
        for (name, value) in [
            ("HOME_DIR", "/h"),
            ("KEEP.default", "ignored"),
            ("NEW.default", "fresh"),
            ("EMPTY.default", "filled"),
            ("OPTS.append", "-b"),
            ("OPTS.delim", " "),
            ("CP.prepend", "/x.jar"),
            ("SET.override", "o"),
        ] {
            fs::write(layer.join("env").join(name), value).unwrap();
        }
        fs::write(layer.join("env.launch/MODE"), "prod").unwrap();
        fs::write(layer.join("env.launch/web/ONLY_WEB"), "x").unwrap();
        let mut env = Env::from_config(&[
            "PATH=/usr/bin".into(),
            "KEEP=k".into(),
            "OPTS=-a".into(),
            "CP=/y.jar".into(),
            "EMPTY=".into(),
        ]);
        env.apply_launch_layer(layer, "/layers/bp/l").unwrap();
        assert_eq!(env.get("PATH"), Some("/layers/bp/l/bin:/usr/bin"));
        assert_eq!(env.get("KEEP"), Some("k"));
        assert_eq!(env.get("NEW"), Some("fresh"));
        assert_eq!(env.get("EMPTY"), Some("filled"));
        assert_eq!(env.get("OPTS"), Some("-a -b"));
        assert_eq!(env.get("CP"), Some("/x.jar/y.jar"));
        assert_eq!(env.get("SET"), Some("o"));
        assert_eq!(env.get("HOME_DIR"), Some("/h"));
        assert_eq!(env.get("MODE"), Some("prod"));
        assert_eq!(env.get("ONLY_WEB"), None);
        assert_eq!(env.get("LD_LIBRARY_PATH"), None);
        assert_eq!(env.to_config()[0], "PATH=/layers/bp/l/bin:/usr/bin");
    }
}
