//! Push to a real registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a temp
//! storage dir; skopeo pulls the image back with the same manifest digest; a second push sends
//! no blob. With authentication: htpasswd (Basic), and tokens from a token service
//! (tests/support/token_server.py) the registry trusts, credentials from `--creds` or the docker
//! config file.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
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
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Starts `program args` (a server on 127.0.0.1:`port`) and waits until it answers HTTP.
fn serve(program: &str, args: &[&str], port: u16) -> Registry {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"));
    let server = Registry { child, port };
    for _ in 0..300 {
        if answers(port) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{program} did not answer on 127.0.0.1:{port}");
}

/// docker-registry storing under `dir`, with `auth` (a YAML `auth:` section, or empty).
fn start_registry(dir: &Path, auth: &str) -> Registry {
    require_tool("docker-registry");
    let port = free_port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            s(&dir.join("storage"))
        ),
    )
    .unwrap();
    serve("docker-registry", &["serve", s(&config)], port)
}

/// The example build exported to `oci:<root>/image:v1`: the reference and the report.
fn export_image(root: &Path) -> (String, serde_json::Value) {
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
    (image, exported)
}

/// `layerize push IMAGE TARGET EXTRA... --json` with the docker config dir `docker_config`
/// (never the user's own).
fn push(image: &str, target: &str, docker_config: &Path, extra: &[&str]) -> Output {
    layerize()
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("LAYERIZE_REGISTRY_CREDS")
        .args(["push", image, target, "--json"])
        .args(extra)
        .output()
        .unwrap()
}

fn pushed(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[test]
fn push_then_pull_back_gives_the_same_manifest_and_a_second_push_sends_no_blob() {
    require_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (image, exported) = export_image(root);
    let registry = start_registry(root, "");
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

    // A registry that asks for nothing never runs a credential helper, even a missing one.
    let broken = root.join("broken-docker-config");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("config.json"),
        r#"{"credsStore":"not-installed"}"#,
    )
    .unwrap();
    let second = pushed(&push(&image, &target, &broken, &[]));
    assert!(second["pushed"].as_array().unwrap().is_empty(), "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(second["manifest"], exported["manifest"]);
}

#[test]
fn an_unreachable_registry_is_an_error_naming_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, _) = export_image(tmp.path());
    let port = free_port();
    let out = run_layerize(&["push", &image, &format!("127.0.0.1:{port}/app:v1")], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/v2/")),
        "{stderr}"
    );
}

/// Without credentials the push is refused, with wrong ones too (the error says `wrong`), with
/// `--creds` it sends config and layers.
fn credentials_are_required_checked_and_used(
    image: &str,
    target: &str,
    config: &Path,
    wrong: &str,
) {
    let no_creds = push(image, target, config, &[]);
    refused(&no_creds, "requires credentials");
    refused(
        &push(image, target, config, &["--creds", "alice:wrong"]),
        wrong,
    );
    let first = pushed(&push(image, target, config, &["--creds", "alice:s3cret"]));
    assert_eq!(first["pushed"].as_array().unwrap().len(), 4);
}

#[test]
fn basic_auth_takes_credentials_from_the_flag_or_the_docker_config() {
    require_tool("htpasswd");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (image, exported) = export_image(root);
    let htpasswd = root.join("htpasswd");
    sh(&format!("htpasswd -Bbn alice s3cret > {}", s(&htpasswd)));
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        s(&htpasswd)
    );
    let registry = start_registry(root, &auth);
    let target = format!("127.0.0.1:{}/team/app:v1", registry.port);
    let (no_config, config) = (root.join("no-config"), root.join("docker"));

    credentials_are_required_checked_and_used(&image, &target, &no_config, "401");

    // What `docker login 127.0.0.1:<port>` saves.
    std::fs::create_dir(&config).unwrap();
    let encoded = sh("printf alice:s3cret | base64").trim().to_owned();
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"{encoded}"}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    let again = pushed(&push(&image, &target, &config, &[]));
    assert_eq!(again["skipped"].as_array().unwrap().len(), 4, "{again}");
    assert_eq!(again["manifest"], exported["manifest"]);

    // A credential helper named for the host, as `docker login` with a helper leaves it.
    let host = format!("127.0.0.1:{}", registry.port);
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"fake"}}}}"#),
    )
    .unwrap();
    let out = push_with_helper(&image, &target, &config, &host, ("alice", "s3cret"));
    assert_eq!(pushed(&out)["skipped"].as_array().unwrap().len(), 4);
}

