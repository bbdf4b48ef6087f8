//! Remote-cache settings: the URL, instance, read-only mode, the auth header
//! (read from an environment variable, never printed) and the digest function.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::RemoteError;

/// How blobs and action keys are named on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestFunction {
    /// `cas/<blake3 hex>`, `ac/<action key hex>`: bitzel's own digests, no
    /// rehashing (plain WebDAV, NativeLink, BuildBuddy).
    #[default]
    Blake3,
    /// `cas/<sha256 hex>`, `ac/<sha256("bitzel/ac/v1\0" ‖ key)>`: for servers
    /// that verify SHA-256 content addresses (bazel-remote, Buildbarn). A local
    /// BLAKE3→SHA-256 map spares rehashing.
    Sha256,
}

impl DigestFunction {
    /// The name used in configuration (`blake3` / `sha256`).
    pub fn name(self) -> &'static str {
        match self {
            DigestFunction::Blake3 => "blake3",
            DigestFunction::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for DigestFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DigestFunction {
    type Err = RemoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blake3" => Ok(DigestFunction::Blake3),
            "sha256" | "sha-256" => Ok(DigestFunction::Sha256),
            _ => Err(RemoteError::UnknownDigestFunction(s.to_string())),
        }
    }
}

/// An HTTP header whose value is secret: its `Debug` shows only the name.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeader {
    name: String,
    value: String,
}

impl AuthHeader {
    /// Parse `Name: value`; a string without a colon-separated header name
    /// (e.g. `Bearer abc`) is the value of `Authorization`. `var` names the
    /// environment variable the text came from, for error messages only.
    pub fn parse(text: &str, var: &str) -> Result<AuthHeader, RemoteError> {
        let text = text.trim();
        let (name, value) = match text.split_once(':') {
            Some((n, v))
                if !n.is_empty()
                    && n.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
            {
                (n.trim().to_string(), v.trim().to_string())
            }
            _ => ("Authorization".to_string(), text.to_string()),
        };
        if value.is_empty() || value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
            return Err(RemoteError::BadAuthHeader {
                var: var.to_string(),
            });
        }
        Ok(AuthHeader { name, value })
    }

    /// Read and parse the header from environment variable `var`.
    pub fn from_env(var: &str) -> Result<AuthHeader, RemoteError> {
        match std::env::var(var) {
            Ok(v) => AuthHeader::parse(&v, var),
            Err(_) => Err(RemoteError::AuthEnvMissing {
                var: var.to_string(),
            }),
        }
    }

    /// The header name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header value (never logged).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthHeader({}: <redacted>)", self.name)
    }
}

/// Everything the remote cache needs to know. Build it with
/// [`RemoteConfig::new`] and the `with_*` methods, or from the config file's
/// `bitzel: remote_cache:` mapping with [`RemoteConfig::from_settings`].
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL without trailing slash, e.g. `http://127.0.0.1:8080/cache`.
    pub url: String,
    /// Optional instance name inserted after the base URL (`<base>/<instance>/ac/...`).
    pub instance: Option<String>,
    /// Never upload (for untrusted pull-request builds).
    pub read_only: bool,
    /// Header sent with every request.
    pub auth: Option<AuthHeader>,
    /// How blobs and keys are named.
    pub digest_function: DigestFunction,
    /// Parallel transfers (bounded pool size).
    pub parallelism: usize,
    /// Attempts per request for retryable failures (5xx, 429, timeouts, resets).
    pub attempts: u32,
    /// First backoff delay; doubled after each failed attempt.
    pub backoff: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long the server may stay silent: waiting for a response, or
    /// between two reads or writes of a transfer.
    pub request_timeout: Duration,
}

impl RemoteConfig {
    /// Defaults for `url` (validated: `http://`, `https://`, `grpc://` or
    /// `grpcs://`, no query or fragment). A gRPC (REAPI) URL names blobs by
    /// SHA-256, the one digest function REAPI engines all accept.
    pub fn new(url: &str) -> Result<RemoteConfig, RemoteError> {
        let url = normalize_url(url)?;
        let digest_function = if is_grpc_url(&url) {
            DigestFunction::Sha256
        } else {
            DigestFunction::Blake3
        };
        Ok(RemoteConfig {
            url,
            instance: None,
            read_only: false,
            auth: None,
            digest_function,
            parallelism: 8,
            attempts: 3,
            backoff: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        })
    }

    /// The settings of the config file's `bitzel: remote_cache:` mapping or of
    /// the command line: `--remote-cache URL`, `--remote-cache-read-only`.
    /// `auth_header_env` names an environment variable holding `Name: value`
    /// (or just the `Authorization` value); it is read here.
    pub fn from_settings(
        url: &str,
        read_only: bool,
        instance: Option<&str>,
        auth_header_env: Option<&str>,
        digest_function: Option<&str>,
    ) -> Result<RemoteConfig, RemoteError> {
        let mut c = RemoteConfig::new(url)?.with_read_only(read_only);
        if let Some(i) = instance {
            c = c.with_instance(i)?;
        }
        if let Some(var) = auth_header_env {
            c.auth = Some(AuthHeader::from_env(var)?);
        }
        if let Some(d) = digest_function {
            c.digest_function = d.parse()?;
            if c.is_grpc() && c.digest_function != DigestFunction::Sha256 {
                return Err(RemoteError::BadUrl {
                    url: c.display_url(),
                    reason: "a grpc:// remote names blobs by SHA-256: use digest_function: sha256",
                });
            }
        }
        Ok(c)
    }

