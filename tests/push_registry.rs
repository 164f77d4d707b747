//! Push to a real registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a temp
//! storage dir; skopeo pulls the image back with the same manifest digest; a second push sends
//! no blob.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cnb::make_build;
use common::*;

/// The registry process, killed when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn start_registry(dir: &std::path::Path) -> Registry {
    require_tool("docker-registry");
    let port = free_port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            s(&dir.join("storage"))
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .args(["serve", s(&config)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let registry = Registry { child, port };
    for _ in 0..300 {
        if answers(port) {
            return registry;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not answer on 127.0.0.1:{port}");
}

#[test]
fn push_then_pull_back_gives_the_same_manifest_and_a_second_push_sends_no_blob() {
    require_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let image = format!("oci:{}:v1", s(&root.join("image")));
    let exported = json_lines(&[
        "export",
        "--layers",
        s(&root.join("layers")),
        "--app",
        s(&root.join("app")),
        "--output",
        &image,
    ])
    .remove(0);
    let registry = start_registry(root);
    let target = format!("127.0.0.1:{}/team/app:v1", registry.port);

    let first = json_lines(&["push", &image, &target]).remove(0);
    assert_eq!(first["manifest"], exported["manifest"]);
    assert_eq!(
        first["pushed"].as_array().unwrap().len(),
        4,
        "config and 3 layers"
    );
    assert!(first["skipped"].as_array().unwrap().is_empty());

    let pulled = root.join("pulled");
    sh(&format!(
        "skopeo copy --src-tls-verify=false docker://{target} oci:{}:back",
        s(&pulled)
    ));
    let inspect: serde_json::Value =
        serde_json::from_str(&sh(&format!("skopeo inspect oci:{}:back", s(&pulled)))).unwrap();
    assert_eq!(
        inspect["Digest"], exported["manifest"],
        "the registry kept our bytes"
    );

    let second = json_lines(&["push", &image, &target]).remove(0);
    assert!(second["pushed"].as_array().unwrap().is_empty(), "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(second["manifest"], exported["manifest"]);
}

#[test]
fn an_unreachable_registry_is_an_error_naming_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let image = format!("oci:{}:v1", s(&root.join("image")));
    json_lines(&[
        "export",
        "--layers",
        s(&root.join("layers")),
        "--app",
        s(&root.join("app")),
        "--output",
        &image,
    ]);
    let port = free_port();
    let out = run_layerize(&["push", &image, &format!("127.0.0.1:{port}/app:v1")], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/v2/app/blobs/")),
        "{stderr}"
    );
}
