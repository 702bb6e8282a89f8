//! Kubernetes label selectors (`matchLabels` + `matchExpressions`) and their semantics.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::syntax::Labels;

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Self> {
        // Case-sensitive, as the API server is.
        match s {
            "In" => Some(Self::In),
            "NotIn" => Some(Self::NotIn),
            "Exists" => Some(Self::Exists),
            "DoesNotExist" => Some(Self::DoesNotExist),
            _ => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        };
        f.write_str(s)
    }
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            // Kubernetes: NotIn also matches when the key is absent.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector: every `matchLabels` pair and every requirement must hold. The empty
/// selector matches everything (a present-but-empty `podSelector: {}` selects all pods).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Selector {
    pub match_labels: Labels,
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_everything() {
            return f.write_str("{}");
        }
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            let values: Vec<&str> = r.values.iter().map(String::as_str).collect();
            parts.push(match r.operator {
                Operator::In => format!("{} in ({})", r.key, values.join(",")),
                Operator::NotIn => format!("{} notin ({})", r.key, values.join(",")),
                Operator::Exists => r.key.clone(),
                Operator::DoesNotExist => format!("!{}", r.key),
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn sel(reqs: Vec<Requirement>) -> Selector {
        Selector {
            match_labels: Labels::new(),
            match_expressions: reqs,
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = Selector::everything();
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = Selector {
            match_labels: labels(&[("app", "web"), ("tier", "fe")]),
            match_expressions: vec![],
        };
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "be")])));
    }

    #[test]
    fn in_requires_the_key() {
        let s = sel(vec![req("pod", Operator::In, &["a", "b"])]);
        assert!(s.matches(&labels(&[("pod", "a")])));
        assert!(!s.matches(&labels(&[("pod", "c")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn not_in_matches_a_missing_key() {
        let s = sel(vec![req("pod", Operator::NotIn, &["a"])]);
        assert!(s.matches(&labels(&[])), "missing key matches NotIn");
        assert!(s.matches(&labels(&[("pod", "b")])));
        assert!(!s.matches(&labels(&[("pod", "a")])));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let e = sel(vec![req("pod", Operator::Exists, &[])]);
        let d = sel(vec![req("pod", Operator::DoesNotExist, &[])]);
        assert!(
            e.matches(&labels(&[("pod", "")])),
            "an empty value still exists"
        );
        assert!(!e.matches(&labels(&[])));
        assert!(d.matches(&labels(&[])));
        assert!(!d.matches(&labels(&[("pod", "x")])));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = Selector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![req("env", Operator::NotIn, &["prod"])],
        };
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("env", "dev")])));
    }
}
