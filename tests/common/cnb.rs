//! A small CNB build output for export, cache and push tests: two buildpacks with launch, cache
//! and build-only layers (executables, a setuid file, symlinks, env files) and an app dir.

use std::path::Path;

use super::sh;

/// Builds `<root>/layers` (two buildpacks), `<root>/app` and `<root>/group.toml`.
pub fn make_build(root: &Path) {
    sh(&format!(
        r#"
root={root}
L=$root/layers; A=$root/app
rm -rf "$L" "$A"; mkdir -p "$L" "$A"
umask 022
bp=$L/example_jdk
mkdir -p $bp/jdk/bin $bp/jdk/lib $bp/jdk/env $bp/cache-only/m2 $bp/build-only/tool
printf '#!/bin/sh\necho java\n' > $bp/jdk/bin/java; chmod 0755 $bp/jdk/bin/java
printf 'setuid\n' > $bp/jdk/bin/helper; chmod 4755 $bp/jdk/bin/helper
head -c 300000 /dev/urandom > $bp/jdk/lib/rt.jar
ln -s ../lib/rt.jar $bp/jdk/bin/rt-link
ln -s /layers/example_jdk/jdk $bp/jdk/abs-link
printf '/layers/example_jdk/jdk' > $bp/jdk/env/JAVA_HOME.override
printf 'x' > $bp/jdk/env/JAVA_OPTS.default
printf '[types]\nlaunch = true\ncache = true\n\n[metadata]\nversion = "21.0.2"\n' > $bp/jdk.toml
printf 'dep\n' > $bp/cache-only/m2/dep.jar
printf '[types]\ncache = true\n\n[metadata]\nkey = "m2"\n' > $bp/cache-only.toml
printf 'tool\n' > $bp/build-only/tool/t
printf '[types]\nbuild = true\n' > $bp/build-only.toml
bp=$L/example_app
mkdir -p $bp/web/bin $bp/web/env.launch
printf '#!/bin/sh\necho web\n' > $bp/web/bin/web; chmod 0750 $bp/web/bin/web
printf 'prod' > $bp/web/env.launch/MODE
printf '[types]\nlaunch = true\n\n[metadata]\nport = 8080\n' > $bp/web.toml
printf 'main.py\n' > $A/Procfile; mkdir -p $A/src; printf 'print(1)\n' > $A/src/main.py
ln -s src/main.py $A/main-link
printf '[[group]]\nid = "example/jdk"\nversion = "1.2.0"\napi = "0.10"\n\n[[group]]\nid = "example/app"\nversion = "0.1.0"\napi = "0.10"\n' > $root/group.toml
"#,
        root = root.display()
    ));
}
