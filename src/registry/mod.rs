//! Push: an image of an OCI layout to a registry, over the OCI distribution API.
//!
//! For each blob of the manifest (config, then layers): `HEAD /v2/<repo>/blobs/<digest>` and
//! skip it when the registry has it, else `POST /v2/<repo>/blobs/uploads/` and one monolithic
//! `PUT <location>?digest=<digest>` streamed from the blob file (never loaded in memory; the
//! registry refuses bytes that do not match the digest). Then `PUT /v2/<repo>/manifests/<tag>`
//! with the manifest's exact bytes, so its digest is the layout's.
//!
//! Before that, the registry's authentication challenge is answered once ([`auth`]: Basic, or
//! a Bearer token from the registry's token service), and every request carries the result.
//!
//! The HTTP client is ureq: blocking, no async runtime. Plain http is used with `insecure` or
//! for a loopback registry; https needs the `tls` cargo feature.

pub mod auth;

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::ImageManifest;
use serde::Serialize;
use ureq::Agent;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci_layout::{ImageLayout, LayoutRef, descriptor_digest};
pub use auth::{CredentialSource, Credentials};

/// `HOST[:PORT]/REPOSITORY[:TAG]` (tag `latest` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]`.
    pub host: String,
    /// Repository path, e.g. `team/app`.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

impl std::str::FromStr for RegistryRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad =
            || format!("{s:?}: expected REGISTRY/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/app:v1");
        let (host, rest) = s.split_once('/').ok_or_else(bad)?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad());
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        let valid_tag = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_repo || !valid_tag || rest.contains('@') {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.host, self.repository, self.tag)
    }
}

impl RegistryRef {
    /// True for 127.0.0.1, ::1 and localhost, which are always spoken to over plain http.
    pub fn is_loopback(&self) -> bool {
        let name = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(h, _)| h);
        matches!(name, "127.0.0.1" | "localhost" | "[::1]")
    }
}

/// One blob sent.
#[derive(Debug, Clone, Serialize)]
pub struct PushedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// What a push sent.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The target.
    pub reference: String,
    /// Blobs uploaded.
    pub pushed: Vec<PushedBlob>,
    /// Blobs the registry already had.
    pub skipped: Vec<Digest>,
    /// The manifest's digest.
    pub manifest: Digest,
}

/// Pushes the image `source` to `target`, authenticating with the credentials of `credentials`
/// if the registry asks (see [`auth`]).
///
/// # Errors
/// [`Error::Invalid`] / [`Error::Read`] for a bad layout; [`Error::Write`] naming the URL when
/// the registry cannot be reached, refuses the credentials or answers with an unexpected status.
pub fn push(
    source: &LayoutRef,
    target: &RegistryRef,
    insecure: bool,
    credentials: &CredentialSource,
) -> Result<PushReport> {
    let layout = ImageLayout::open(&source.dir)?;
    let manifest_desc = layout.resolve(source.tag.as_deref())?;
    let manifest_digest = descriptor_digest(layout.root(), &manifest_desc)?;
    let mut manifest_bytes = Vec::new();
    layout
        .open_blob(&manifest_digest)?
        .read_to_end(&mut manifest_bytes)
        .map_err(Error::read(layout.blob_path(&manifest_digest)))?;
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::invalid(layout.blob_path(&manifest_digest), e.to_string()))?;

    let scheme = if insecure || target.is_loopback() {
        "http"
    } else {
        "https"
    };
    let origin = format!("{scheme}://{}", target.host);
    let base = format!("{origin}/v2/{}", target.repository);
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let authorization = auth::authorize(&agent, &origin, &target.repository, credentials)?;
    let session = Session {
        agent,
        authorization,
    };
    let mut report = PushReport {
        reference: target.to_string(),
        pushed: Vec::new(),
        skipped: Vec::new(),
        manifest: manifest_digest,
    };
    let mut seen = std::collections::HashSet::new();
    for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = descriptor_digest(layout.root(), desc)?;
        if !seen.insert(digest.clone()) {
            continue;
        }
        let url = format!("{base}/blobs/{digest}");
        let status = session
            .head(&url)
            .call()
            .map_err(net(&url))?
            .status()
            .as_u16();
        match status {
            200 => report.skipped.push(digest),
            404 => {
                upload(&session, &base, &layout, &digest)?;
                report.pushed.push(PushedBlob {
                    digest,
                    size: desc.size(),
                });
            }
            other => return Err(unexpected(&url, other, "")),
        }
    }
    let url = format!("{base}/manifests/{}", target.tag);
    let mut response = session
        .put(&url)
        .header("Content-Type", manifest_desc.media_type().to_string())
        .send(&manifest_bytes[..])
        .map_err(net(&url))?;
    let status = response.status().as_u16();
    if status != 201 {
        let body = response.body_mut().read_to_string().unwrap_or_default();
        return Err(unexpected(&url, status, &body));
    }
    if let Some(echoed) = response.headers().get("Docker-Content-Digest")
        && echoed.to_str().ok() != Some(report.manifest.as_str())
    {
        return Err(unexpected(
            &url,
            status,
            "registry reports another manifest digest",
        ));
    }
    Ok(report)
}

