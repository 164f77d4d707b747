//! Hostile archives given to `layerize extract`: each is refused with exit 4 and a clear
//! reason, plain, gzip- and zstd-compressed, and nothing is written outside the target (the
//! whole temp root is walked afterwards; a sentinel file and a directory beside the target
//! are checked byte for byte). The archives are crafted byte by byte in `rawtar`.

mod common;
#[path = "hostile_archives/rawtar.rs"]
mod rawtar;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{run_layerize, s};
use layerize::Compression;
use rawtar::*;

const SENTINEL: &[u8] = b"sentinel: must never change\n";
const EXISTING: &[u8] = b"a file outside the target\n";

/// A temp root holding `sentinel`, `outside/existing` and the extraction `target/`.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("sentinel"), SENTINEL).unwrap();
        fs::create_dir(root.path().join("outside")).unwrap();
        fs::write(root.path().join("outside/existing"), EXISTING).unwrap();
        Self { root }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn target(&self) -> PathBuf {
        self.root().join("target")
    }

    /// Everything in the root is the sandbox's own or below `target/` or an `archive*` file.
    fn assert_nothing_escaped(&self, case: &str) {
        for entry in walkdir::WalkDir::new(self.root()).min_depth(1) {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(self.root()).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let allowed = rel == Path::new("sentinel")
                || rel == Path::new("outside")
                || rel == Path::new("outside/existing")
                || first == "target"
                || (rel.parent() == Some(Path::new(""))
                    && first.to_string_lossy().starts_with("archive"));
            assert!(
                allowed,
                "{case}: {} was written outside the target",
                rel.display()
            );
        }
        assert_eq!(
            fs::read(self.root().join("sentinel")).unwrap(),
            SENTINEL,
            "{case}"
        );
        let existing = self.root().join("outside/existing");
        assert_eq!(fs::read(&existing).unwrap(), EXISTING, "{case}");
        assert_eq!(
            fs::metadata(&existing).unwrap().nlink(),
            1,
            "{case}: linked"
        );
        assert_eq!(
            fs::metadata(&existing).unwrap().permissions().mode() & 0o7777,
            0o644,
            "{case}: chmod through a link"
        );
    }

    /// Writes `tar` compressed with `compression` and extracts it; returns the output.
    fn extract(
        &self,
        tar: &[u8],
        compression: Compression,
        args: &[&str],
        code: i32,
    ) -> std::process::Output {
        let archive = self.root().join(format!("archive.{compression}"));
        fs::write(&archive, compress(compression, tar)).unwrap();
        let target = self.target();
        let mut all = vec!["extract", s(&archive), s(&target)];
        all.extend_from_slice(args);
        run_layerize(&all, code)
    }
}

fn compress(compression: Compression, bytes: &[u8]) -> Vec<u8> {
    let mut encoder = compression.encoder(Vec::new()).unwrap();
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const ALL: &[Compression] = &[Compression::None, Compression::Gzip, Compression::Zstd];

/// Makes an archive's bytes, given the sandbox root (for absolute names).
type MakeTar = Box<dyn Fn(&Path) -> Vec<u8>>;

/// A hostile archive: its bytes (given the sandbox root, for absolute names), the extra
/// arguments, and the reason the error must give.
struct Case {
    name: &'static str,
    tar: MakeTar,
    args: &'static [&'static str],
    reason: &'static str,
}

fn case(
    name: &'static str,
    reason: &'static str,
    tar: impl Fn(&Path) -> Vec<u8> + 'static,
) -> Case {
    Case {
        name,
        tar: Box::new(tar),
        args: &[],
        reason,
    }
}

fn abs(root: &Path, rel: &str) -> Vec<u8> {
    root.join(rel).into_os_string().into_encoded_bytes()
}

fn valid_tar() -> Vec<u8> {
    RawTar::new()
        .dir(b"d", 0o755)
        .file(b"d/noise", &noise(64 * 1024, 7))
        .finish()
}

