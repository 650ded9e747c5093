//! The client side every simulated tool shares (kubectl, kubeadm, kubelet, kube-vip):
//! kubeconfig files, TLS with the cluster CA and client certificates or a bearer token,
//! requests returning the API server's JSON and `Status` errors.

use std::io::BufReader;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// What a client needs from a kubeconfig (the current context's cluster and user).
#[derive(Clone, Default)]
pub struct Kubeconfig {
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys or tokens.
        f.debug_struct("Kubeconfig")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn b64(v: Option<&Value>) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v?.as_str()?.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl Kubeconfig {
    /// Parses kubeconfig YAML; file references are resolved relative to `base_dir`.
    pub fn parse(text: &str, base_dir: &std::path::Path) -> Result<Kubeconfig, String> {
        let v: Value = serde_yaml::from_str(text).map_err(|e| format!("error loading config file: {e}"))?;
        let current = v.get("current-context").and_then(Value::as_str).unwrap_or("");
        let find = |list: &str, name: &str| -> Option<Value> {
            v.get(list)?
                .as_array()?
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .cloned()
        };
        let first = |list: &str| {
            v.get(list)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .cloned()
        };
        let ctx = find("contexts", current).or_else(|| first("contexts"));
        let cluster_name = ctx
            .as_ref()
            .and_then(|c| c.pointer("/context/cluster"))
            .and_then(Value::as_str);
        let user_name = ctx
            .as_ref()
            .and_then(|c| c.pointer("/context/user"))
            .and_then(Value::as_str);
        let cluster = cluster_name
            .and_then(|n| find("clusters", n))
            .or_else(|| first("clusters"))
            .ok_or("invalid configuration: no configuration has been provided")?;
        let user = user_name
            .and_then(|n| find("users", n))
            .or_else(|| first("users"));
        let file = |p: Option<&Value>| -> Option<String> {
            let p = p?.as_str()?;
            std::fs::read_to_string(base_dir.join(p)).ok()
        };
        let c = cluster.get("cluster").cloned().unwrap_or(Value::Null);
        let u = user.and_then(|u| u.get("user").cloned()).unwrap_or(Value::Null);
        Ok(Kubeconfig {
            server: c.get("server").and_then(Value::as_str).unwrap_or("").to_string(),
            ca_pem: b64(c.get("certificate-authority-data"))
                .or_else(|| file(c.get("certificate-authority")))
                .unwrap_or_default(),
            client_cert_pem: b64(u.get("client-certificate-data"))
                .or_else(|| file(u.get("client-certificate"))),
            client_key_pem: b64(u.get("client-key-data")).or_else(|| file(u.get("client-key"))),
            token: u.get("token").and_then(Value::as_str).map(str::to_string),
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Kubeconfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("stat {}: {}", path.display(), crate::cli::io_text(&e)))?;
        Kubeconfig::parse(&text, path.parent().unwrap_or(std::path::Path::new("/")))
    }

    /// `host:port` and host of the server URL.
    pub fn host_port(&self) -> Result<(String, String), String> {
        let rest = self
            .server
            .strip_prefix("https://")
            .ok_or_else(|| format!("unsupported server URL {:?}", self.server))?;
        let hp = rest.split('/').next().unwrap_or("");
        let host = if let Some(h) = hp.strip_prefix('[') {
            h.split(']').next().unwrap_or("").to_string()
        } else {
            hp.rsplit_once(':').map(|(h, _)| h).unwrap_or(hp).to_string()
        };
        let hp = if hp.contains(':')
            && !hp.ends_with(']')
            && hp.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hp.to_string()
        } else {
            format!("{hp}:443")
        };
        Ok((hp, host))
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status < 300
    }
    /// The `Status.message` of a failure.
    pub fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&self.raw).to_string())
    }
    pub fn reason(&self) -> String {
        self.body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
}

/// A connection-per-client HTTPS client (keep-alive across requests).
pub struct Client {
    pub config: Kubeconfig,
    tls: Arc<rustls::ClientConfig>,
    conn: Option<BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>,
    pub user_agent: String,
    pub timeout: Duration,
    /// Dial this address instead of resolving the server's host (a pod's `hostAliases`); TLS
    /// still verifies the server's host name.
    pub connect_to: Option<std::net::SocketAddr>,
}

