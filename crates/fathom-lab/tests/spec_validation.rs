//! Spec parsing and validation: every bad document is rejected with a message that names the field. Pure; no root.

use fathom_lab::{LabSpec, Protocol, DEMO_SPEC, NAMESPACE_NAME_LABEL};

/// (what, YAML, expected substring of the error)
const BAD: &[(&str, &str, &str)] = &[
    (
        "invalid pod name",
        "namespaces: [{name: x, pods: [{name: a}]}, {name: y, pods: [{name: A_b}]}]",
        r#"namespaces[1].pods[0].name: "A_b" is not a valid DNS-1123 label"#,
    ),
    ("invalid namespace name", "namespaces: [{name: X, pods: [{name: a}]}]", r#"namespaces[0].name: "X" is not a valid DNS-1123 label"#),
    ("invalid lab name", "name: my_lab\nnamespaces: [{name: x, pods: [{name: a}]}]", r#"name: "my_lab" is not a valid DNS-1123 label"#),
    ("leading hyphen", "namespaces: [{name: x, pods: [{name: -a}]}]", r#"namespaces[0].pods[0].name: "-a" is not a valid DNS-1123 label"#),
    (
        "duplicate namespace",
        "namespaces: [{name: x, pods: [{name: a}]}, {name: x, pods: [{name: b}]}]",
        r#"namespaces[1].name: duplicate namespace "x" (also namespaces[0])"#,
    ),
    (
        "duplicate pod",
        "namespaces: [{name: x, pods: [{name: a}, {name: a}]}]",
        r#"namespaces[0].pods[1].name: duplicate pod "a" in namespace "x" (also pods[0])"#,
    ),
    (
        "same pod name in two namespaces is fine, duplicate port name is not",
        "namespaces: [{name: x, pods: [{name: a}]}, {name: y, pods: [{name: a, ports: [{name: http, port: 80}, {name: http, port: 81}]}]}]",
        r#"namespaces[1].pods[0].ports[1].name: duplicate port name "http" (also ports[0])"#,
    ),
    (
        "duplicate port/protocol",
        "namespaces: [{name: x, pods: [{name: a, ports: [{port: 53, protocol: UDP}, {port: 53, protocol: UDP}]}]}]",
        "namespaces[0].pods[0].ports[1].port: duplicate port 53/UDP (also ports[0])",
    ),
    ("port 0", "namespaces: [{name: x, pods: [{name: a, ports: [{port: 0}]}]}]", "namespaces[0].pods[0].ports[0]: port 0 is out of range 1..65535"),
    ("port too big", "namespaces: [{name: x, pods: [{name: a, ports: [{port: 70000}]}]}]", "namespaces[0].pods[0].ports[0]: port 70000 is out of range 1..65535"),
    ("negative port", "namespaces: [{name: x, pods: [{name: a, ports: [{port: -1}]}]}]", "port -1 is out of range 1..65535"),
    ("port not a number", "namespaces: [{name: x, pods: [{name: a, ports: [{port: http}]}]}]", "namespaces[0].pods[0].ports[0].port: invalid type"),
    ("bad protocol", "namespaces: [{name: x, pods: [{name: a, ports: [{port: 80, protocol: tcp}]}]}]", "unknown variant `tcp`, expected one of `TCP`, `UDP`, `SCTP`"),
    ("bad port name", "namespaces: [{name: x, pods: [{name: a, ports: [{name: HTTP, port: 80}]}]}]", r#"namespaces[0].pods[0].ports[0].name: "HTTP" is not a valid port name"#),
    ("numeric port name", "namespaces: [{name: x, pods: [{name: a, ports: [{name: '8080', port: 80}]}]}]", r#""8080" is not a valid port name"#),
    ("unknown top-level field", "namespace: []", "unknown field `namespace`, expected `name` or `namespaces`"),
    ("unknown pod field", "namespaces: [{name: x, pods: [{name: a, image: nginx}]}]", "namespaces[0].pods[0]: unknown field `image`"),
    ("unknown port field", "namespaces: [{name: x, pods: [{name: a, ports: [{port: 80, hostPort: 80}]}]}]", "unknown field `hostPort`"),
    ("unknown namespace field", "namespaces: [{name: x, podz: []}]", "namespaces[0]: unknown field `podz`"),
    ("missing pod name", "namespaces: [{name: x, pods: [{labels: {a: b}}]}]", "missing field `name`"),
    ("no namespaces", "name: empty", "namespaces: at least one namespace is required"),
    ("no pods", "namespaces: [{name: x}]", "namespaces: the lab has no pods"),
    ("bad label key", "namespaces: [{name: x, pods: [{name: a, labels: {'bad key': v}}]}]", r#"namespaces[0].pods[0].labels: key "bad key" is not a valid label key"#),
    ("bad label value", "namespaces: [{name: x, labels: {team: '-blue'}, pods: [{name: a}]}]", r#"namespaces[0].labels: value "-blue" of "team" is not a valid label value"#),
    ("label value not a string", "namespaces: [{name: x, pods: [{name: a, labels: {version: [1]}}]}]", "namespaces[0].pods[0].labels.version: invalid type"),
    (
        "namespace name label overridden",
        "namespaces: [{name: x, labels: {kubernetes.io/metadata.name: y}, pods: [{name: a}]}]",
        r#"namespaces[0].labels: "kubernetes.io/metadata.name" is set automatically to the namespace name "x""#,
    ),
    ("not yaml", "namespaces: [", "invalid lab spec"),
];

#[test]
fn bad_specs_are_rejected_with_the_field_named() {
    let too_long = format!(
        "namespaces: [{{name: {}, pods: [{{name: a}}]}}]",
        "n".repeat(64)
    );
    let too_long_want = format!(
        "namespaces[0].name: {:?} is not a valid DNS-1123 label",
        "n".repeat(64)
    );
    let cases = BAD.iter().map(|(w, y, e)| (*w, *y, *e)).chain([(
        "name too long",
        too_long.as_str(),
        too_long_want.as_str(),
    )]);
    let mut failures = Vec::new();
    for (what, yaml, want) in cases {
        match LabSpec::from_yaml(yaml) {
            Ok(_) => failures.push(format!(
                "{what}: accepted, expected error containing {want:?}"
            )),
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => failures.push(format!(
                "{what}: error {:?} does not contain {want:?}",
                e.to_string()
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn too_many_pods() {
    let pods = |n: usize| {
        (0..n)
            .map(|i| format!("{{name: p{i}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let yaml = format!(
        "namespaces: [{{name: x, pods: [{}]}}, {{name: y, pods: [{}]}}]",
        pods(150),
        pods(51)
    );
    let err = LabSpec::from_yaml(&yaml).unwrap_err().to_string();
    assert_eq!(
        err,
        "namespaces: 201 pods in total; a lab holds at most 200"
    );
    let yaml = format!(
        "namespaces: [{{name: x, pods: [{}]}}, {{name: y, pods: [{}]}}]",
        pods(150),
        pods(50)
    );
    assert_eq!(LabSpec::from_yaml(&yaml).unwrap().pod_count(), 200);
}

#[test]
fn full_example_parses() {
    let yaml = r#"
name: demo            # optional
namespaces:
  - name: x
    labels: {team: blue}
    pods:
      - name: a
        labels: {pod: a, app: web}
        ports:
          - {name: http, port: 80, protocol: TCP}
          - {name: dns, port: 53, protocol: UDP}
          - {port: 9000, protocol: SCTP}
          - {port: 9001}
"#;
    let spec = LabSpec::from_yaml(yaml).unwrap();
    assert_eq!(spec.name.as_deref(), Some("demo"));
    let pod = &spec.namespaces[0].pods[0];
    assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
    let protos: Vec<Protocol> = pod.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(
        protos,
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Tcp]
    );
    assert_eq!(pod.ports[0].name.as_deref(), Some("http"));
    assert_eq!(pod.ports[2].name, None);
    // Explicitly setting the automatic label to the right value is allowed.
    LabSpec::from_yaml(
        "namespaces: [{name: x, labels: {kubernetes.io/metadata.name: x}, pods: [{name: a}]}]",
    )
    .unwrap();
    // Round trip.
    let again = LabSpec::from_yaml(&serde_norway::to_string(&spec).unwrap()).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn demo_spec_is_loadable() {
    let spec = LabSpec::from_yaml(DEMO_SPEC).unwrap();
    assert_eq!(spec.name.as_deref(), Some("demo"));
    assert!((2..=3).contains(&spec.namespaces.len()));
    assert!(spec.pod_count() >= 4);
    assert!(spec
        .namespaces
        .iter()
        .flat_map(|n| &n.pods)
        .any(|p| p.ports.iter().any(|p| p.name.is_some())));
    assert!(spec
        .namespaces
        .iter()
        .all(|n| !n.labels.contains_key(NAMESPACE_NAME_LABEL)));
}