fn cases() -> Vec<Case> {
    let dotdot = "path leaves the target directory (..)";
    let through = "is a symlink: refusing to write through it";
    let long_escape = {
        let mut name = b"./".repeat(60);
        name.extend_from_slice(b"../outside/pwned");
        name
    };
    let mut cases = vec![
        case("dotdot_name", dotdot, |_| {
            RawTar::new().file(b"../outside/pwned", b"x").finish()
        }),
        case("dotdot_nested", dotdot, |_| {
            RawTar::new().file(b"a/b/../../../sentinel", b"x").finish()
        }),
        case("dotdot_in_pax_path", dotdot, |_| {
            RawTar::new()
                .pax(&[("path", b"../outside/pwned")])
                .file(b"innocent", b"x")
                .finish()
        }),
        case("dotdot_in_gnu_long_name", dotdot, move |_| {
            RawTar::new()
                .gnu_long(GNU_LONGNAME, &long_escape)
                .file(b"innocent", b"x")
                .finish()
        }),
        case("dotdot_in_pax_linkpath", dotdot, |_| {
            RawTar::new()
                .pax(&[("linkpath", b"../outside/existing")])
                .link(HARDLINK, b"l", b"innocent")
                .finish()
        }),
        case("dotdot_in_gnu_long_link", dotdot, |_| {
            RawTar::new()
                .gnu_long(GNU_LONGLINK, b"../sentinel")
                .link(HARDLINK, b"l", b"x")
                .finish()
        }),
        case("relative_symlink_then_file", through, |_| {
            RawTar::new()
                .link(SYMLINK, b"esc", b"../outside")
                .file(b"esc/pwned", b"x")
                .finish()
        }),
        case("absolute_symlink_then_file", through, |root| {
            let out = abs(root, "outside");
            RawTar::new()
                .link(SYMLINK, b"esc", &out)
                .file(b"esc/pwned", b"x")
                .finish()
        }),
        case("symlink_chain_then_file", through, |_| {
            RawTar::new()
                .link(SYMLINK, b"a", b"b")
                .link(SYMLINK, b"b", b"../outside")
                .file(b"a/pwned", b"x")
                .finish()
        }),
        case("symlink_then_file_of_same_name", "duplicate entry", |_| {
            RawTar::new()
                .link(SYMLINK, b"f", b"../sentinel")
                .file(b"f", b"x")
                .finish()
        }),
        case("directory_replaced_by_symlink", "duplicate entry", |_| {
            RawTar::new()
                .dir(b"d", 0o755)
                .file(b"d/a", b"x")
                .link(SYMLINK, b"d", b"../outside")
                .file(b"d/pwned", b"x")
                .finish()
        }),
        case("implicit_directory_replaced_by_symlink", through, |_| {
            RawTar::new()
                .file(b"d/a", b"x")
                .link(SYMLINK, b"d", b"../outside")
                .file(b"d/pwned", b"x")
                .finish()
        }),
        case("symlink_then_directory_through_it", through, |_| {
            RawTar::new()
                .link(SYMLINK, b"s", b"../outside")
                .dir(b"s/sub", 0o777)
                .finish()
        }),
        case("hard_link_outside", dotdot, |_| {
            RawTar::new().link(HARDLINK, b"l", b"../sentinel").finish()
        }),
        case(
            "hard_link_absolute",
            "hard link to an absolute path",
            |root| {
                let sentinel = abs(root, "sentinel");
                RawTar::new().link(HARDLINK, b"l", &sentinel).finish()
            },
        ),
        case("hard_link_through_symlink", through, |_| {
            RawTar::new()
                .link(SYMLINK, b"s", b"../outside")
                .link(HARDLINK, b"l", b"s/existing")
                .finish()
        }),
        case(
            "hard_link_to_outside_symlink",
            "not a regular file inside the target",
            |_| {
                RawTar::new()
                    .link(SYMLINK, b"s", b"../sentinel")
                    .link(HARDLINK, b"l", b"s")
                    .finish()
            },
        ),
        case("hard_link_to_itself", "hard link to itself", |_| {
            RawTar::new().link(HARDLINK, b"l", b"l").finish()
        }),
        case("char_device", "device nodes and fifos", |_| {
            RawTar::new()
                .entry(Header::new(CHAR, b"null"), b"")
                .finish()
        }),
        case("block_device", "device nodes and fifos", |_| {
            RawTar::new()
                .entry(Header::new(BLOCK_DEV, b"sda"), b"")
                .finish()
        }),
        case("fifo", "device nodes and fifos", |_| {
            RawTar::new().entry(Header::new(FIFO, b"p"), b"").finish()
        }),
        case("gnu_sparse_file", "unsupported entry type", |_| {
            let mut h = Header::new(GNU_SPARSE, b"sparse");
            h.gnu = true;
            RawTar::new().entry(h, b"").finish()
        }),
        case("duplicate_file", "duplicate entry", |_| {
            RawTar::new().file(b"x", b"1").file(b"./x", b"2").finish()
        }),
        case("size_larger_than_data", "truncated archive", |_| {
            let mut h = Header::new(FILE, b"big");
            h.size = 1 << 20;
            RawTar::new().entry(h, b"only a little data").finish()
        }),
        case(
            "no_end_of_archive_marker",
            "no end-of-archive marker",
            |_| RawTar::new().file(b"f", b"complete entry").bytes,
        ),
        case("bad_header_checksum", "checksum mismatch", |_| {
            let mut tar = RawTar::new().file(b"f", b"x").finish();
            tar[148] = b'7';
            tar
        }),
        case("random_bytes", "corrupt or truncated archive", |_| {
            noise(8192, 42)
        }),
        case("empty_file", "empty file", |_| Vec::new()),
        case("nul_in_pax_path", "NUL byte", |_| {
            RawTar::new()
                .pax(&[("path", b"a\0/../../sentinel")])
                .file(b"f", b"x")
                .finish()
        }),
        case(
            "dotdot_whiteout_name",
            "whiteout name does not hide a file",
            |_| {
                RawTar::new()
                    .dir(b"a", 0o755)
                    .entry(Header::new(FILE, b"a/.wh.."), b"")
                    .finish()
            },
        ),
    ];
    cases.push(Case {
        name: "decompressed_beyond_max_bytes",
        tar: Box::new(|_| RawTar::new().file(b"big", &vec![0u8; 1 << 20]).finish()),
        args: &["--max-bytes", "65536"],
        reason: "exceeds the limit of 65536 bytes",
    });
    cases.push(Case {
        name: "whiteout_through_symlink",
        tar: Box::new(|_| {
            RawTar::new()
                .link(SYMLINK, b"s", b"../outside")
                .entry(Header::new(FILE, b"s/.wh.existing"), b"")
                .finish()
        }),
        args: &["--whiteouts"],
        reason: through,
    });
    cases.push(Case {
        name: "whiteout_of_the_parent",
        tar: Box::new(|_| {
            RawTar::new()
                .entry(Header::new(FILE, b".wh..."), b"")
                .finish()
        }),
        args: &["--whiteouts"],
        reason: "whiteout name does not hide a file",
    });
    cases.push(Case {
        name: "whiteout_of_an_entry_of_the_same_archive",
        tar: Box::new(|_| {
            RawTar::new()
                .file(b"f", b"x")
                .entry(Header::new(FILE, b".wh.f"), b"")
                .finish()
        }),
        args: &["--whiteouts"],
        reason: "whiteout hides an entry of the same archive",
    });
    cases
}

