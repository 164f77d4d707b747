//! Export writes OCI images that real tools accept: skopeo inspects and copies them, umoci
//! unpacks a rootfs whose layer files equal the layers dir, oci-image-tool validates the layout;
//! exporting an unchanged build again gives the same manifest digest; a run image's layers are
//! reused bit for bit.

mod common;

use common::cnb::make_build;
use common::*;

fn export(root: &std::path::Path, output: &str, extra: &[&str]) -> serde_json::Value {
    let layers = root.join("layers");
    let app = root.join("app");
    let group = root.join("group.toml");
    let mut args = vec![
        "export",
        "--layers",
        s(&layers),
        "--app",
        s(&app),
        "--group",
        s(&group),
        "--output",
        output,
        "--uid",
        "1000",
        "--gid",
        "1000",
    ];
    args.extend_from_slice(extra);
    let mut out = json_lines(&args);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

#[test]
fn skopeo_umoci_and_oci_image_tool_accept_the_image_and_reexport_is_identical() {
    for tool in ["skopeo", "umoci", "oci-image-tool"] {
        require_tool(tool);
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let image = root.join("image");
    let target = format!("oci:{}:v1", s(&image));
    let report = export(root, &target, &[]);

    let sources: Vec<_> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["source"].as_str().unwrap(),
                l["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            "launch example/jdk:jdk",
            "launch example/app:web",
            "app app"
        ],
        "launch layers in group order, then the app; cache-only and build-only layers left out"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&sh(&format!("skopeo inspect {target}"))).unwrap();
    assert_eq!(inspect["Digest"], report["manifest"]);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let created = layerize::export::created_from_env(epoch.as_deref()).unwrap();
    assert_eq!(inspect["Created"], layerize::export::rfc3339(created));
    let env: Vec<&str> = inspect["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"JAVA_HOME=/layers/example_jdk/jdk"),
        "{env:?}"
    );
    assert!(env.contains(&"JAVA_OPTS=x"), "{env:?}");
    assert!(env.contains(&"MODE=prod"), "{env:?}");
    assert!(
        env.contains(&"PATH=/layers/example_app/web/bin:/layers/example_jdk/jdk/bin"),
        "{env:?}"
    );
    let label: serde_json::Value = serde_json::from_str(
        inspect["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let jdk = &label["buildpacks"][0];
    assert_eq!(jdk["key"], "example/jdk");
    assert_eq!(jdk["version"], "1.2.0");
    assert_eq!(jdk["layers"]["jdk"]["sha"], report["layers"][0]["diff_id"]);
    assert_eq!(jdk["layers"]["jdk"]["data"]["version"], "21.0.2");
    assert_eq!(jdk["layers"]["jdk"]["launch"], true);
    assert_eq!(jdk["layers"]["jdk"]["cache"], true);
    assert!(
        jdk["layers"].get("cache-only").is_none(),
        "only launch layers are listed"
    );
    assert_eq!(
        label["buildpacks"][1]["layers"]["web"]["data"]["port"],
        8080
    );
    assert_eq!(label["app"][0]["sha"], report["layers"][2]["diff_id"]);

    sh(&format!(
        "skopeo copy {target} dir:{}",
        s(&root.join("copied"))
    ));
    sh(&format!(
        "oci-image-tool validate --type image --ref name=v1 {}",
        s(&image)
    ));

    let bundle = root.join("bundle");
    sh(&format!(
        "umoci unpack --rootless --image {}:v1 {}",
        s(&image),
        s(&bundle)
    ));
    for layer in ["example_jdk/jdk", "example_app/web"] {
        let unpacked = bundle.join("rootfs/layers").join(layer);
        let original = root.join("layers").join(layer);
        let diff = |dir: &std::path::Path| {
            json_lines(&["tar", s(dir), "--uid", "0", "--gid", "0"])[0]["diff_id"].clone()
        };
        assert_eq!(
            diff(&unpacked),
            diff(&original),
            "{layer}: content, modes, symlinks"
        );
    }
    assert_eq!(
        std::fs::read(bundle.join("rootfs/workspace/src/main.py")).unwrap(),
        b"print(1)\n"
    );
    assert!(!bundle.join("rootfs/layers/example_jdk/cache-only").exists());

    let again = export(root, &target, &[]);
    assert_eq!(
        again["manifest"], report["manifest"],
        "unchanged build, same image"
    );
    assert_eq!(report["layers"][0]["cache_hit"], false);
    assert_eq!(
        again["layers"][0]["cache_hit"], true,
        "unchanged layer: commit hit, no re-tar"
    );
    assert_eq!(again["layers"][1]["cache_hit"], true);
    assert_eq!(again["layers"][0]["placed"], "present");
}

#[test]
fn a_run_image_keeps_its_layers_and_is_recorded_for_rebase() {
    require_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let run = root.join("run");
    let run_ref = format!("oci:{}:base", s(&run));
    let base = export(root, &run_ref, &[]);

    let out_ref = format!("oci:{}:app", s(&root.join("out")));
    let report = export(root, &out_ref, &["--run-image", &run_ref]);
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    for i in 0..3 {
        assert_eq!(layers[i]["source"], "run");
        assert_eq!(
            layers[i]["digest"], base["layers"][i]["digest"],
            "blob reused as is"
        );
        assert_eq!(layers[i]["diff_id"], base["layers"][i]["diff_id"]);
    }
    let inspect: serde_json::Value =
        serde_json::from_str(&sh(&format!("skopeo inspect {out_ref}"))).unwrap();
    let label: serde_json::Value = serde_json::from_str(
        inspect["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(label["runImage"]["topLayer"], base["layers"][2]["diff_id"]);
    assert_eq!(label["runImage"]["reference"], base["manifest"]);

    let blob = run.join("blobs/sha256").join(
        base["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 1;
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let out = run_layerize(
        &[
            "export",
            "--layers",
            s(&root.join("layers")),
            "--app",
            s(&root.join("app")),
            "--run-image",
            &run_ref,
            "--output",
            &format!("oci:{}:x", s(&root.join("bad"))),
        ],
        4,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
}

/// A later buildpack's change captured as a delta: export ships the jdk layer as its buildpack
/// committed it with the delta right on top (umoci's rootfs has the changed tree, whiteout
/// applied); the volume cache, one tar per layer, gets the changed tree tarred afresh, and a
/// second save writes nothing.
#[test]
fn a_captured_delta_is_exported_on_top_of_its_layer_and_cached_merged() {
    require_tool("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let layers = root.join("layers");
    let jdk = layers.join("example_jdk/jdk");
    let guard = ["--layers", s(&layers), "--uid", "1000", "--gid", "1000"];
    let commit = json_lines(&[&["commit", "--buildpack", "example/jdk"][..], &guard].concat());
    let committed = commit.iter().find(|l| l["layer"] == "jdk").unwrap()["diff_id"].clone();
    std::fs::write(jdk.join("lib/added.txt"), "by the app buildpack").unwrap();
    std::fs::remove_file(jdk.join("env/JAVA_OPTS.default")).unwrap();
    let check = &[
        &["check", "--by", "example/app", "--policy", "capture"][..],
        &guard,
    ]
    .concat();
    let delta = json_lines(check)[0]["delta"].clone();
    assert!(delta.is_string(), "captured");

    let image = root.join("image");
    let report = export(root, &format!("oci:{}:v1", s(&image)), &[]);
    let layers_out = report["layers"].as_array().unwrap();
    let at = layers_out
        .iter()
        .position(|l| l["name"] == "example/jdk:jdk")
        .unwrap();
    assert_eq!(
        layers_out[at]["diff_id"], committed,
        "the layer as committed"
    );
    assert_eq!(layers_out[at + 1]["source"], "delta");
    assert_eq!(layers_out[at + 1]["name"], "example/app:jdk@example_jdk.1");
    assert_eq!(layers_out[at + 1]["diff_id"], delta);

    let bundle = root.join("bundle");
    sh(&format!(
        "umoci unpack --rootless --image {}:v1 {}",
        s(&image),
        s(&bundle)
    ));
    let tar_diff_id = |dir: &std::path::Path| {
        json_lines(&["tar", s(dir), "--uid", "0", "--gid", "0"])[0]["diff_id"].clone()
    };
    let unpacked = bundle.join("rootfs/layers/example_jdk/jdk");
    assert!(!unpacked.join("env/JAVA_OPTS.default").exists(), "whiteout");
    assert_eq!(tar_diff_id(&unpacked), tar_diff_id(&jdk));

    let (cache, group) = (root.join("cache"), root.join("group.toml"));
    let save = || {
        let args = [
            "cache",
            "save",
            "--cache-dir",
            s(&cache),
            "--group",
            s(&group),
        ];
        json_lines(&[&args[..], &guard].concat()).remove(0)
    };
    let cached = |saved: &serde_json::Value| {
        saved["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "example/jdk:jdk")
            .unwrap()
            .clone()
    };
    let first = save();
    assert_eq!(cached(&first)["action"], "written");
    let tar = root.join("cache/committed").join(format!(
        "{}.tar",
        cached(&first)["diff_id"].as_str().unwrap()
    ));
    let names = sh(&format!("tar -tf {}", s(&tar)));
    assert!(
        names.contains("/layers/example_jdk/jdk/lib/added.txt"),
        "{names}"
    );
    assert!(!names.contains("JAVA_OPTS.default"), "{names}");
    assert_ne!(cached(&first)["diff_id"], committed);
    let second = save();
    assert_eq!(second["unchanged"], true);
    assert_eq!(cached(&second)["action"], "reused");
}
