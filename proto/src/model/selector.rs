//! Label selectors (`app=web,tier!=db`, `env in (a,b)`, `!legacy`), checked before they reach a
//! cluster so a typo is refused with the reason, not after an agent has started.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A selector that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct InvalidSelector {
    selector: String,
    reason: String,
}

/// A syntactically valid Kubernetes label selector, kept as the text the API server takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelSelector(String);

impl LabelSelector {
    /// Checks `text`'s syntax: comma-separated `key`, `!key`, `key=v`, `key==v`, `key!=v`,
    /// `key in (v,…)`, `key notin (v,…)`.
    pub fn parse(text: &str) -> Result<Self, InvalidSelector> {
        let fail = |reason: String| InvalidSelector {
            selector: text.to_owned(),
            reason,
        };
        for term in split_terms(text).map_err(fail)? {
            check_term(term.trim()).map_err(|r| fail(format!("in {:?}: {r}", term.trim())))?;
        }
        Ok(Self(text.trim().to_owned()))
    }

    /// The selector text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn check_term(term: &str) -> Result<(), String> {
    if term.is_empty() {
        return Err("empty term".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return check_key(key.trim());
    }
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = term.split_once(op) {
            check_key(key.trim())?;
            return check_value(value.trim());
        }
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim_start();
        let set = rest.strip_prefix("notin").or_else(|| rest.strip_prefix("in"));
        let Some(set) = set.map(str::trim) else {
            return Err(format!("unknown operator in {rest:?}"));
        };
        let inner = set.strip_prefix('(').and_then(|s| s.strip_suffix(')'));
        let inner = inner.ok_or_else(|| "a set needs parentheses: key in (a,b)".to_owned())?;
        check_key(key)?;
        return inner.split(',').try_for_each(|v| check_value(v.trim()));
    }
    check_key(term)
}

fn check_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(format!("bad key prefix {prefix:?}"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !is_label_text(name) {
        return Err(format!("bad key {key:?}"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.len() > 63 || !(value.is_empty() || is_label_text(value)) {
        return Err(format!("bad value {value:?}"));
    }
    Ok(())
}

fn is_label_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = InvalidSelector;
    fn from_str(s: &str) -> Result<Self, InvalidSelector> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LabelSelector {
    type Error = InvalidSelector;
    fn try_from(s: String) -> Result<Self, InvalidSelector> {
        Self::parse(&s)
    }
}

impl From<LabelSelector> for String {
    fn from(s: LabelSelector) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_operator() {
        for ok in [
            "app=web",
            "app==web,tier!=db",
            "env in (a, b),!legacy",
            "example.com/team notin (x)",
            "app",
        ] {
            assert!(LabelSelector::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_syntax_with_the_reason() {
        let err = LabelSelector::parse("app=web,tier=(db").expect_err("unbalanced");
        assert_eq!(
            err.to_string(),
            "invalid label selector \"app=web,tier=(db\": unbalanced parentheses"
        );
        let err = LabelSelector::parse("app=we b").expect_err("space in value");
        assert!(err.to_string().contains("bad value \"we b\""), "{err}");
        assert!(LabelSelector::parse("app=web,").is_err());
        assert!(LabelSelector::parse("env in a,b").is_err());
    }
}
