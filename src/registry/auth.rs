//! Registry authentication, as docker and skopeo do it: ping `GET /v2/`; on `401`, answer the
//! `WWW-Authenticate` challenge once for the whole push. `Basic` sends the credentials with
//! every request; `Bearer` asks the challenge's `realm` for a token scoped to
//! `repository:<repo>:pull,push` (with the credentials, or anonymously without) and sends that.
//!
//! Credentials come from `--creds USER:PASSWORD`, else from the docker config file docker and
//! podman write at login (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the
//! host's credential helper (`credHelpers.<host>`), else `auths.<host>.identitytoken`, else
//! `auths.<host>.auth` (base64 of `user:password`), else the default helper (`credsStore`). A
//! helper `NAME` is the program `docker-credential-NAME` on `PATH`, asked with `get` and the
//! host on stdin, as docker does.
//!
//! An identity token (what `docker login` keeps for Docker Hub and other OAuth logins: the
//! config's `identitytoken`, or a helper's answer with the user name `<token>`) is not a
//! password: it is exchanged at the token service for an access token with an OAuth2 refresh
//! token grant (`POST realm`, form `grant_type=refresh_token`), as docker's registry client
//! does.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ureq::Agent;

use super::{net, unexpected};
use crate::error::{Error, Result};

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

impl std::str::FromStr for Credentials {
    type Err = String;

    /// `USER:PASSWORD`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self {
                username: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("expected USER:PASSWORD".to_owned()),
        }
    }
}

/// The user name docker gives an identity token (its credential helpers answer it too).
const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// An identity token, as docker keeps it.
    fn identity_token(token: &str) -> Self {
        Self {
            username: IDENTITY_TOKEN_USER.to_owned(),
            password: token.to_owned(),
        }
    }

    /// The identity token these credentials are, if they are one.
    fn as_identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", BASE64.encode(pair))
    }

    /// The credentials the docker config file holds for `host`, if any.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the file when it is not the JSON docker writes.
    pub fn from_docker_config(host: &str) -> Result<Option<Self>> {
        let path = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => Path::new(&home).join(".docker/config.json"),
                None => return Ok(None),
            },
        };
        Self::from_config_file(&path, host)
    }

    fn from_config_file(path: &Path, host: &str) -> Result<Option<Self>> {
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(None);
        };
        let invalid = |reason: &str| Error::invalid(path, reason.to_owned());
        let config: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
        let auths = &config["auths"];
        let entry = [
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
        .iter()
        .map(|key| &auths[key.as_str()])
        .find(|e| !e.is_null());
        if let Some(name) = helper_name(&config["credHelpers"][host]) {
            return from_helper(name, host);
        }
        if let Some(token) = entry
            .and_then(|e| e["identitytoken"].as_str())
            .filter(|token| !token.is_empty())
        {
            return Ok(Some(Credentials::identity_token(token)));
        }
        let Some(encoded) = entry.and_then(|e| e["auth"].as_str()) else {
            return match helper_name(&config["credsStore"]) {
                Some(name) => from_helper(name, host),
                None => Ok(None),
            };
        };
        let decoded = BASE64
            .decode(encoded)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or_else(|| invalid(&format!("auths.{host}.auth is not base64 of USER:PASSWORD")))?;
        decoded
            .parse()
            .map(Some)
            .map_err(|_| invalid(&format!("auths.{host}.auth is not base64 of USER:PASSWORD")))
    }
}

/// Where a push takes its credentials from, should the registry ask for them.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// None: anonymous.
    #[default]
    Anonymous,
    /// These.
    Given(Credentials),
    /// The docker config file ([`Credentials::from_docker_config`]).
    DockerConfig,
}

impl CredentialSource {
    /// The credentials for `host`.
    ///
    /// # Errors
    /// As [`Credentials::from_docker_config`].
    pub fn resolve(&self, host: &str) -> Result<Option<Credentials>> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::Given(credentials) => Ok(Some(credentials.clone())),
            CredentialSource::DockerConfig => Credentials::from_docker_config(host),
        }
    }
}

/// A helper's name from the config, if set.
fn helper_name(value: &serde_json::Value) -> Option<&str> {
    value.as_str().filter(|name| !name.is_empty())
}

/// What the credential helper `docker-credential-<name>` holds for `host`; `None` when it has
/// nothing for it.
///
/// # Errors
/// [`Error::Invalid`] naming the helper when it cannot run or answers something else than
/// docker's JSON.
fn from_helper(name: &str, host: &str) -> Result<Option<Credentials>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let program = format!("docker-credential-{name}");
    let invalid = |reason: String| Error::invalid(&program, reason);
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| invalid(format!("credential helper does not run: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    // A helper that exits without reading its input is answered by its exit status below.
    let _ = stdin.write_all(host.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| invalid(format!("credential helper failed: {e}")))?;
    if !out.status.success() {
        // docker's helpers say "credentials not found" with a failure status.
        let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        return if said.to_ascii_lowercase().contains("not found") {
            Ok(None)
        } else {
            Err(invalid(format!(
                "credential helper failed: {}",
                said.trim()
            )))
        };
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| invalid(format!("credential helper answered no JSON: {e}")))?;
    match (answer["Username"].as_str(), answer["Secret"].as_str()) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        })),
        _ => Err(invalid(
            "credential helper answered no Username and Secret".to_owned(),
        )),
    }
}

