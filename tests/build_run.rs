//! `layerize build` runs buildpacks as lifecycle's builder does: per-API invocation, the
//! build environment from earlier build layers, failures named and stopped.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{layerize, run_layerize, s};

/// A build setup in a temp dir: `app/`, `buildpacks/`, `group.toml`, `layers/`.
struct Setup {
    dir: tempfile::TempDir,
    group: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("app")).unwrap();
        fs::create_dir_all(dir.path().join("buildpacks")).unwrap();
        Self {
            dir,
            group: String::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Adds a buildpack with `script` as `bin/build` (after `#!/bin/sh\nset -eu\n`) to the
    /// buildpacks dir and the group.
    fn buildpack(&mut self, id: &str, api: &str, extra_toml: &str, script: &str) -> PathBuf {
        let dir = self
            .path("buildpacks")
            .join(id.replace('/', "_"))
            .join("1.0");
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::write(
            dir.join("buildpack.toml"),
            format!("api = \"{api}\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0\"\n{extra_toml}"),
        )
        .unwrap();
        let build = dir.join("bin/build");
        fs::write(&build, format!("#!/bin/sh\nset -eu\n{script}")).unwrap();
        fs::set_permissions(&build, fs::Permissions::from_mode(0o755)).unwrap();
        self.group += &format!("[[group]]\nid = \"{id}\"\nversion = \"1.0\"\napi = \"{api}\"\n\n");
        dir
    }

    fn args(&self) -> Vec<String> {
        fs::write(self.path("group.toml"), &self.group).unwrap();
        [
            "build",
            "--app",
            s(&self.path("app")),
            "--buildpacks",
            s(&self.path("buildpacks")),
            "--group",
            s(&self.path("group.toml")),
            "--layers",
            s(&self.path("layers")),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn build(&self, extra: &[&str], code: i32) -> std::process::Output {
        let mut args = self.args();
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_layerize(&args, code)
    }

    fn app_file(&self, name: &str) -> String {
        fs::read_to_string(self.path("app").join(name)).unwrap()
    }
}

/// Script lines that record how the buildpack was invoked into `<app>/<name>`.
fn record_invocation(name: &str) -> String {
    format!(
        "{{ echo \"argc=$#\"; echo \"args=$*\"; echo \"pwd=$(pwd)\"; \
         echo \"layers=${{CNB_LAYERS_DIR:-unset}}\"; echo \"platform=${{CNB_PLATFORM_DIR:-unset}}\"; \
         echo \"plan=${{CNB_BP_PLAN_PATH:-unset}}\"; echo \"bpdir=$CNB_BUILDPACK_DIR\"; }} > {name}\n"
    )
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn api_0_7_gets_positional_args_and_api_0_10_gets_env_only() {
    let mut setup = Setup::new();
    let old_dir = setup.buildpack("test/old", "0.7", "", &record_invocation("old.txt"));
    let new_dir = setup.buildpack("test/new", "0.10", "", &record_invocation("new.txt"));
    fs::create_dir_all(setup.path("platform")).unwrap();
    setup.build(&["--platform", s(&setup.path("platform"))], 0);
    let layers = setup.path("layers");
    let app = setup.path("app");

    let old = setup.app_file("old.txt");
    assert_eq!(field(&old, "argc"), "3");
    let args: Vec<&str> = field(&old, "args").split(' ').collect();
    assert_eq!(args[0], s(&layers.join("test_old")));
    assert_eq!(args[1], s(&setup.path("platform")));
    assert!(args[2].ends_with("/test_old/plan.toml"), "{old}");
    assert_eq!(field(&old, "layers"), "unset");
    assert_eq!(field(&old, "plan"), "unset");
    assert_eq!(field(&old, "pwd"), s(&app));
    assert_eq!(field(&old, "bpdir"), s(&old_dir));

    let new = setup.app_file("new.txt");
    assert_eq!(field(&new, "argc"), "0");
    assert_eq!(field(&new, "layers"), s(&layers.join("test_new")));
    assert_eq!(field(&new, "platform"), s(&setup.path("platform")));
    assert!(
        field(&new, "plan").ends_with("/test_new/plan.toml"),
        "{new}"
    );
    assert_eq!(field(&new, "pwd"), s(&app));
    assert_eq!(field(&new, "bpdir"), s(&new_dir));
    assert!(layers.join("test_old").is_dir() && layers.join("test_new").is_dir());
}

#[test]
fn later_buildpacks_see_the_env_of_earlier_build_layers_only() {
    let mut setup = Setup::new();
    setup.buildpack(
        "test/provider",
        "0.10",
        "",
        r#"l="$CNB_LAYERS_DIR/tools"
mkdir -p "$l/bin" "$l/lib" "$l/include" "$l/env" "$l/env.build"
printf '#!/bin/sh\necho tool-ran\n' > "$l/bin/tool"; chmod +x "$l/bin/tool"
printf 'over' > "$l/env/OVER.override"
printf 'bare' > "$l/env/BARE"
printf 'dflt' > "$l/env/HOME.default"
printf 'dflt' > "$l/env/UNSET.default"
printf 'front' > "$l/env/LIST.prepend"; printf ',' > "$l/env/LIST.delim"
printf 'back' > "$l/env.build/LIST.append"; printf ';' > "$l/env.build/LIST.delim"
printf 'build-only' > "$l/env.build/OVER.override"
printf '[types]\nbuild = true\n' > "$CNB_LAYERS_DIR/tools.toml"
o="$CNB_LAYERS_DIR/runtime-only"
mkdir -p "$o/bin" "$o/env"; printf 'leak' > "$o/env/LEAK"
printf '[types]\nlaunch = true\n' > "$CNB_LAYERS_DIR/runtime-only.toml"
"#,
    );
    setup.buildpack(
        "test/user",
        "0.10",
        "",
        r#"tool > tool.txt
env > env.txt
"#,
    );
    setup.buildpack(
        "test/clear",
        "0.10",
        "clear-env = true\n",
        "echo \"platform=${FROM_PLATFORM:-unset}\" > clear.txt\n",
    );
    fs::create_dir_all(setup.path("platform/env")).unwrap();
    fs::write(setup.path("platform/env/FROM_PLATFORM"), "yes").unwrap();

    let mut args = setup.args();
    args.extend(["--platform".into(), s(&setup.path("platform")).into()]);
    let out = layerize()
        .args(&args)
        .env_clear()
        .env("SECRET_OF_THE_SHELL", "s3cr3t")
        .env("HOME", "/home/builder")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(setup.app_file("tool.txt"), "tool-ran\n");
    let env = setup.app_file("env.txt");
    let tools = setup.path("layers/test_provider/tools");
    assert_eq!(
        field(&env, "PATH"),
        format!("{}:/usr/bin:/bin", tools.join("bin").display())
    );
    assert_eq!(field(&env, "LD_LIBRARY_PATH"), s(&tools.join("lib")));
    assert_eq!(field(&env, "LIBRARY_PATH"), s(&tools.join("lib")));
    assert_eq!(field(&env, "CPATH"), s(&tools.join("include")));
    assert_eq!(
        field(&env, "OVER"),
        "build-only",
        "env.build/ applies after env/"
    );
    assert_eq!(field(&env, "BARE"), "bare", "no suffix = override");
    assert_eq!(
        field(&env, "HOME"),
        "/home/builder",
        "default keeps a set value"
    );
    assert_eq!(field(&env, "UNSET"), "dflt");
    assert_eq!(
        field(&env, "LIST"),
        "front;back",
        "prepend then append, each with its delim"
    );
    assert_eq!(field(&env, "FROM_PLATFORM"), "yes");
    assert!(
        !env.contains("LEAK"),
        "a launch-only layer feeds no build env: {env}"
    );
    assert!(
        !env.contains("SECRET_OF_THE_SHELL"),
        "the shell env is filtered: {env}"
    );
    assert_eq!(setup.app_file("clear.txt"), "platform=unset\n");
}

#[test]
fn a_layer_with_no_type_set_is_renamed_ignore() {
    let mut setup = Setup::new();
    setup.buildpack(
        "test/scratch",
        "0.10",
        "",
        r#"mkdir -p "$CNB_LAYERS_DIR/tmp" "$CNB_LAYERS_DIR/keep"
printf '[types]\nbuild = false\n' > "$CNB_LAYERS_DIR/tmp.toml"
printf '[types]\ncache = true\n' > "$CNB_LAYERS_DIR/keep.toml"
"#,
    );
    setup.build(&[], 0);
    let bp = setup.path("layers/test_scratch");
    assert!(bp.join("tmp.ignore").is_dir());
    assert!(!bp.join("tmp").exists());
    assert!(bp.join("keep").is_dir());
}

#[test]
fn a_failing_buildpack_stops_the_build_with_exit_5_naming_it() {
    let mut setup = Setup::new();
    setup.buildpack("test/ok", "0.10", "", "echo first-ran\n");
    setup.buildpack(
        "test/broken",
        "0.10",
        "",
        "echo 'about to fail' >&2\nexit 7\n",
    );
    setup.buildpack("test/never", "0.10", "", "touch never.txt\n");
    let out = setup.build(&[], 5);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("[test/ok] first-ran"), "{stdout}");
    assert!(stderr.contains("[test/broken] about to fail"), "{stderr}");
    assert!(
        stderr.contains("buildpack test/broken@1.0 failed: bin/build exited with code 7"),
        "{stderr}"
    );
    assert!(!setup.path("app/never.txt").exists());
}

#[test]
fn a_missing_bin_build_is_invalid_input_naming_the_buildpack() {
    let mut setup = Setup::new();
    let dir = setup.buildpack("test/nobuild", "0.10", "", "");
    fs::remove_file(dir.join("bin/build")).unwrap();
    let out = setup.build(&[], 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("test/nobuild@1.0 has no runnable bin/build"),
        "{stderr}"
    );
    assert!(stderr.contains(s(&dir.join("bin/build"))), "{stderr}");
}

#[test]
fn a_group_naming_an_unknown_buildpack_runs_nothing() {
    let mut setup = Setup::new();
    setup.buildpack("test/first", "0.10", "", "touch first.txt\n");
    setup.group += "[[group]]\nid = \"test/ghost\"\nversion = \"9.9\"\n";
    let out = setup.build(&[], 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("buildpack test/ghost@9.9 named in the group is not there"),
        "{stderr}"
    );
    assert!(stderr.contains("test_ghost/9.9/buildpack.toml"), "{stderr}");
    assert!(
        !setup.path("app/first.txt").exists(),
        "nothing runs before the group resolves"
    );
}

#[test]
fn export_and_cache_refuse_a_store_they_would_not_read() {
    let mut setup = Setup::new();
    setup.buildpack("test/ok", "0.10", "", "touch ran.txt\n");
    let store = setup.path("elsewhere");
    let cache = setup.path("cache");
    let out = setup.build(&["--store", s(&store), "--cache-dir", s(&cache)], 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot use another"), "{stderr}");
    assert!(stderr.contains(s(&store)), "{stderr}");
    assert!(!setup.path("app/ran.txt").exists(), "nothing runs");
}

#[test]
fn run_image_needs_output() {
    let mut setup = Setup::new();
    setup.buildpack("test/ok", "0.10", "", "");
    let out = setup.build(&["--run-image", "oci:/nonexistent/run"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output"));
}
