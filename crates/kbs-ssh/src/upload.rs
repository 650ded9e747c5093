//! Writing files on the host without SFTP: the contents go over an exec channel's stdin into a
//! temp file in the target's directory (created 0600 under umask 077), which is chmod/chown'ed and
//! then renamed over the target. Readers see the old file or the new one, never a partial one, and a
//! secret is never readable by others, nor in any process's arguments.

use crate::sudo::{sh_quote, Privilege};
use crate::{Connection, Error};

/// Owner and group for an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

impl Owner {
    pub fn new(user: impl Into<String>, group: impl Into<String>) -> Self {
        Owner {
            user: user.into(),
            group: group.into(),
        }
    }
}

impl Connection {
    /// Atomically write `contents` to the absolute `path` with permission bits `mode` (e.g. `0o600`)
    /// and optional owner.
    pub async fn upload(
        &self,
        contents: &[u8],
        path: &str,
        mode: u32,
        owner: Option<&Owner>,
        privilege: &Privilege,
    ) -> Result<(), Error> {
        let fail = |reason: String| Error::Upload {
            host: self.name.clone(),
            path: path.to_string(),
            reason,
        };
        let Some((dir, _file)) = path
            .rsplit_once('/')
            .filter(|(_, f)| !f.is_empty() && path.starts_with('/'))
        else {
            return Err(fail("the path must be absolute and name a file".into()));
        };
        if mode > 0o7777 {
            return Err(fail(format!("mode {mode:o} is not a permission mode")));
        }
        let dir = if dir.is_empty() { "/" } else { dir };
        let chown = match owner {
            Some(o) => format!(
                "chown {} \"$tmp\"\n",
                sh_quote(&format!("{}:{}", o.user, o.group))
            ),
            None => String::new(),
        };
        // The trap removes the temp file on any failure; after `mv` it no longer exists.
        let script = format!(
            "set -e\numask 077\n\
             tmp=$(mktemp {dir}/.kbs-upload.XXXXXX)\n\
             trap 'rm -f \"$tmp\"' EXIT\n\
             cat > \"$tmp\"\n\
             chmod {mode:o} \"$tmp\"\n\
             {chown}mv -f \"$tmp\" {path}\n",
            dir = sh_quote(dir),
            path = sh_quote(path),
        );
        let out = self.collect(&script, Some(contents), privilege).await?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(fail(format!("{}: {stderr}", out.status)));
        }
        Ok(())
    }
}
