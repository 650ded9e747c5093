//! A small HTTP/1.1 static file server for the lab's repository directory (`kbs-lab serve`).
//!
//! It only has to satisfy apt, curl and kbs: GET and HEAD, keep-alive with pipelined requests (apt sends
//! several on one connection and reads the answers in order), percent-decoded paths (`core:/stable:` may
//! arrive as `core%3A/stable%3A`), and no way out of the root (`..` is refused).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};

/// Serves `root` on `addr` until the process is killed.
pub fn serve(root: &Path, addr: SocketAddr) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                "starting the repository server",
                e,
                "retry; the machine may be out of memory",
            )
        })?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr).await.map_err(|e| bind_error(addr, e))?;
        eprintln!("kbs-lab serve: serving {} on http://{addr}/", root.display());
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("kbs-lab serve: accept failed: {e}");
                    continue;
                }
            };
            let root = root.to_path_buf();
            tokio::spawn(async move {
                if let Err(e) = connection(stream, &root).await {
                    eprintln!("kbs-lab serve: {peer}: {e}");
                }
            });
        }
    })
}

/// The error for a port that cannot be bound, with what to do.
pub fn bind_error(addr: SocketAddr, e: std::io::Error) -> Error {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("another process listens on port {}: find it with `ss -ltnp 'sport = :{}'` and stop it, or run kbs-lab down", addr.port(), addr.port())
    } else {
        "run kbs-lab as root, and check that the bridge kbsbr0 has 10.61.0.1".to_string()
    };
    Error::new(format!("listening on {addr}"), e, hint)
}

async fn connection(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if version == "HTTP/1.0" {
            close = true;
        }
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            respond(
                &mut write,
                "405 Method Not Allowed",
                b"only GET and HEAD\n",
                head_only,
            )
            .await?;
        } else {
            match resolve(root, target) {
                Some(path) => match tokio::fs::File::open(&path).await {
                    Ok(mut file) if file.metadata().await.map(|m| m.is_file()).unwrap_or(false) => {
                        let len = file.metadata().await?.len();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n"
                        );
                        write.write_all(head.as_bytes()).await?;
                        if !head_only {
                            tokio::io::copy(&mut file, &mut write).await?;
                        }
                    }
                    _ => respond(&mut write, "404 Not Found", b"not found\n", head_only).await?,
                },
                None => respond(&mut write, "400 Bad Request", b"bad path\n", head_only).await?,
            }
        }
        write.flush().await?;
        if close {
            return Ok(());
        }
    }
}

async fn respond(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    status: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    if !head_only {
        write.write_all(body).await?;
    }
    Ok(())
}

/// Maps a request target to a file under `root`; `None` for anything that would leave it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let path = path
        .strip_prefix("http://")
        .map(|rest| rest.find('/').map(|i| &rest[i..]).unwrap_or("/"))
        .unwrap_or(path);
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for component in Path::new(&decoded).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/core%3A/stable%3A/v1.36/deb/InRelease"),
            Some(PathBuf::from("/srv/core:/stable:/v1.36/deb/InRelease"))
        );
        assert_eq!(
            resolve(root, "/debian/dists/bookworm/Release?x=1"),
            Some(PathBuf::from("/srv/debian/dists/bookworm/Release"))
        );
        assert_eq!(resolve(root, "/../etc/shadow"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/%2e%2e/etc"), None);
    }
}
