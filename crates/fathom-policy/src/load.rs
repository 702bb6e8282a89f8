//! Loading an apply: files and directories → documents → one validated `PolicySet`, or every
//! error found. All-or-nothing: a single problem anywhere means no `PolicySet`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use crate::document::{child, index, kind_and_version, peek_name, type_name, Decoder, Issue};
use crate::error::{PolicyError, PolicyErrors};
use crate::policy::{Origin, Policy, PolicyKind, PolicySet};
use crate::validate::validate;

pub const NETWORK_POLICY_API: &str = "networking.k8s.io/v1";
pub const FATHOM_API: &str = "fathom.dev/v1alpha1";

/// Options of an apply.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Namespace of documents without `metadata.namespace` (what `kubectl apply` would use).
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_string(),
        }
    }
}

/// One input text and the name it is reported under (usually its path).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Load policies from YAML/JSON text (one or more `---`-separated documents).
pub fn load_str(name: &str, text: &str, opts: &LoadOptions) -> Result<PolicySet, PolicyErrors> {
    load_sources(
        &[Source {
            name: name.to_string(),
            text: text.to_string(),
        }],
        opts,
    )
}

/// Load policies from files and directories. A directory contributes its `*.yaml`, `*.yml`
/// and `*.json` files (not recursively, like `kubectl apply -f DIR`), in name order.
pub fn load_paths<P: AsRef<Path>>(
    paths: &[P],
    opts: &LoadOptions,
) -> Result<PolicySet, PolicyErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let file_error = |file: &Path, reason: String| PolicyError {
        file: file.display().to_string(),
        document: None,
        object: None,
        path: String::new(),
        reason,
    };
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            let entries = match fs::read_dir(p) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(file_error(p, format!("cannot read directory: {e}")));
                    continue;
                }
            };
            let mut files: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file())
                .filter(|f| {
                    f.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                errors.push(file_error(
                    p,
                    "directory holds no *.yaml, *.yml or *.json files".to_string(),
                ));
            }
            for f in files {
                match fs::read_to_string(&f) {
                    Ok(text) => sources.push(Source {
                        name: f.display().to_string(),
                        text,
                    }),
                    Err(e) => errors.push(file_error(&f, format!("cannot read: {e}"))),
                }
            }
        } else {
            match fs::read_to_string(p) {
                Ok(text) => sources.push(Source {
                    name: p.display().to_string(),
                    text,
                }),
                Err(e) => errors.push(file_error(p, format!("cannot read: {e}"))),
            }
        }
    }
    match load_sources(&sources, opts) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(PolicyErrors(errors)),
        Err(PolicyErrors(more)) => {
            errors.extend(more);
            Err(PolicyErrors(errors))
        }
    }
}

/// Load policies from several texts as one apply.
pub fn load_sources(sources: &[Source], opts: &LoadOptions) -> Result<PolicySet, PolicyErrors> {
    let mut loader = Loader {
        opts,
        policies: Vec::new(),
        errors: Vec::new(),
        seen: BTreeMap::new(),
    };
    for s in sources {
        loader.source(s);
    }
    if loader.errors.is_empty() {
        Ok(PolicySet::from_validated(loader.policies))
    } else {
        Err(PolicyErrors(loader.errors))
    }
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    policies: Vec<Policy>,
    errors: Vec<PolicyError>,
    /// (kind, namespace, name) → where it was first defined.
    seen: BTreeMap<(PolicyKind, String, String), String>,
}

/// Where in the input a document sits.
struct DocRef<'a> {
    file: &'a str,
    number: usize,
}