fn assert_refused(
    sandbox: &Sandbox,
    name: &str,
    tar: &[u8],
    compression: Compression,
    args: &[&str],
    reason: &str,
) {
    let out = sandbox.extract(tar, compression, args, 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("layerize: error: ") && stderr.contains(reason),
        "{name} ({compression}): expected {reason:?} in {stderr}"
    );
    assert!(
        stderr.contains("archive."),
        "{name}: the error names the archive: {stderr}"
    );
    sandbox.assert_nothing_escaped(&format!("{name} ({compression})"));
}

#[test]
fn hostile_archives_are_refused_plain_and_compressed_and_nothing_escapes() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in &cases {
        for &compression in ALL {
            let sandbox = Sandbox::new();
            let tar = (case.tar)(sandbox.root());
            assert_refused(
                &sandbox,
                case.name,
                &tar,
                compression,
                case.args,
                case.reason,
            );
        }
    }
}

#[test]
fn truncated_and_corrupted_compressed_streams_are_refused() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let whole = compress(compression, &valid_tar());
        let sandbox = Sandbox::new();
        let archive = sandbox.root().join("archive.cut");
        fs::write(&archive, &whole[..whole.len() / 2]).unwrap();
        let out = run_layerize(&["extract", s(&archive), s(&sandbox.target())], 4);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("corrupt or truncated archive"),
            "{compression}: {stderr}"
        );
        sandbox.assert_nothing_escaped("truncated stream");
    }
    // The tar inside is complete; only the gzip trailer's CRC is wrong.
    let mut gzip = compress(Compression::Gzip, &valid_tar());
    let crc = gzip.len() - 8;
    gzip[crc] ^= 0xff;
    let sandbox = Sandbox::new();
    let archive = sandbox.root().join("archive.badcrc");
    fs::write(&archive, &gzip).unwrap();
    let out = run_layerize(&["extract", s(&archive), s(&sandbox.target())], 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt or truncated archive"));
}

