//! Host patterns for `--hosts`: comma-separated names, shell globs, `role:X` and `group:X`.

use crate::error::SelectError;
use crate::model::{Host, Inventory, Role};
use crate::suggest;

impl Inventory {
    /// The hosts a pattern names, in inventory order, each once.
    ///
    /// The pattern is a comma-separated list of terms: a host name, a shell glob over host names
    /// (`host0*`, `host0[12]`, `?`), `role:control-plane|worker|lb` or `group:NAME`. A term that
    /// matches no host is an error naming it, so a typo never silently shrinks a run.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, SelectError> {
        let mut chosen = vec![false; self.hosts.len()];
        for raw in pattern.split(',') {
            let term = raw.trim();
            if term.is_empty() {
                return Err(SelectError::Empty(pattern.to_string()));
            }
            let matches = self.term_matches(term)?;
            if !matches.iter().any(|&m| m) {
                let suggestion = if is_glob(term) {
                    None
                } else {
                    suggest::did_you_mean(term, self.hosts.iter().map(|h| h.name.as_str()))
                };
                return Err(SelectError::NoMatch {
                    term: term.to_string(),
                    suggestion,
                });
            }
            for (slot, matched) in chosen.iter_mut().zip(matches) {
                *slot |= matched;
            }
        }
        Ok(self
            .hosts
            .iter()
            .zip(chosen)
            .filter(|(_, c)| *c)
            .map(|(h, _)| h)
            .collect())
    }

    /// For each host, whether `term` selects it.
    fn term_matches(&self, term: &str) -> Result<Vec<bool>, SelectError> {
        if let Some(role_name) = term.strip_prefix("role:") {
            let Some(role) = Role::from_name(role_name) else {
                let suggestion = suggest::did_you_mean(role_name, Role::ALL.map(|r| r.as_str()));
                return Err(SelectError::UnknownRole {
                    term: term.into(),
                    role: role_name.into(),
                    suggestion,
                });
            };
            return Ok(self.hosts.iter().map(|h| h.has_role(role)).collect());
        }
        if let Some(group) = term.strip_prefix("group:") {
            if !self.groups.contains_key(group) {
                let suggestion = suggest::did_you_mean(group, self.groups.keys().map(String::as_str));
                return Err(SelectError::UnknownGroup {
                    term: term.into(),
                    group: group.into(),
                    suggestion,
                });
            }
            return Ok(self
                .hosts
                .iter()
                .map(|h| h.groups.iter().any(|g| g == group))
                .collect());
        }
        Ok(self.hosts.iter().map(|h| glob_match(term, &h.name)).collect())
    }
}

fn is_glob(term: &str) -> bool {
    term.contains(['*', '?', '['])
}

/// Shell-style matching of a whole name: `*` any run, `?` one character, `[abc]`/`[a-c]`/`[!a]` a class.
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob_at(&pattern, &name)
}

fn glob_at(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| glob_at(&pattern[1..], &name[skip..])),
        Some('?') => !name.is_empty() && glob_at(&pattern[1..], &name[1..]),
        Some('[') => match (class_match(&pattern[1..], name.first().copied()), name.first()) {
            (Some((true, rest)), Some(_)) => glob_at(rest, &name[1..]),
            (Some(_), _) => false,
            // An unclosed `[` is a literal character.
            (None, Some('[')) => glob_at(&pattern[1..], &name[1..]),
            (None, _) => false,
        },
        Some(c) => name.first() == Some(c) && glob_at(&pattern[1..], &name[1..]),
    }
}

/// Matches one character against a class body (after `[`); returns whether it matched and the
/// pattern after `]`, or `None` if the class is not closed.
fn class_match(body: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negated, body) = match body.first() {
        Some('!') | Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let close = body.iter().skip(1).position(|&ch| ch == ']').map(|p| p + 1)?;
    let class = &body[..close];
    let c = c?;
    let mut found = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            found |= class[i] <= c && c <= class[i + 2];
            i += 3;
        } else {
            found |= class[i] == c;
            i += 1;
        }
    }
    Some((found != negated, &body[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("host0*", "host01"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("host0?", "host05"));
        assert!(!glob_match("host0?", "host005"));
        assert!(glob_match("host0[1-3]", "host02"));
        assert!(!glob_match("host0[1-3]", "host04"));
        assert!(glob_match("host0[!1-3]", "host04"));
        assert!(glob_match("*.example.com", "db.example.com"));
        assert!(!glob_match("host01", "host011"));
    }
}
