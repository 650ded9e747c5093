//! ProxyJump: a byte stream to the target made of a `direct-tcpip` channel on the jump host's
//! session. The SSH session to the target runs end to end over it, so the jump host sees only
//! ciphertext and the target's host key is verified by us, not by the jump host.

use russh::client::Msg;
use russh::ChannelStream;

use crate::{Connection, Error, Target};

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