#[test]
fn absolute_names_are_rebased_and_outside_symlinks_are_stored_as_data() {
    let sandbox = Sandbox::new();
    let absolute_target = abs(sandbox.root(), "outside/existing");
    let tar = RawTar::new()
        .dir(b"/layers", 0o755)
        .file(b"/layers/bp/layer/file", b"content")
        .link(SYMLINK, b"/layers/bp/layer/up", b"../../../../outside")
        .link(SYMLINK, b"/layers/bp/layer/abs", &absolute_target)
        .link(HARDLINK, b"/layers/bp/layer/hard", b"layers/bp/layer/file")
        .finish();
    for compression in ALL {
        let _ = fs::remove_dir_all(sandbox.target());
        sandbox.extract(&tar, *compression, &[], 0);
        let layer = sandbox.target().join("layers/bp/layer");
        assert_eq!(fs::read(layer.join("file")).unwrap(), b"content");
        assert_eq!(
            fs::read_link(layer.join("up")).unwrap(),
            Path::new("../../../../outside")
        );
        assert_eq!(
            fs::read_link(layer.join("abs")).unwrap(),
            sandbox.root().join("outside/existing")
        );
        let (file, hard) = (
            fs::metadata(layer.join("file")).unwrap(),
            fs::metadata(layer.join("hard")).unwrap(),
        );
        assert_eq!(file.ino(), hard.ino());
        sandbox.assert_nothing_escaped("absolute names");
    }
}

#[test]
fn a_read_only_directory_entry_does_not_block_its_contents_for_a_non_root_user() {
    // Root ignores permissions, so this runs as nobody, in a root that nobody owns.
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let work = root.path().join("work");
    fs::create_dir(&work).unwrap();
    common::sh(&format!("chown 65534:65534 {}", s(&work)));
    let tar = RawTar::new()
        .dir(b"ro", 0o555)
        .file(b"ro/f", b"1")
        .dir(b"ro/sub", 0o500)
        .file(b"ro/sub/g", b"2")
        .finish();
    let archive = work.join("archive.tar");
    fs::write(&archive, &tar).unwrap();
    let target = work.join("target");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_layerize"))
        .args(["extract", s(&archive), s(&target)])
        .output()
        .expect("setpriv runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(target.join("ro/sub/g")).unwrap(), b"2");
    let mode = |p: &str| fs::metadata(target.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        (mode("ro"), mode("ro/sub"), mode("ro/f")),
        (0o555, 0o500, 0o644)
    );
}

#[test]
fn whiteouts_delete_what_the_target_held_before_and_nothing_else() {
    let sandbox = Sandbox::new();
    let target = sandbox.target();
    fs::create_dir_all(target.join("dir")).unwrap();
    fs::write(target.join("old"), b"old").unwrap();
    fs::write(target.join("dir/old"), b"old").unwrap();
    std::os::unix::fs::symlink("../outside", target.join("link")).unwrap();
    let tar = RawTar::new()
        .entry(Header::new(FILE, b".wh.old"), b"")
        .entry(Header::new(FILE, b".wh.link"), b"")
        .file(b"dir/new", b"new")
        .entry(Header::new(FILE, b"dir/.wh..wh..opq"), b"")
        .finish();
    let out = sandbox.extract(&tar, Compression::None, &["--whiteouts", "--json"], 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["whiteouts"], 3);
    let mut left: Vec<String> = walkdir::WalkDir::new(&target)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(&target)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    left.sort();
    assert_eq!(left, ["dir", "dir/new"]);
    sandbox.assert_nothing_escaped("whiteouts");
}

#[test]
fn a_hostile_tar_in_the_cache_is_skipped_by_cache_restore_and_nothing_escapes() {
    let sandbox = Sandbox::new();
    let layers = sandbox.target().join("layers");
    fs::create_dir_all(layers.join("example_bp/deps")).unwrap();
    fs::write(layers.join("example_bp/deps/f"), b"cached").unwrap();
    fs::write(
        layers.join("example_bp/deps.toml"),
        "[types]\ncache = true\n",
    )
    .unwrap();
    let cache = sandbox.target().join("cache");
    run_layerize(
        &[
            "cache",
            "save",
            "--layers",
            s(&layers),
            "--cache-dir",
            s(&cache),
        ],
        0,
    );
    // Replace the saved tar (a cache volume is untrusted) with one escaping through a symlink.
    let committed = cache.join("committed");
    let tar = fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tar"))
        .expect("a saved layer tar");
    let hostile = RawTar::new()
        .link(
            SYMLINK,
            b"/layers/example_bp/deps/esc",
            b"../../../../../outside",
        )
        .file(b"/layers/example_bp/deps/esc/pwned", b"x")
        .finish();
    fs::write(&tar, hostile).unwrap();
    let restored = sandbox.target().join("restored");
    fs::create_dir_all(&restored).unwrap();
    let out = common::layerize()
        .args([
            "cache",
            "restore",
            "--layers",
            s(&restored),
            "--cache-dir",
            s(&cache),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a symlink: refusing to write through it"),
        "{stderr}"
    );
    assert!(!restored.join("example_bp/deps/esc").exists());
    let leftovers: Vec<_> = walkdir::WalkDir::new(&restored)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".layerize-restore-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    sandbox.assert_nothing_escaped("cache restore");
}
