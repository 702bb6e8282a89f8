//! Syntax checks for the names the lab accepts. They follow Kubernetes' rules so that a lab spec reads like the pods
//! and namespaces a policy will later select, and because the names end up in netns names, cgroup directories and
//! file names, where a stray `/` or `.` would be a bug.

/// DNS-1123 label: 1..=63 chars of `[a-z0-9-]`, starting and ending with an alphanumeric.
/// Used for lab, namespace and pod names.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 chars. Used for label-key prefixes.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// IANA service name as Kubernetes checks container port names: 1..=15 chars of `[a-z0-9-]`, at least one letter,
/// no leading, trailing or doubled `-`.
pub fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// The "name" part of a label key and the whole of a label value: at most 63 chars of `[A-Za-z0-9_.-]`, starting and
/// ending with an alphanumeric. `allow_empty` is for values (an empty label value is legal, an empty key is not).
fn is_qualified_name_part(s: &str, allow_empty: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return allow_empty;
    }
    b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Kubernetes label key: `[prefix/]name`, prefix a DNS-1123 subdomain.
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name, false),
        None => is_qualified_name_part(s, false),
    }
}

/// Kubernetes label value (may be empty).
pub fn is_label_value(s: &str) -> bool {
    is_qualified_name_part(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "a-b", "x1", "1x", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn svc_names() {
        for ok in ["http", "dns-tcp", "h2c", "a"] {
            assert!(is_iana_svc_name(ok), "{ok}");
        }
        for bad in ["", "80", "HTTP", "a--b", "-a", "a-", "abcdefghijklmnop"] {
            assert!(!is_iana_svc_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "A_b.c",
        ] {
            assert!(is_label_key(ok), "{ok}");
        }
        for bad in ["", "/app", "Foo.io/app", "a/b/c", "app-", "bad key"] {
            assert!(!is_label_key(bad), "{bad}");
        }
        for ok in ["", "web", "v1.2_3"] {
            assert!(is_label_value(ok), "{ok}");
        }
        for bad in ["-web", "a b", &"v".repeat(64)] {
            assert!(!is_label_value(bad), "{bad}");
        }
    }
}
