//! The content-addressed store through the library API: one pass writes the plain, gzip and
//! zstd blobs of a layer, each named by its digest and verified on read; records round-trip.

use std::io::Read;

use layerize::{Compression, LayerRecord, LayerTypes, Owner, Store, TarSpec, compress};

#[test]
fn put_layer_writes_every_compression_in_one_pass_and_blobs_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/tool"), vec![b'x'; 100_000]).unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let spec = TarSpec::prefixed(&tree, b"/layers/bp/tool", Owner::default());

    let mut seen = Vec::new();
    let blobs = store
        .put_layer(&spec, &[Compression::Gzip, Compression::Zstd], &mut |e| {
            seen.push(e.path.to_vec())
        })
        .unwrap();
    assert_eq!(seen, [b"".to_vec(), b"bin".to_vec(), b"bin/tool".to_vec()]);
    let kinds: Vec<Compression> = blobs.blobs.iter().map(|b| b.compression).collect();
    assert_eq!(
        kinds,
        [Compression::None, Compression::Gzip, Compression::Zstd]
    );
    assert_eq!(blobs.blobs[0].digest, blobs.diff_id);

    for blob in &blobs.blobs {
        let mut bytes = Vec::new();
        store
            .open_blob(&blob.digest)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes.len() as u64, blob.size);
        let (mut plain, found) = compress::decompress(&bytes[..]).unwrap();
        assert_eq!(found, blob.compression);
        let (diff_id, _) = layerize::digest::digest_reader(&mut plain).unwrap();
        assert_eq!(
            diff_id, blobs.diff_id,
            "{} decompresses to the diffID",
            blob.compression
        );
    }

    // A second identical pass adds nothing new and leaves no temp files.
    store
        .put_layer(&spec, &[Compression::Gzip, Compression::Zstd], &mut |_| {})
        .unwrap();
    assert_eq!(
        std::fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        3
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn records_round_trip_and_a_corrupt_record_names_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let record: LayerRecord = serde_json::from_value(serde_json::json!({
        "owner": "example/runtime",
        "layer": "rt",
        "types": LayerTypes { build: true, launch: true, cache: false },
        "metadata": {"version": "1.2.3"},
        "diff_id": layerize::Digest::of_bytes(b"tar"),
        "size": 3,
        "files": 1,
        "blobs": [],
    }))
    .unwrap();
    store.put_record(&record).unwrap();
    let owner = record.owner.clone();
    assert_eq!(store.record(&owner, "rt").unwrap().as_ref(), Some(&record));
    assert_eq!(store.records().unwrap(), vec![record]);

    let path = tmp.path().join("records/example_runtime/rt.json");
    std::fs::write(&path, "{not json").unwrap();
    let err = store.record(&owner, "rt").unwrap_err();
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(err.exit_code(), 4);
}
