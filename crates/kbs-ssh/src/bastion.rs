//! ProxyJump: a byte stream to the target made of a `direct-tcpip` channel on the jump host's
//! session. The SSH session to the target runs end to end over it, so the jump host sees only
//! ciphertext and the target's host key is verified by us, not by the jump host.
//!
//! All targets behind the same bastion share one session to it ([`BastionPool`]): a hundred hosts
//! mean a hundred channels on one connection, not a hundred logins, which the bastion's
//! `MaxStartups` would start dropping after ten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use russh::client::Msg;
use russh::ChannelStream;
use tokio::sync::OnceCell;

use crate::{ConnectOptions, Connection, Error, Target};

/// The outcome of connecting to one bastion; a failure is kept (as its message) so the hosts
/// behind it fail fast with the same reason instead of each hammering the bastion again.
type Slot = Arc<OnceCell<Result<Arc<Connection>, String>>>;

/// Bastion connections of a run, shared by clones of one [`ConnectOptions`].
#[derive(Clone, Default)]
pub(crate) struct BastionPool(Arc<Mutex<HashMap<Target, Slot>>>);

impl BastionPool {
    /// The session to `bastion`, connecting on first use (concurrent callers wait for that one
    /// attempt) and again if the previous session has dropped.
    pub(crate) async fn get(
        &self,
        bastion: &Target,
        opts: &ConnectOptions,
    ) -> Result<Arc<Connection>, String> {
        loop {
            let slot: Slot = {
                let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
                map.entry(bastion.clone()).or_default().clone()
            };
            let outcome = slot
                .get_or_init(|| async {
                    // Boxed: a bastion may itself sit behind a bastion.
                    Box::pin(Connection::connect(bastion, opts))
                        .await
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                })
                .await;
            match outcome {
                Ok(conn) if conn.is_closed() => {
                    let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
                    if map.get(bastion).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                        map.remove(bastion);
                    }
                }
                Ok(conn) => return Ok(conn.clone()),
                Err(reason) => return Err(reason.clone()),
            }
        }
    }
}

pub(crate) async fn tunnel(jump: &Connection, target: &Target) -> Result<ChannelStream<Msg>, Error> {
    let channel = jump
        .handle
        .channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0)
        .await
        .map_err(|e| Error::Connect {
            host: target.name.clone(),
            addr: target.addr(),
            reason: format!(
                "bastion {} could not open a tunnel ({e}); check that the bastion reaches the host and allows TCP forwarding (AllowTcpForwarding)",
                jump.name()
            ),
        })?;
    Ok(channel.into_stream())
}