impl Loader<'_> {
    fn source(&mut self, s: &Source) {
        for (i, doc) in serde_norway::Deserializer::from_str(&s.text).enumerate() {
            let number = i + 1;
            match Value::deserialize(doc) {
                Ok(v) => self.document(
                    &v,
                    &DocRef {
                        file: &s.name,
                        number,
                    },
                    "",
                    None,
                ),
                Err(e) => {
                    self.errors.push(PolicyError {
                        file: s.name.clone(),
                        document: Some(number),
                        object: None,
                        path: String::new(),
                        reason: format!("YAML syntax error: {e}"),
                    });
                    // The parser cannot resynchronise after a syntax error.
                    break;
                }
            }
        }
    }

    fn push(&mut self, at: &DocRef, object: Option<String>, issue: Issue) {
        self.errors.push(PolicyError {
            file: at.file.to_string(),
            document: Some(at.number),
            object,
            path: issue.path,
            reason: issue.reason,
        });
    }

    fn issue(
        &mut self,
        at: &DocRef,
        object: Option<String>,
        path: String,
        reason: impl Into<String>,
    ) {
        self.push(
            at,
            object,
            Issue {
                path,
                reason: reason.into(),
            },
        );
    }

    /// One object: a policy, or a `List` of them. `base` is its path inside the document.
    fn document(&mut self, v: &Value, at: &DocRef, base: &str, list_kind: Option<&str>) {
        if matches!(v, Value::Null) && base.is_empty() {
            return; // an empty document (a stray `---`)
        }
        let (kind, api) = kind_and_version(v);
        let (ns, name) = peek_name(v);
        let ns = ns.unwrap_or(&self.opts.default_namespace).to_string();
        let object = |k: &str| match name {
            Some(n) => Some(format!("{k} {ns}/{n}")),
            None => Some(k.to_string()),
        };
        let Value::Mapping(_) = v else {
            let found = type_name(v);
            self.issue(
                at,
                None,
                base.to_string(),
                format!("expected a Kubernetes object (a mapping), found {found}"),
            );
            return;
        };
        let kind_path = child(base, "kind");
        let api_path = child(base, "apiVersion");
        let policy_kind = match kind {
            None => {
                self.issue(at, None, kind_path, "required field is missing (expected NetworkPolicy, FathomNetworkPolicy or List)");
                return;
            }
            Some("NetworkPolicy") => PolicyKind::NetworkPolicy,
            Some("FathomNetworkPolicy") => PolicyKind::FathomNetworkPolicy,
            Some("List") if list_kind.is_none() => {
                self.list(v, at, api);
                return;
            }
            Some("List") => {
                self.issue(at, None, kind_path, "a List may not contain another List");
                return;
            }
            Some(other) => {
                self.issue(
                    at,
                    object(other),
                    kind_path,
                    format!("unsupported kind {other:?} (expected NetworkPolicy, FathomNetworkPolicy or List)"),
                );
                return;
            }
        };
        let expected_api = match policy_kind {
            PolicyKind::NetworkPolicy => NETWORK_POLICY_API,
            PolicyKind::FathomNetworkPolicy => FATHOM_API,
        };
        let obj = object(policy_kind.as_str());
        match api {
            Some(a) if a == expected_api => {}
            Some(a) => self.issue(
                at,
                obj.clone(),
                api_path,
                format!("{a:?} is not supported for {policy_kind} (expected {expected_api})"),
            ),
            None => self.issue(
                at,
                obj.clone(),
                api_path,
                format!("required field is missing (expected {expected_api})"),
            ),
        }

        let mut decoder = Decoder::new(policy_kind);
        let raw = decoder.policy(v, base);
        let mut issues = decoder.issues;
        let origin = Origin {
            file: at.file.to_string(),
            document: at.number,
        };
        let policy = validate(
            &raw,
            base,
            &self.opts.default_namespace,
            origin,
            &mut issues,
        );
        let clean = issues.is_empty();
        for issue in issues {
            self.push(at, obj.clone(), issue);
        }
        let Some(policy) = policy.filter(|_| clean) else {
            return;
        };
        let key = (policy.kind, policy.namespace.clone(), policy.name.clone());
        let here = format!("{}: document {}", at.file, at.number);
        if let Some(first) = self.seen.get(&key) {
            let reason = format!(
                "duplicate {}: already defined in {first}",
                policy.display_name()
            );
            self.issue(at, obj, child(&child(base, "metadata"), "name"), reason);
            return;
        }
        self.seen.insert(key, here);
        self.policies.push(policy);
    }

    fn list(&mut self, v: &Value, at: &DocRef, api: Option<&str>) {
        let Value::Mapping(m) = v else { return };
        if api != Some("v1") {
            let found = api.map_or_else(|| "nothing".to_string(), |a| format!("{a:?}"));
            self.issue(
                at,
                Some("List".into()),
                "apiVersion".into(),
                format!("expected v1 for a List, found {found}"),
            );
        }
        for k in m.keys() {
            let known = matches!(
                k.as_str(),
                Some("apiVersion" | "kind" | "items" | "metadata")
            );
            if !known {
                let path = k
                    .as_str()
                    .map_or_else(|| "items".to_string(), |s| child("", s));
                self.issue(
                    at,
                    Some("List".into()),
                    path,
                    "unknown field (expected one of: apiVersion, kind, metadata, items)",
                );
            }
        }
        match m.get("items") {
            Some(Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.document(item, at, &index("items", i), Some("List"));
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => self.issue(at, Some("List".into()), "items".into(), "expected a list"),
        }
    }
}