/// An agent and the `Authorization` header its requests carry.
struct Session {
    agent: Agent,
    authorization: Option<String>,
}

impl Session {
    fn head(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.authorized(self.agent.head(url))
    }

    fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.authorized(self.agent.post(url))
    }

    fn put(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.authorized(self.agent.put(url))
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }
}

/// POST to open an upload, PUT the blob file to its location.
fn upload(session: &Session, base: &str, layout: &ImageLayout, digest: &Digest) -> Result<()> {
    let url = format!("{base}/blobs/uploads/");
    let mut response = session.post(&url).send_empty().map_err(net(&url))?;
    let status = response.status().as_u16();
    if status != 202 {
        let body = response.body_mut().read_to_string().unwrap_or_default();
        return Err(unexpected(&url, status, &body));
    }
    let location = response
        .headers()
        .get("Location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unexpected(&url, status, "no Location header"))?;
    let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        let origin = base.split("/v2/").next().unwrap_or(base);
        format!("{origin}{location}")
    };
    put_url.push(if put_url.contains('?') { '&' } else { '?' });
    put_url.push_str(&format!("digest={digest}"));
    let path = layout.blob_path(digest);
    let file = File::open(&path).map_err(Error::read(&path))?;
    let mut response = session
        .put(&put_url)
        .header("Content-Type", "application/octet-stream")
        .send(file)
        .map_err(net(&put_url))?;
    let status = response.status().as_u16();
    if status != 201 {
        let body = response.body_mut().read_to_string().unwrap_or_default();
        return Err(unexpected(&put_url, status, &body));
    }
    Ok(())
}

fn net(url: &str) -> impl FnOnce(ureq::Error) -> Error {
    let url = url.to_owned();
    move |e| Error::Write {
        path: PathBuf::from(url),
        source: std::io::Error::other(e.to_string()),
    }
}

fn unexpected(url: &str, status: u16, body: &str) -> Error {
    let hint = if status == 401 {
        " (credentials missing or refused)"
    } else {
        ""
    };
    Error::Write {
        path: PathBuf::from(url),
        source: std::io::Error::other(format!(
            "registry answered {status}{hint}: {}",
            body.trim().chars().take(300).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_registry_host_and_default_to_latest() {
        let r: RegistryRef = "127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "team/app", "v1")
        );
        assert!(r.is_loopback());
        let r: RegistryRef = "registry.example.com/app".parse().unwrap();
        assert_eq!(r.tag, "latest");
        assert!(!r.is_loopback());
        for bad in [
            "app:v1",
            "library/app",
            "127.0.0.1:5000/App",
            "h.io/a@sha256:00",
            "h.io/",
        ] {
            assert!(bad.parse::<RegistryRef>().is_err(), "{bad}");
        }
    }
}
