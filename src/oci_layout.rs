//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): writing
//! blobs and JSON documents, resolving a tag, tagging a manifest.
//!
//! Every JSON document that gets a digest is serialized canonically ([`canonical_json`]):
//! through `serde_json::Value`, whose maps are sorted, because oci-spec keeps labels and
//! annotations in `HashMap`s whose order changes from run to run. Blobs are written to a temp
//! file beside their final name, fsynced, and renamed when complete; `index.json` is replaced
//! atomically, last, so a reader never sees a tag that points at missing blobs. Blobs read back
//! are verified against their digest.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::blob_file::{self, Placed};
use crate::digest::{Digest, HashingWriter, VerifyingReader};
use crate::error::{Error, Result};

/// Annotation holding a manifest's tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `oci:DIR[:TAG]`, as skopeo writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`), if given.
    pub tag: Option<String>,
}

impl std::str::FromStr for LayoutRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let rest = s
            .strip_prefix("oci:")
            .ok_or_else(|| format!("{s:?}: expected oci:DIR[:TAG]"))?;
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') => (dir, Some(tag.to_owned())),
            _ => (rest, None),
        };
        if dir.is_empty() || tag.as_deref() == Some("") {
            return Err(format!("{s:?}: expected oci:DIR[:TAG]"));
        }
        Ok(Self {
            dir: PathBuf::from(dir),
            tag,
        })
    }
}

impl std::fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci:{}", self.dir.display())?;
        match &self.tag {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        }
    }
}

/// The canonical bytes of a JSON document: sorted keys, no whitespace.
pub fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI documents serialize");
    serde_json::to_vec(&value).expect("JSON values serialize")
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    root: PathBuf,
}

impl ImageLayout {
    /// Opens the layout at `root`, creating `oci-layout` and `blobs/sha256` when missing.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(Error::write(&blobs))?;
        let layout = Self { root };
        let marker = layout.root.join("oci-layout");
        if !marker.is_file() {
            layout.write_file(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(layout)
    }

    /// Opens an existing layout.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `root` has no `oci-layout` file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.join("oci-layout").is_file() {
            return Err(Error::invalid(
                &root,
                "not an OCI image layout (no oci-layout file)",
            ));
        }
        Ok(Self { root })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Opens a blob; the reader fails at end of stream if its bytes do not match `digest`.
    ///
    /// # Errors
    /// [`Error::Read`] when it is missing.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(Error::read(&path))?;
        Ok(VerifyingReader::new(file, digest.clone()))
    }

    /// Places an existing blob file (hard link or verified copy, see [`blob_file`]).
    ///
    /// # Errors
    /// As [`blob_file::place_verified`].
    pub fn import_blob(&self, src: &Path, digest: &Digest) -> Result<Placed> {
        blob_file::place_verified(src, digest, &self.blob_path(digest))
    }

    /// A writer for a new blob, named by its digest on [`LayoutBlob::commit`].
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn new_blob(&self) -> Result<LayoutBlob> {
        let dir = self.root.join("blobs/sha256");
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(Error::write(&dir))?;
        Ok(LayoutBlob {
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, temp)),
            dir,
        })
    }

    /// Writes a JSON document canonically as a blob; returns its descriptor.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn put_json(&self, media_type: MediaType, value: &impl Serialize) -> Result<Descriptor> {
        let bytes = canonical_json(value);
        let mut blob = self.new_blob()?;
        blob.write_all(&bytes).map_err(Error::write(&self.root))?;
        let (digest, size) = blob.commit()?;
        Ok(descriptor(media_type, size, &digest))
    }

    /// Reads and parses a JSON blob, verified.
    ///
    /// # Errors
    /// [`Error::Read`] (mismatch included) or [`Error::Invalid`] when it does not parse.
    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(Error::read(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(&path, e.to_string()))
    }

    /// `index.json`, or an empty index when there is none.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an index that does not parse.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::invalid(&path, e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ImageIndexBuilder::default()
                .schema_version(2u32)
                .manifests(Vec::<Descriptor>::new())
                .build()
                .expect("an empty index builds")),
            Err(e) => Err(Error::read(&path)(e)),
        }
    }

    /// The manifest tagged `tag`; without a tag, the only manifest of the index.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the tag is not there, or no tag is given and the index does not
    /// hold exactly one manifest.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor> {
        let index = self.index()?;
        let path = self.root.join("index.json");
        let tagged = |d: &&Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .map(String::as_str)
                == tag
        };
        let found: Vec<&Descriptor> = match tag {
            Some(_) => index.manifests().iter().filter(tagged).collect(),
            None => index.manifests().iter().collect(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::invalid(
                &path,
                format!("no manifest tagged {:?}", tag.unwrap_or("")),
            )),
            _ => Err(Error::invalid(
                &path,
                "several manifests: name one with oci:DIR:TAG",
            )),
        }
    }

    /// Points `tag` at `manifest` in `index.json` (other tags are kept), atomically.
    ///
    /// # Errors
    /// [`Error::Write`], or [`Error::Invalid`] for an existing index that does not parse.
    pub fn set_tag(&self, manifest: &Descriptor, tag: Option<&str>) -> Result<()> {
        let mut index = self.index()?;
        let mut manifest = manifest.clone();
        let mut manifests: Vec<Descriptor> = match tag {
            Some(tag) => {
                manifest.set_annotations(Some([(REF_NAME.to_owned(), tag.to_owned())].into()));
                index
                    .manifests()
                    .iter()
                    .filter(|d| {
                        d.annotations()
                            .as_ref()
                            .and_then(|a| a.get(REF_NAME))
                            .is_none_or(|t| t != tag)
                    })
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        manifests.push(manifest);
        index.set_manifests(manifests);
        let path = self.root.join("index.json");
        self.write_file(&path, &canonical_json(&index))
    }

    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.root)
            .map_err(Error::write(&self.root))?;
        temp.write_all(bytes).map_err(Error::write(path))?;
        temp.as_file().sync_all().map_err(Error::write(path))?;
        temp.persist(path).map_err(|e| Error::Write {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        blob_file::sync_dir(&self.root)
    }
}

/// A descriptor for a blob of ours.
pub fn descriptor(media_type: MediaType, size: u64, digest: &Digest) -> Descriptor {
    let digest: oci_spec::image::Digest = digest.as_str().parse().expect("sha256 digests parse");
    Descriptor::new(media_type, size, digest)
}

/// Our digest type for a descriptor's digest.
///
/// # Errors
/// A descriptor whose digest is not sha256 (`path` names the document).
pub fn descriptor_digest(path: &Path, d: &Descriptor) -> Result<Digest> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|reason: String| Error::invalid(path, reason))
}