/// The `Authorization` header value every request of a push to `repository` at `origin`
/// (`http[s]://host`) must carry, or `None` when the registry wants none.
///
/// # Errors
/// [`Error::Write`] naming the URL when the registry or its token service cannot be reached,
/// refuses the credentials, or asks for credentials that were not given.
pub fn authorize(
    agent: &Agent,
    origin: &str,
    repository: &str,
    source: &CredentialSource,
) -> Result<Option<String>> {
    let url = format!("{origin}/v2/");
    let response = agent.get(&url).call().map_err(net(&url))?;
    let status = response.status().as_u16();
    if status != 401 {
        return match status {
            200..=299 => Ok(None),
            other => Err(unexpected(&url, other, "")),
        };
    }
    let challenge = response
        .headers()
        .get("WWW-Authenticate")
        .and_then(|v| v.to_str().ok())
        .map(Challenge::parse)
        .ok_or_else(|| unexpected(&url, status, "no WWW-Authenticate challenge"))?;
    // Looked up only now: a registry that asks for nothing never runs a credential helper.
    let host = origin.split_once("://").map_or(origin, |(_, host)| host);
    let credentials = source.resolve(host)?;
    let credentials = credentials.as_ref();
    match challenge.scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let creds = credentials.ok_or_else(|| needs_credentials(&url))?;
            if creds.as_identity_token().is_some() {
                return Err(unexpected(
                    &url,
                    status,
                    "the credentials are an identity token, which only a token service takes, \
                     and this registry asks for Basic authentication",
                ));
            }
            Ok(Some(creds.basic()))
        }
        "bearer" => {
            let realm = challenge
                .param("realm")
                .ok_or_else(|| unexpected(&url, status, "Bearer challenge without a realm"))?;
            let scope = format!("repository:{repository}:pull,push");
            let service = challenge.param("service");
            let mut query = vec![("scope", scope.as_str())];
            query.extend(service.map(|service| ("service", service)));
            let identity_token = credentials.and_then(Credentials::as_identity_token);
            let (token_url, response) = match identity_token {
                Some(token) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token),
                        ("client_id", "layerize"),
                    ];
                    form.extend(query);
                    let response = agent
                        .post(realm)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .send(url_encoded(&form));
                    (realm.to_owned(), response)
                }
                None => {
                    let token_url = format!("{realm}?{}", url_encoded(&query));
                    let mut request = agent.get(&token_url);
                    if let Some(creds) = credentials {
                        request = request.header("Authorization", creds.basic());
                    }
                    let response = request.call();
                    (token_url, response)
                }
            };
            let mut response = response.map_err(net(&token_url))?;
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            if status == 401 || status == 403 {
                return Err(if credentials.is_some() {
                    unexpected(&token_url, status, "the credentials were refused")
                } else {
                    needs_credentials(&token_url)
                });
            }
            if status != 200 {
                return Err(unexpected(&token_url, status, &body));
            }
            let json: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| unexpected(&token_url, status, &format!("not a token: {e}")))?;
            let token = json["token"]
                .as_str()
                .or_else(|| json["access_token"].as_str())
                .ok_or_else(|| unexpected(&token_url, status, "no token in the answer"))?;
            Ok(Some(format!("Bearer {token}")))
        }
        other => Err(unexpected(
            &url,
            status,
            &format!("unsupported authentication scheme {other:?}"),
        )),
    }
}

fn needs_credentials(url: &str) -> Error {
    unexpected(
        url,
        401,
        "the registry requires credentials: pass --creds USER:PASSWORD or log in with docker",
    )
}

/// `key=value&...`, each escaped ([`query_escape`]): a query string, or a form body.
fn url_encoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", query_escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `WWW-Authenticate` challenge: a scheme and `key="value"` parameters.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses `Scheme k1="v1",k2=v2`; quoted values may hold commas and `\"`.
    fn parse(header: &str) -> Self {
        let header = header.trim();
        let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            let Some((key, after)) = rest.split_once('=') else {
                break;
            };
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            params.push((key.trim().to_ascii_lowercase(), value));
            rest = after;
        }
        Self {
            scheme: scheme.to_owned(),
            params,
        }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_keep_commas_inside_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(c.param("scope"), Some("repository:team/app:pull,push"));
        let basic = Challenge::parse(r#"Basic realm="a \"quoted\" realm", charset=UTF-8"#);
        assert_eq!(basic.param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(basic.param("charset"), Some("UTF-8"));
    }

    #[test]
    fn docker_config_auths_are_found_by_host_with_or_without_scheme_identity_token_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = BASE64.encode("alice:s3:cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://reg.example:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let creds = Credentials::from_config_file(&path, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(creds.username, "alice");
        assert_eq!(creds.password, "s3:cret");
        assert_eq!(creds.basic(), format!("Basic {auth}"));
        assert!(
            Credentials::from_config_file(&path, "other.example")
                .unwrap()
                .is_none()
        );
        assert_eq!(creds.as_identity_token(), None);
        // An identity token (an OAuth login) comes before the entry's password.
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"reg.example":{{"auth":"{auth}","identitytoken":"tok"}}}}}}"#),
        )
        .unwrap();
        let token = Credentials::from_config_file(&path, "reg.example")
            .unwrap()
            .unwrap();
        assert_eq!(token.as_identity_token(), Some("tok"));
        std::fs::write(&path, r#"{"auths":{"reg.example":{"auth":"%%%"}}}"#).unwrap();
        let err = Credentials::from_config_file(&path, "reg.example").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn forms_and_queries_escape_their_values() {
        assert_eq!(
            url_encoded(&[("scope", "repository:a/b:pull,push"), ("x", "a b&c")]),
            "scope=repository%3Aa%2Fb%3Apull%2Cpush&x=a%20b%26c"
        );
    }

    #[test]
    fn credentials_need_a_user_and_are_not_printed() {
        let creds: Credentials = "bob:pa:ss".parse().unwrap();
        assert_eq!(creds.password, "pa:ss");
        assert!(":x".parse::<Credentials>().is_err());
        assert!("nocolon".parse::<Credentials>().is_err());
        assert!(!format!("{creds:?}").contains("pa:ss"));
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
