//! Turns the byte chunks a remote command streams into whole lines, so output of many hosts running at
//! once can be interleaved line by line without ever splitting a line.

/// Collects chunks of one stream of one host and hands out complete lines.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a chunk and returns the lines it completed (without their newline).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            lines.push(to_text(&line[..line.len() - 1]));
        }
        lines
    }

    /// The last line, if the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = to_text(&self.pending);
        self.pending.clear();
        Some(line)
    }
}

fn to_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"hel").is_empty());
        assert_eq!(splitter.push(b"lo\nwor"), vec!["hello"]);
        assert_eq!(splitter.push(b"ld\r\n\nlast"), vec!["world", ""]);
        assert_eq!(splitter.finish(), Some("last".to_string()));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn invalid_utf8_is_shown_not_dropped() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"a\xffb\n"), vec!["a\u{fffd}b"]);
    }
}