/// A blob being written into a layout; dropped without commit, its temp file is removed.
pub struct LayoutBlob {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    dir: PathBuf,
}

impl LayoutBlob {
    /// Flushes, fsyncs and renames the blob to its digest; returns digest and size.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (buffered, digest, size) = self.inner.finish();
        let temp = buffered.into_inner().map_err(|e| Error::Write {
            path: self.dir.clone(),
            source: e.into_error(),
        })?;
        let path = self.dir.join(digest.hex());
        if !path.is_file() {
            temp.as_file().sync_all().map_err(Error::write(&path))?;
            temp.persist(&path).map_err(|e| Error::Write {
                path: path.clone(),
                source: e.error,
            })?;
            blob_file::sync_dir(&self.dir)?;
        }
        Ok((digest, size))
    }
}

impl Write for LayoutBlob {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_refs_parse_with_and_without_tag() {
        let r: LayoutRef = "oci:/tmp/img:v1".parse().unwrap();
        assert_eq!(
            (r.dir.to_str(), r.tag.as_deref()),
            (Some("/tmp/img"), Some("v1"))
        );
        let r: LayoutRef = "oci:out".parse().unwrap();
        assert_eq!((r.dir.to_str(), r.tag.as_deref()), (Some("out"), None));
        assert!("docker://x".parse::<LayoutRef>().is_err());
        assert!("oci:".parse::<LayoutRef>().is_err());
        assert_eq!(r.to_string(), "oci:out");
    }

    #[test]
    fn tags_replace_their_own_entry_and_keep_others() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ImageLayout::create(dir.path()).unwrap();
        let a = layout.put_json(MediaType::ImageManifest, &"a").unwrap();
        let b = layout.put_json(MediaType::ImageManifest, &"b").unwrap();
        layout.set_tag(&a, Some("one")).unwrap();
        layout.set_tag(&b, Some("two")).unwrap();
        layout.set_tag(&b, Some("one")).unwrap();
        assert_eq!(layout.index().unwrap().manifests().len(), 2);
        assert_eq!(layout.resolve(Some("one")).unwrap().digest(), b.digest());
        assert!(layout.resolve(Some("three")).is_err());
        assert!(layout.resolve(None).is_err());
        let json: String = layout
            .read_json(&descriptor_digest(dir.path(), &a).unwrap())
            .unwrap();
        assert_eq!(json, "a");
    }

    #[test]
    fn canonical_json_sorts_hash_map_keys() {
        let map: std::collections::HashMap<String, u32> =
            (0..50).map(|i| (format!("k{i}"), i)).collect();
        let text = String::from_utf8(canonical_json(&map)).unwrap();
        assert!(text.starts_with(r#"{"k0":0,"k1":1,"k10":10,"#), "{text}");
    }
}
