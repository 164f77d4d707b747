//! `layerize ls` over layers dirs in every toml form, with the entries that are not layers, and
//! malformed input: errors name the file and exit 4.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn lists_layers_with_types_and_owner_and_ignores_what_is_not_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path();
    let bp = l.join("paketo-buildpacks_jdk");
    write(
        &bp.join("jdk.toml"),
        "[types]\nbuild = true\nlaunch = true\ncache = true\n[metadata]\nversion = \"17\"\n",
    );
    fs::create_dir_all(bp.join("jdk/bin")).unwrap();
    write(&bp.join("helper.toml"), "[types]\nlaunch = true\n");
    write(&bp.join("meta-only.toml"), "");
    fs::create_dir_all(bp.join("no-toml")).unwrap();
    fs::create_dir_all(bp.join("old.ignore")).unwrap();
    for not_a_layer in [
        "launch.toml",
        "build.toml",
        "store.toml",
        "jdk.sbom.cdx.json",
        "launch.sbom.spdx.json",
    ] {
        write(&bp.join(not_a_layer), "[[processes]]\ntype = \"web\"\n");
    }
    write(&l.join("example_node/node.toml"), "[types]\nbuild = true\n");
    for top in [
        "group.toml",
        "plan.toml",
        "analyzed.toml",
        "config/metadata.toml",
        "sbom/launch/x.json",
        ".layerize/records/x",
    ] {
        write(&l.join(top), "x = 1\n");
    }

    let rows = json_lines(&["ls", "--layers", s(l)]);
    let summary: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}:{} {} {} {}",
                r["buildpack"].as_str().unwrap(),
                r["layer"].as_str().unwrap(),
                r["build"],
                r["launch"],
                r["cache"]
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "example/node:node true false false",
            "paketo-buildpacks/jdk:helper false true false",
            "paketo-buildpacks/jdk:jdk true true true",
            "paketo-buildpacks/jdk:meta-only false false false",
        ]
    );
    assert_eq!(rows[2]["path"].as_str().unwrap(), s(&bp.join("jdk")));

    let human = String::from_utf8(run_layerize(&["ls", "--layers", s(l)], 0).stdout).unwrap();
    assert!(human.contains("paketo-buildpacks/jdk:jdk"), "{human}");
}

#[test]
fn malformed_input_names_the_file_and_exits_4() {
    let cases = [
        ("launch = true\n", "pre-0.6"),
        ("[types]\nbuild = \"yes\"\n", "bad [types]"),
        ("[types\nbuild = true\n", "malformed layer toml"),
        ("metadata = \"x\"\n", "must be a table"),
    ];
    for (text, reason) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let toml = tmp.path().join("example_bp/bad.toml");
        write(&toml, text);
        let out = run_layerize(&["ls", "--layers", s(tmp.path())], 4);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(s(&toml)) && stderr.contains(reason),
            "{text:?}: {stderr}"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("not an id")).unwrap();
    let stderr =
        String::from_utf8(run_layerize(&["ls", "--layers", s(tmp.path())], 4).stderr).unwrap();
    assert!(
        stderr.contains("not an id") && stderr.contains("not an escaped buildpack id"),
        "{stderr}"
    );

    let missing = tmp.path().join("missing");
    let stderr =
        String::from_utf8(run_layerize(&["ls", "--layers", s(&missing)], 4).stderr).unwrap();
    assert!(stderr.contains(s(&missing)), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    run_layerize(&["ls"], 2);
    run_layerize(&["tar"], 2);
    run_layerize(&["tar", "/", "--compression", "lz4"], 2);
}
