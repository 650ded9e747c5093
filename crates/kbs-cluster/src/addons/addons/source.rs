//! Where each manifest is read from — the upstream URL, the same path under a mirror, or a file in
//! a local directory — and the reading itself. Reading happens on the machine running kbs,
//! before anything touches the cluster; the hosts never download manifests themselves, so an
//! air-gapped cluster needs only the machine running kbs to see the files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kbs_inventory::ManifestSource;

use super::error::AddonError;

/// Downloads one URL. [`HttpFetch`] does it over HTTP(S); tests give a fake.
pub trait Fetch: Send + Sync {
    fn get(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// HTTP(S) with rustls and the webpki roots, one minute per file at most.
pub struct HttpFetch {
    agent: ureq::Agent,
}

/// Far above any add-on manifest (Calico's CRDs are ~2 MiB), far below trouble.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

impl Default for HttpFetch {
    fn default() -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        HttpFetch { agent }
    }
}

impl Fetch for HttpFetch {
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
            other => other.to_string(),
        })?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST_BYTES)
            .read_to_vec()
            .map_err(|e| e.to_string())
    }
}

/// Where one manifest is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url(String),
    File(PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Url(url) => f.write_str(url),
            Location::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `https://host/path` → `host/path`: the layout mirrors and directories keep.
pub fn mirror_path(upstream: &str) -> &str {
    upstream
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(upstream)
}

/// Where `upstream` is read under `source`.
pub fn locate(source: &ManifestSource, upstream: &str) -> Location {
    match source {
        ManifestSource::Upstream => Location::Url(upstream.to_string()),
        ManifestSource::Mirror(base) => Location::Url(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            mirror_path(upstream)
        )),
        ManifestSource::Directory(dir) => Location::File(dir.join(mirror_path(upstream))),
    }
}

/// The file name of a manifest: the last segment of its URL.
pub fn file_name(upstream: &str) -> &str {
    upstream.rsplit('/').next().unwrap_or(upstream)
}

/// Reads `location` (a download runs on tokio's blocking pool: ureq blocks).
pub async fn read(
    fetch: &Arc<dyn Fetch>,
    location: &Location,
    addon: &str,
    file: &str,
) -> Result<Vec<u8>, AddonError> {
    let failed = |message: String, hint: &str| AddonError::Fetch {
        addon: addon.to_string(),
        file: file.to_string(),
        origin: location.to_string(),
        message,
        hint: hint.to_string(),
    };
    match location {
        Location::File(path) => read_file(path).map_err(|m| {
            failed(
                m,
                "put the upstream file at <directory>/<upstream host>/<upstream path> (see docs/addons.md)",
            )
        }),
        Location::Url(url) => {
            let fetch = fetch.clone();
            let url_owned = url.clone();
            tokio::task::spawn_blocking(move || fetch.get(&url_owned))
                .await
                .map_err(|e| failed(e.to_string(), "re-run kbs"))?
                .map_err(|m| {
                    failed(
                        m,
                        "check that this machine reaches the server (or set `addons.manifests` to a mirror or a local directory)",
                    )
                })
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRDS: &str =
        "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml";

    #[test]
    fn upstream_mirror_and_directory_resolve_to_the_same_path() {
        assert_eq!(
            locate(&ManifestSource::Upstream, CRDS),
            Location::Url(CRDS.into())
        );
        assert_eq!(
            locate(&ManifestSource::Mirror("http://10.61.0.1/manifests".into()), CRDS),
            Location::Url(
                "http://10.61.0.1/manifests/raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml"
                    .into()
            )
        );
        assert_eq!(
            locate(&ManifestSource::Directory("/srv/m".into()), CRDS),
            Location::File(
                "/srv/m/raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml"
                    .into()
            )
        );
        assert_eq!(file_name(CRDS), "operator-crds.yaml");
    }

    #[tokio::test]
    async fn a_missing_local_file_names_the_addon_file_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let fetch: Arc<dyn Fetch> = Arc::new(HttpFetch::default());
        let location = locate(&ManifestSource::Directory(dir.path().into()), CRDS);
        let err = read(&fetch, &location, "calico", "operator-crds.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("could not read calico's manifest operator-crds.yaml from "),
            "{err}"
        );
        assert!(err.contains("raw.githubusercontent.com/projectcalico"), "{err}");
        assert!(err.contains("hint: put the upstream file at"), "{err}");
    }

    /// The real HTTP client against a one-shot server on loopback.
    #[tokio::test]
    async fn http_fetch_reads_a_body_and_reports_a_404() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (status, body) in [("200 OK", "kind: List\n"), ("404 Not Found", "")] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(reply.as_bytes()).unwrap();
            }
        });
        let fetch: Arc<dyn Fetch> = Arc::new(HttpFetch::default());
        let url = format!("http://127.0.0.1:{port}/m/raw.githubusercontent.com/x/components.yaml");
        let body = read(
            &fetch,
            &Location::Url(url.clone()),
            "metrics-server",
            "components.yaml",
        )
        .await
        .unwrap();
        assert_eq!(body, b"kind: List\n");
        let err = read(&fetch, &Location::Url(url), "metrics-server", "components.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP 404"), "{err}");
        server.join().unwrap();
    }
}
