//! Kubernetes syntax rules for names, label keys and values, and named ports.
//!
//! The checks mirror `k8s.io/apimachinery/pkg/util/validation` so that a document the API
//! server would reject is rejected here with a comparable reason, and one it accepts is
//! accepted. Each function returns `Err(reason)` with a sentence that can follow a field path.

use std::collections::BTreeMap;

/// Pod and namespace labels: key → value. Ordered so that identities and output are stable.
pub type Labels = BTreeMap<String, String>;

/// The label every namespace carries automatically (Kubernetes ≥ 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

const NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const SVC_NAME_MAX: usize = 15;

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape shared by label names and values.
fn check_label_token(s: &str, what: &str) -> Result<(), String> {
    if s.len() > NAME_MAX {
        return Err(format!("{what} {s:?} is longer than {NAME_MAX} characters"));
    }
    let first_last_ok =
        s.chars().next().is_some_and(is_alnum) && s.chars().last().is_some_and(is_alnum);
    let body_ok = s
        .chars()
        .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.');
    if !first_last_ok || !body_ok {
        return Err(format!(
            "{what} {s:?} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters (namespace names).
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.len() > NAME_MAX {
        return Err(format!("{s:?} is longer than {NAME_MAX} characters"));
    }
    if !is_dns_label(s) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 label (lowercase alphanumeric characters or '-', starting and ending with an alphanumeric character)"
        ));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= NAME_MAX
        && s.chars().next().is_some_and(lower_alnum)
        && s.chars().last().is_some_and(lower_alnum)
        && s.chars().all(|c| lower_alnum(c) || c == '-')
}

/// A DNS-1123 subdomain: dot-separated DNS labels, at most 253 characters (object names,
/// label key prefixes).
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.len() > SUBDOMAIN_MAX {
        return Err(format!("{s:?} is longer than {SUBDOMAIN_MAX} characters"));
    }
    if !s.split('.').all(is_dns_label) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain (lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)"
        ));
    }
    Ok(())
}

/// A label key: `[prefix/]name` where the prefix is a DNS subdomain.
pub fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("label key must not be empty".to_string());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err(format!("label key {key:?} has an empty prefix before '/'"));
        }
        if name.contains('/') {
            return Err(format!("label key {key:?} has more than one '/'"));
        }
        check_dns_subdomain(p).map_err(|e| format!("label key prefix {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("label key {key:?} has an empty name"));
    }
    check_label_token(name, "label key name")
}

/// A label value: empty, or a label token of at most 63 characters.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_token(value, "label value")
}

/// An IANA service name, the syntax of a named container port: at most 15 characters of
/// lowercase alphanumerics and '-', at least one letter, no leading, trailing or double '-'.
pub fn check_port_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("port name must not be empty".to_string());
    }
    if s.len() > SVC_NAME_MAX {
        return Err(format!(
            "port name {s:?} is longer than {SVC_NAME_MAX} characters"
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "port name {s:?} may contain only lowercase alphanumeric characters and '-'"
        ));
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!("port name {s:?} must contain at least one letter"));
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err(format!(
            "port name {s:?} must not begin or end with '-' or contain '--'"
        ));
    }
    Ok(())
}

/// A Fathom log label: like a non-empty label value, so that it can be used as a metric label
/// or a filter without quoting.
pub fn check_log_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("log label must not be empty".to_string());
    }
    check_label_token(s, "log label")
}

/// Free text (descriptions): bounded and printable, because it ends up in terminal output.
pub fn check_description(s: &str) -> Result<(), String> {
    const MAX: usize = 512;
    if s.chars().count() > MAX {
        return Err(format!("description is longer than {MAX} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("description contains control characters".to_string());
    }
    Ok(())
}

/// Validate a whole label map, returning one reason per bad entry, keyed by the label key.
pub fn check_labels(labels: &Labels) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in labels {
        if let Err(e) = check_label_key(k) {
            out.push((k.clone(), e));
        }
        if let Err(e) = check_label_value(v) {
            out.push((k.clone(), e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "a",
            "A_b.c-d",
            "example.com/x",
        ] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-app",
            "app-",
            "/x",
            "a/b/c",
            "Example.com/x",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "web", "v1.2_3-x"] {
            assert!(check_label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "x-", "a/b", "é", &"x".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_ports() {
        assert!(check_dns_label("ns-1").is_ok());
        assert!(check_dns_label("Ns").is_err());
        assert!(check_dns_subdomain("allow.web-1").is_ok());
        assert!(check_dns_subdomain("allow_web").is_err());
        assert!(check_port_name("http").is_ok());
        assert!(check_port_name("serve-80-tcp").is_ok());
        assert!(check_port_name("80").is_err());
        assert!(check_port_name("a--b").is_err());
        assert!(check_port_name("sixteen-chars-xx").is_err());
    }
}
