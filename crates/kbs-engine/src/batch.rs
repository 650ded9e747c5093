//! Batched checks: the check scripts of a whole playbook sent as ONE remote script, so a host that
//! needs no change costs two round trips in all (facts + this), not one per task.
//!
//! Each check runs in its own subshell (an `exit` ends only that check) between markers that carry
//! its exit status; stdout comes back byte for byte. Successful results are kept in a [`Prefetch`]
//! that modules consult through `ModuleCtx::exec`: a script found there is answered without a round
//! trip. The runner clears it as soon as a task changes something, since checks may then differ;
//! until then an answer stays true however often it is asked (e.g. a handler's check).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::transport::ExecResult;

const START: &str = "@@kbs-batch:";
const END: &str = "\n@@kbs-batch-rc:";

/// One script running every part, each output framed by markers.
pub fn combine(parts: &[String]) -> String {
    let mut s = String::new();
    for (i, part) in parts.iter().enumerate() {
        s.push_str(&format!(
            "printf '{START}%s\\n' {i}\n(\n{part}\n)\nprintf '\\n@@kbs-batch-rc:%s\\n' \"$?\"\n"
        ));
    }
    s
}

/// The parts of a [`combine`]d script, for fakes that answer each on its own.
pub fn split(script: &str) -> Option<Vec<String>> {
    if !script.starts_with(&format!("printf '{START}")) {
        return None;
    }
    let mut parts = Vec::new();
    for chunk in script.split(&format!("printf '{START}%s\\n' ")).skip(1) {
        let body = chunk.split_once("\n(\n")?.1;
        let body = body.rsplit_once("\n)\nprintf '\\n@@kbs-batch-rc:")?.0;
        parts.push(body.to_string());
    }
    Some(parts)
}

/// What a [`combine`]d script prints given each part's stdout and exit status (for fakes).
pub fn frame(results: &[ExecResult]) -> String {
    results
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{START}{i}\n{}{END}{}\n", r.stdout, r.code.unwrap_or(255)))
        .collect()
}

/// Splits a combined script's stdout into each part's result (stderr is not kept per part).
pub fn parse(stdout: &str, count: usize) -> Vec<Option<ExecResult>> {
    (0..count)
        .map(|i| {
            let start = format!("{START}{i}\n");
            let from = stdout.find(&start)? + start.len();
            let len = stdout[from..].find(END)?;
            let rest = &stdout[from + len + END.len()..];
            let code = rest.split('\n').next()?.trim().parse().ok()?;
            Some(ExecResult {
                code: Some(code),
                stdout: stdout[from..from + len].to_string(),
                stderr: String::new(),
            })
        })
        .collect()
}

/// Check results fetched ahead, valid until [`Prefetch::clear`].
#[derive(Default)]
pub struct Prefetch(Mutex<HashMap<String, ExecResult>>);

impl Prefetch {
    pub fn insert(&self, script: String, result: ExecResult) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(script, result);
        }
    }

    pub fn get(&self, script: &str) -> Option<ExecResult> {
        self.0.lock().ok()?.get(script).cloned()
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_split_frame_parse_round_trip() {
        let parts = vec!["echo a".to_string(), "printf 'no newline'; exit 3".to_string()];
        let script = combine(&parts);
        assert_eq!(split(&script), Some(parts));
        let results = vec![
            ExecResult {
                code: Some(0),
                stdout: "a\n".into(),
                stderr: String::new(),
            },
            ExecResult {
                code: Some(3),
                stdout: "no newline".into(),
                stderr: String::new(),
            },
        ];
        let parsed = parse(&frame(&results), 2);
        assert_eq!(parsed, results.into_iter().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn a_missing_part_is_none() {
        assert_eq!(parse("@@kbs-batch:0\nx\n@@kbs-batch-rc:0\n", 2)[1], None);
        assert_eq!(split("echo plain"), None);
    }
}
