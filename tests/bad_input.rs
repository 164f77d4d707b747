//! Bad input and faults: a file that changes while it is read, an unreadable file, a layers dir
//! that does not exist, a toml with wrong types, a directory name that is no buildpack id, a
//! full disk. Each fails with an error naming the path and the reason, with exit 4 for bad
//! input and 1 for our own write failing, and leaves nothing partial behind.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{layerize, run_layerize, s};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The read offset of the process `pid` in `path`, if it has it open.
fn read_offset(pid: u32, path: &Path) -> Option<u64> {
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let fd = fd.ok()?;
        if fs::read_link(fd.path()).ok().as_deref() == Some(path) {
            let info =
                fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                    .ok()?;
            return info
                .lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .map(|p| p.trim().parse().unwrap());
        }
    }
    None
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child of this process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

#[test]
fn a_file_that_grows_while_it_is_read_fails_the_layer_and_no_output_is_left() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    let out_dir = root.path().join("out");
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&out_dir).unwrap();
    let big = tree.join("big");
    let size: u64 = 64 << 20;
    fs::File::create(&big).unwrap().set_len(size).unwrap();
    let output = out_dir.join("layer.tar");
    // Stop the writer while it is inside the file (offset below the size), append a byte,
    // let it go on: the layer must fail. A run that was not caught inside the file must pass.
    for _ in 0..50 {
        let mut child = layerize()
            .args(["tar", s(&tree), "--output", s(&output)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut caught = false;
        while child.try_wait().unwrap().is_none() {
            if read_offset(pid, &big).is_none() {
                continue;
            }
            signal(pid, libc::SIGSTOP);
            if read_offset(pid, &big).is_some_and(|pos| pos < size) {
                OpenOptions::new()
                    .append(true)
                    .open(&big)
                    .unwrap()
                    .write_all(b"!")
                    .unwrap();
                caught = true;
            }
            signal(pid, libc::SIGCONT);
            break;
        }
        let out = child.wait_with_output().unwrap();
        if !caught {
            assert!(out.status.success(), "{}", stderr_of(&out));
            fs::remove_file(&output).unwrap();
            continue;
        }
        assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains(s(&big)) && stderr.contains("changed while it was read"),
            "{stderr}"
        );
        assert!(
            names(&out_dir).is_empty(),
            "left behind: {:?}",
            names(&out_dir)
        );
        return;
    }
    panic!("never caught the writer inside the file");
}

#[test]
fn an_unreadable_file_is_named_and_no_output_is_left() {
    // Root reads anything, so the writer runs as nobody.
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (tree, out_dir) = (root.path().join("tree"), root.path().join("out"));
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&out_dir).unwrap();
    fs::write(tree.join("readable"), b"ok").unwrap();
    let secret = tree.join("secret");
    fs::write(&secret, b"no").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    common::sh(&format!("chown 65534:65534 {}", s(&out_dir)));
    let output = out_dir.join("layer.tar");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_layerize"))
        .args(["tar", s(&tree), "--output", s(&output)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("{}: cannot read: Permission denied", s(&secret))),
        "{}",
        stderr_of(&out)
    );
    assert!(names(&out_dir).is_empty());
}

#[test]
fn layers_dir_errors_name_the_path_and_exit_4() {
    let root = tempfile::tempdir().unwrap();
    let layers = root.path().join("layers");
    let out = run_layerize(&["ls", "--layers", s(&layers)], 4);
    assert!(stderr_of(&out).contains(&format!("{}: cannot read: No such file", s(&layers))));

    let toml = layers.join("example_bp/rt.toml");
    fs::create_dir_all(toml.parent().unwrap()).unwrap();
    fs::write(&toml, "[types]\nlaunch = \"yes\"\n").unwrap();
    let out = run_layerize(&["ls", "--layers", s(&layers)], 4);
    assert!(
        stderr_of(&out).contains(&format!("{}: bad [types] table", s(&toml))),
        "{}",
        stderr_of(&out)
    );
    fs::write(&toml, "[types]\nlaunch = true\n").unwrap();
    run_layerize(&["ls", "--layers", s(&layers)], 0);

    let bad_id = layers.join("not an id");
    fs::create_dir(&bad_id).unwrap();
    let out = run_layerize(&["ls", "--layers", s(&layers)], 4);
    assert!(
        stderr_of(&out).contains("not an escaped buildpack id"),
        "{}",
        stderr_of(&out)
    );
    assert!(stderr_of(&out).contains(s(&bad_id)));
}

/// A 1 MiB tmpfs, unmounted on drop.
struct FullDisk(PathBuf);

impl FullDisk {
    fn mount(at: PathBuf) -> Self {
        fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&at)])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (tests run as root)"
        );
        Self(at)
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_with_exit_1_and_leaves_nothing_partial() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let noise: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(tree.join("big"), &noise).unwrap();
    let disk = FullDisk::mount(root.path().join("disk"));

    let output = disk.0.join("layer.tar");
    let out = run_layerize(&["tar", s(&tree), "--output", s(&output)], 1);
    assert!(
        stderr_of(&out).contains(&format!("{}: cannot write", s(&output))),
        "{}",
        stderr_of(&out)
    );
    assert!(
        names(&disk.0).is_empty(),
        "left behind: {:?}",
        names(&disk.0)
    );

    let store = disk.0.join("store");
    let out = run_layerize(&["tar", s(&tree), "--store", s(&store)], 1);
    assert!(
        stderr_of(&out).contains("cannot write"),
        "{}",
        stderr_of(&out)
    );
    assert!(names(&store.join("tmp")).is_empty());
    assert!(names(&store.join("blobs/sha256")).is_empty());
    fs::remove_dir_all(&store).unwrap();

    let archive = root.path().join("layer.tar");
    run_layerize(&["tar", s(&tree), "--output", s(&archive)], 0);
    let target = disk.0.join("target");
    let out = run_layerize(&["extract", s(&archive), s(&target)], 1);
    assert!(
        stderr_of(&out).contains(&format!("{}: cannot write", s(&target.join("big")))),
        "{}",
        stderr_of(&out)
    );
}
