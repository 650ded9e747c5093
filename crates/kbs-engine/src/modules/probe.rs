//! Shell snippets that print named sections, and their parser, so one check script can report
//! several things (a file's content, live values) without ambiguity:
//!
//! ```text
//! @@kbs:NAME
//! <body>
//! @@kbs:end
//! ```
//! A file section's body is `present\n<mode> <user> <group>\n<content>` or `absent`; the content
//! comes back byte for byte (a newline is added before the end marker and removed when parsing).

use crate::transport::sh_quote;

const END: &str = "\n@@kbs:end\n";

/// Prints section `name` with the output of `commands`.
pub fn section(name: &str, commands: &str) -> String {
    format!(
        "printf '@@kbs:%s\\n' {name}\n{commands}\nprintf '\\n@@kbs:end\\n'\n",
        name = sh_quote(name)
    )
}

/// Prints section `name` describing the file at `path`.
pub fn file_section(name: &str, path: &str) -> String {
    let p = sh_quote(path);
    section(
        name,
        &format!("if [ -f {p} ]; then echo present; stat -c '%a %U %G' {p}; cat {p}; else printf absent; fi"),
    )
}

/// Like [`file_section`], with the file's SHA-256 (hex) in place of its content.
pub fn file_hash_section(name: &str, path: &str) -> String {
    let p = sh_quote(path);
    section(
        name,
        &format!(
            "if [ -f {p} ]; then echo present; stat -c '%a %U %G' {p}; sha256sum {p} | cut -d ' ' -f 1 | tr -d '\\n'; else printf absent; fi"
        ),
    )
}

/// The body of section `name`, if present.
pub fn get<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    let start_marker = format!("@@kbs:{name}\n");
    let start = output.find(&start_marker)? + start_marker.len();
    let len = output[start..].find(END)?;
    Some(&output[start..start + len])
}

/// A file as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub content: String,
}

/// Parses a [`file_section`] body: `None` means the file does not exist.
pub fn parse_file(body: &str) -> Option<RemoteFile> {
    let rest = body.strip_prefix("present\n")?;
    let (stat, content) = rest.split_once('\n').unwrap_or((rest, ""));
    let mut parts = stat.split_whitespace();
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    Some(RemoteFile {
        mode,
        owner: parts.next().unwrap_or("").to_string(),
        group: parts.next().unwrap_or("").to_string(),
        content: content.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_exact_content() {
        let out = "@@kbs:a\npresent\n644 root root\nline1\nline2 no newline\n@@kbs:end\n@@kbs:b\nabsent\n@@kbs:end\n";
        let a = parse_file(get(out, "a").unwrap()).unwrap();
        assert_eq!(a.mode, 0o644);
        assert_eq!(a.owner, "root");
        assert_eq!(a.content, "line1\nline2 no newline");
        assert_eq!(parse_file(get(out, "b").unwrap()), None);
        assert_eq!(get(out, "c"), None);
    }

    #[test]
    fn empty_file_is_present_and_empty() {
        let out = "@@kbs:f\npresent\n600 root root\n\n@@kbs:end\n";
        assert_eq!(parse_file(get(out, "f").unwrap()).unwrap().content, "");
    }
}