impl Client {
    pub fn new(config: Kubeconfig) -> Result<Client, String> {
        let client = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
            _ => None,
        };
        let tls = crate::tls::client_config(&config.ca_pem, client)?;
        Ok(Client {
            config,
            tls,
            conn: None,
            user_agent: "kbs-sim".into(),
            timeout: Duration::from_secs(10),
            connect_to: None,
        })
    }

    /// A client with its own TLS configuration (discovery's insecure first fetch).
    pub fn with_tls(config: Kubeconfig, tls: Arc<rustls::ClientConfig>) -> Client {
        Client {
            config,
            tls,
            conn: None,
            user_agent: "kbs-sim".into(),
            timeout: Duration::from_secs(10),
            connect_to: None,
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        let (hp, host) = self.config.host_port()?;
        let addr = match self.connect_to {
            Some(addr) => addr,
            None => hp
                .to_socket_addrs()
                .map_err(|e| format!("dial tcp {hp}: {e}"))?
                .next()
                .ok_or_else(|| format!("dial tcp {hp}: no address"))?,
        };
        let sock = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| format!("dial tcp {addr}: connect: {}", crate::cli::io_text(&e)))?;
        let _ = sock.set_read_timeout(Some(self.timeout * 3));
        // Go's net package sets TCP_NODELAY on every connection; without it each request of a
        // kept-alive connection waits ~40 ms for a delayed ACK (discovery makes ~20 of them).
        let _ = sock.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| e.to_string())?;
        self.conn = Some(BufReader::new(rustls::StreamOwned::new(conn, sock)));
        Ok(())
    }

    fn once(
        &mut self,
        method: &str,
        target: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<crate::http::Response, String> {
        self.once_with(method, target, content_type, &[], body)
    }

    fn once_with(
        &mut self,
        method: &str,
        target: &str,
        content_type: &str,
        extra: &[(String, String)],
        body: &[u8],
    ) -> Result<crate::http::Response, String> {
        if self.conn.is_none() {
            self.connect()?;
        }
        let (hp, _) = self.config.host_port()?;
        let mut headers = vec![
            ("Accept".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), self.user_agent.clone()),
        ];
        if !content_type.is_empty() {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        if let Some(t) = &self.config.token {
            headers.push(("Authorization".into(), format!("Bearer {t}")));
        }
        headers.extend(extra.iter().cloned());
        let conn = self.conn.as_mut().ok_or("not connected")?;
        let tls_err = |e: std::io::Error| {
            let s = e.to_string();
            if s.contains("UnknownIssuer") || s.contains("certificate") {
                format!(
                    "tls: failed to verify certificate: x509: certificate signed by unknown authority ({s})"
                )
            } else {
                s
            }
        };
        crate::http::write_request(conn.get_mut(), method, target, &hp, &headers, body).map_err(tls_err)?;
        crate::http::read_response(conn).map_err(tls_err)
    }

    /// One request; reconnects once if a kept-alive connection was closed.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Reply, String> {
        let resp = match self.once(method, target, content_type, body) {
            Ok(r) => r,
            Err(_) if self.conn.is_some() => {
                self.conn = None;
                self.once(method, target, content_type, body)?
            }
            Err(e) => return Err(e),
        };
        if resp.status >= 300 {
            // A failed request may leave the connection in any state: start afresh.
            self.conn = None;
        }
        let body = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok(Reply {
            status: resp.status,
            body,
            raw: resp.body,
        })
    }

    /// One request with extra headers (a forwarding API server's identity headers).
    pub fn request_with_headers(
        &mut self,
        method: &str,
        target: &str,
        content_type: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, String> {
        self.conn = None;
        let resp = self.once_with(method, target, content_type, headers, body)?;
        self.conn = None;
        let body = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok(Reply {
            status: resp.status,
            body,
            raw: resp.body,
        })
    }

    pub fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.request("GET", path, "", b"")
    }
    pub fn send_json(&mut self, method: &str, path: &str, v: &Value) -> Result<Reply, String> {
        self.request(
            method,
            path,
            "application/json",
            &serde_json::to_vec(v).unwrap_or_default(),
        )
    }
}
