//! The API server on the wire: rustls over a TCP listener, one thread per connection,
//! keep-alive, and a controller thread ticking once a second.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ApiServer;

/// A serving API server; dropping it does not stop it, [`Running::stop`] does.
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Running {
    /// Stops accepting (open connections finish their current request).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn connection(server: &ApiServer, tls: Arc<rustls::ServerConfig>, sock: TcpStream) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(conn, sock);
    // Finish the handshake first so the peer certificate is known.
    while stream.conn.is_handshaking() {
        if stream.conn.complete_io(&mut stream.sock).is_err() {
            return;
        }
    }
    let peer = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let mut reader = BufReader::new(stream);
    loop {
        let req = match crate::http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            _ => return,
        };
        let resp = server.handle(&req, peer.as_deref());
        if crate::http::write_response(reader.get_mut(), &resp).is_err() {
            return;
        }
    }
}

/// Serves `server` on `listener` with its certificate; returns at once.
pub fn serve(server: Arc<ApiServer>, listener: TcpListener) -> Result<Running, String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("failed to read {}: {e}", p.display()))
    };
    let tls = crate::tls::server_config(
        &read(&server.config.cert_file)?,
        &read(&server.config.key_file)?,
        &read(&server.config.client_ca_file)?,
    )?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    // One round before the first request: a restarted control plane must learn who leads
    // before it answers, or its stale copy would take writes.
    server.replicate();
    {
        let server = server.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                server.replicate();
                // Controllers run on the leader only (kube-controller-manager's leader election).
                if server.role() == super::replication::Role::Leader {
                    server.tick();
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(sock) = sock else { continue };
                // Small request/response pairs on a kept-alive connection: without this, Nagle's
                // algorithm and delayed ACKs hold every answer ~40 ms, as Go's net package avoids
                // by setting TCP_NODELAY on every connection.
                let _ = sock.set_nodelay(true);
                let (server, tls) = (server.clone(), tls.clone());
                std::thread::spawn(move || connection(&server, tls, sock));
            }
        });
    }
    Ok(Running { addr, stop })
}

/// `kube-apiserver` as a process: flags → config → serve until killed.
pub fn main(args: &[String]) -> i32 {
    let config = match super::Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    let bind = config.bind;
    let server = match ApiServer::from_config(config, crate::clock::Clock::default()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("E0000 run.go] \"Error creating server\" err=\"{e}\"");
            return 1;
        }
    };
    let listener = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "Error: failed to create listener: failed to listen on {bind}: listen tcp {bind}: bind: {e}"
            );
            return 1;
        }
    };
    match serve(server, listener) {
        Ok(r) => {
            eprintln!(
                "I0000 secure_serving.go] \"Serving securely on\" address=\"{}\"",
                r.addr
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}
