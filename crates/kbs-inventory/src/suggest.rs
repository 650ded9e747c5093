//! "Did you mean …?" for misspelt keys, roles, groups and host names.

/// The candidate closest to `input`, if one is close enough to be a plausible typo.
///
/// Case, `-` and `_` are ignored first so `node_ip` finds `nodeIp` and `controlplane` finds
/// `control-plane`; then a candidate containing the input wins; otherwise the best Jaro-Winkler
/// match above a threshold.
pub(crate) fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted = normalize(input);
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let normalized = normalize(candidate);
        let score = if normalized == wanted {
            2.0
        } else if wanted.len() >= 3 && normalized.contains(&wanted) {
            // `nginx` for `ingress-nginx`: a distinctive part of the name.
            1.5
        } else {
            strsim::jaro_winkler(&wanted, &normalized)
        };
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    // 0.8 accepts one or two slipped letters in short words without suggesting unrelated ones.
    best.filter(|(score, _)| *score >= 0.8)
        .map(|(_, candidate)| candidate.to_string())
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// `" (did you mean `x`?)"` or nothing, to append to a message.
pub(crate) fn suffix(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn finds_case_and_separator_variants_and_typos_but_not_strangers() {
        let keys = ["name", "address", "nodeIp", "roles"];
        assert_eq!(did_you_mean("node_ip", keys).as_deref(), Some("nodeIp"));
        assert_eq!(did_you_mean("adress", keys).as_deref(), Some("address"));
        assert_eq!(did_you_mean("rolse", keys).as_deref(), Some("roles"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(
            did_you_mean("nginx", ["ingress-nginx", "traefik"]).as_deref(),
            Some("ingress-nginx")
        );
    }
}