    /// Set the instance name (path segments of `[A-Za-z0-9._-]`, separated by `/`).
    pub fn with_instance(mut self, instance: &str) -> Result<RemoteConfig, RemoteError> {
        let i = instance.trim_matches('/');
        let ok = !i.is_empty()
            && i.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            });
        if !ok {
            return Err(RemoteError::BadInstance(instance.to_string()));
        }
        self.instance = Some(i.to_string());
        Ok(self)
    }

    /// Set read-only mode.
    pub fn with_read_only(mut self, read_only: bool) -> RemoteConfig {
        self.read_only = read_only;
        self
    }

    /// Set the auth header.
    pub fn with_auth(mut self, auth: Option<AuthHeader>) -> RemoteConfig {
        self.auth = auth;
        self
    }

    /// Set the digest function.
    pub fn with_digest_function(mut self, f: DigestFunction) -> RemoteConfig {
        self.digest_function = f;
        self
    }

    /// `<url>[/<instance>]`: what `ac/` and `cas/` are appended to.
    pub fn base(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}/{}", self.url, i),
            None => self.url.clone(),
        }
    }

    /// Whether the URL names a REAPI gRPC endpoint (`grpc://`, `grpcs://`).
    pub fn is_grpc(&self) -> bool {
        is_grpc_url(&self.url)
    }

    /// The URL for messages: credentials in it (`user:pass@`) are hidden.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }
}

fn is_grpc_url(url: &str) -> bool {
    url.starts_with("grpc://") || url.starts_with("grpcs://")
}

fn normalize_url(url: &str) -> Result<String, RemoteError> {
    let bad = |reason: &'static str| RemoteError::BadUrl {
        url: redact_url(url),
        reason,
    };
    let u = url.trim();
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .or_else(|| u.strip_prefix("grpc://"))
        .or_else(|| u.strip_prefix("grpcs://"))
        .ok_or_else(|| {
            bad("the scheme must be http://, https:// (HTTP cache) or grpc://, grpcs:// (REAPI)")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("no host"));
    }
    if u.contains('?') || u.contains('#') {
        return Err(bad("a query or fragment is not allowed"));
    }
    if u.bytes()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(bad("spaces or control characters"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// Hide `user:password@` in a URL (for messages).
pub fn redact_url(url: &str) -> String {
    let Some(pos) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(pos + 3);
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated_and_normalized() {
        let c = RemoteConfig::new("http://127.0.0.1:8080/cache/").unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:8080/cache");
        let c = c.with_instance("/main/x86_64/").unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:8080/cache/main/x86_64");
        for bad in [
            "ftp://x",
            "http://",
            "127.0.0.1:80",
            "http://h/?a=1",
            "http://h/a b",
        ] {
            assert!(RemoteConfig::new(bad).is_err(), "{bad}");
        }
        let c = RemoteConfig::new("https://h").unwrap();
        for bad in ["", "a/../b", "a//b", "a b", "a?b"] {
            assert!(c.clone().with_instance(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:secret@h.example/p@x"),
            "https://<redacted>@h.example/p@x"
        );
        let e = RemoteConfig::new("ftp://u:secret@h")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn auth_header_parsing_and_redaction() {
        let a = AuthHeader::parse("Bearer tok3n", "V").unwrap();
        assert_eq!((a.name(), a.value()), ("Authorization", "Bearer tok3n"));
        let a = AuthHeader::parse("x-buildbuddy-api-key: k3y", "V").unwrap();
        assert_eq!((a.name(), a.value()), ("x-buildbuddy-api-key", "k3y"));
        assert!(!format!("{a:?}").contains("k3y"));
        let cfg = RemoteConfig::new("http://h").unwrap().with_auth(Some(a));
        assert!(!format!("{cfg:?}").contains("k3y"));
        assert!(AuthHeader::parse("  ", "V").is_err());
        assert!(AuthHeader::parse("a\r\nb", "V").is_err());
        let e = AuthHeader::from_env("BITZEL_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(e.to_string().contains("BITZEL_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn settings_mapping() {
        let c = RemoteConfig::from_settings("http://h/", true, Some("ci"), None, Some("SHA256"))
            .unwrap();
        assert_eq!(
            (c.base().as_str(), c.read_only, c.digest_function),
            ("http://h/ci", true, DigestFunction::Sha256)
        );
        let e = RemoteConfig::from_settings("http://h", false, None, None, Some("md5"));
        assert!(e.unwrap_err().to_string().contains("blake3"));
    }
}