/// `layerize push IMAGE TARGET --json` with the docker config dir `config` and, first on
/// `PATH`, a credential helper `docker-credential-fake` that answers `get` for `host` (only)
/// with `(username, secret)`.
fn push_with_helper(
    image: &str,
    target: &str,
    config: &Path,
    host: &str,
    (username, secret): (&str, &str),
) -> Output {
    let helpers = config.parent().unwrap().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    let helper = helpers.join("docker-credential-fake");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = \"$EXPECTED\" ] || exit 1\n\
         printf '{\"ServerURL\":\"x\",\"Username\":\"%s\",\"Secret\":\"%s\"}\\n' \
         \"$USERNAME\" \"$SECRET\"\n",
    )
    .unwrap();
    sh(&format!("chmod +x {}", s(&helper)));
    let path = format!("{}:{}", s(&helpers), std::env::var("PATH").unwrap());
    layerize()
        .env("DOCKER_CONFIG", config)
        .env("PATH", path)
        .env("EXPECTED", host)
        .env("USERNAME", username)
        .env("SECRET", secret)
        .env_remove("LAYERIZE_REGISTRY_CREDS")
        .args(["push", image, target, "--json"])
        .output()
        .unwrap()
}

#[test]
fn bearer_tokens_come_from_the_token_service_the_registry_names() {
    for tool in ["openssl", "python3", "skopeo"] {
        require_tool(tool);
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (image, exported) = export_image(root);
    let (key, cert) = (root.join("key.pem"), root.join("cert.pem"));
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {} -out {} -days 1 -subj /CN=issuer 2>/dev/null",
        s(&key),
        s(&cert)
    ));
    let token_port = free_port();
    let script = repo().join("tests/support/token_server.py");
    let port = token_port.to_string();
    let _tokens = serve(
        "python3",
        &[
            s(&script),
            &port,
            s(&key),
            s(&cert),
            "alice",
            "s3cret",
            "test-issuer",
            "test-registry",
            "refresh-4ab2",
        ],
        token_port,
    );
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        s(&cert)
    );
    let registry = start_registry(root, &auth);
    let target = format!("127.0.0.1:{}/team/app:v1", registry.port);
    let no_config = root.join("no-config");

    credentials_are_required_checked_and_used(&image, &target, &no_config, "refused");

    let inspect: serde_json::Value = serde_json::from_str(&sh(&format!(
        "skopeo inspect --tls-verify=false --creds alice:s3cret docker://{target}"
    )))
    .unwrap();
    assert_eq!(inspect["Digest"], exported["manifest"]);

    // An identity token, as `docker login` keeps it for Docker Hub: exchanged for an access
    // token at the token service (an OAuth2 refresh token grant), never sent as a password.
    let config = root.join("docker");
    std::fs::create_dir(&config).unwrap();
    let with_token = |token: &str| {
        std::fs::write(
            config.join("config.json"),
            format!(
                r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"","identitytoken":"{token}"}}}}}}"#,
                registry.port
            ),
        )
        .unwrap();
    };
    with_token("refresh-wrong");
    refused(&push(&image, &target, &config, &[]), "refused");
    with_token("refresh-4ab2");
    let again = pushed(&push(&image, &target, &config, &[]));
    assert_eq!(again["skipped"].as_array().unwrap().len(), 4, "{again}");
    assert_eq!(again["manifest"], exported["manifest"]);

    // The same token from a credential helper, which answers it with the user `<token>`.
    std::fs::write(config.join("config.json"), r#"{"credsStore":"fake"}"#).unwrap();
    let host = format!("127.0.0.1:{}", registry.port);
    let token = ("<token>", "refresh-4ab2");
    let out = push_with_helper(&image, &target, &config, &host, token);
    assert_eq!(pushed(&out)["skipped"].as_array().unwrap().len(), 4);
}
