//! Malformed documents: each is rejected with exactly these messages, and an apply with any
//! error yields no PolicySet (all-or-nothing) while reporting every error it found.

use fathom_policy::{load_sources, load_str, LoadOptions, Source};

struct Case {
    name: &'static str,
    yaml: &'static str,
    errors: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown-field",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - form: []\n",
        errors: &[r#"unknown-field.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].form: unknown field (expected one of: from, ports)"#],
    },
    Case {
        name: "fathom-field-in-k8s",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n",
        errors: &[r#"fathom-field-in-k8s.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].action: unknown field (expected one of: from, ports); "action" is a FathomNetworkPolicy field"#],
    },
    Case {
        name: "no-kind",
        yaml: "apiVersion: networking.k8s.io/v1\nmetadata: {name: web}\nspec: {podSelector: {}}\n",
        errors: &[r#"no-kind.yaml: document 1: kind: required field is missing (expected NetworkPolicy, FathomNetworkPolicy or List)"#],
    },
    Case {
        name: "bad-kind",
        yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {}\n",
        errors: &[r#"bad-kind.yaml: document 1 (Pod default/web): kind: unsupported kind "Pod" (expected NetworkPolicy, FathomNetworkPolicy or List)"#],
    },
    Case {
        name: "bad-api",
        yaml: "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {podSelector: {}}\n",
        errors: &[r#"bad-api.yaml: document 1 (NetworkPolicy x/web): apiVersion: "networking.k8s.io/v1beta1" is not supported for NetworkPolicy (expected networking.k8s.io/v1)"#],
    },
    Case {
        name: "no-name",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: x}\nspec: {podSelector: {}}\n",
        errors: &[r#"no-name.yaml: document 1 (NetworkPolicy): metadata.name: required field is missing"#],
    },
    Case {
        name: "bad-name",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Web_1, namespace: x}\nspec: {podSelector: {}}\n",
        errors: &[r#"bad-name.yaml: document 1 (NetworkPolicy x/Web_1): metadata.name: "Web_1" is not a valid DNS-1123 subdomain (lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)"#],
    },
    Case {
        name: "bad-namespace",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: X.y}\nspec: {podSelector: {}}\n",
        errors: &[r#"bad-namespace.yaml: document 1 (NetworkPolicy X.y/web): metadata.namespace: "X.y" is not a valid DNS-1123 label (lowercase alphanumeric characters or '-', starting and ending with an alphanumeric character)"#],
    },
    Case {
        name: "no-spec",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\n",
        errors: &[r#"no-spec.yaml: document 1 (NetworkPolicy x/web): spec: required field is missing"#],
    },
    Case {
        name: "no-podselector",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {ingress: []}\n",
        errors: &[r#"no-podselector.yaml: document 1 (NetworkPolicy x/web): spec.podSelector: required field is missing (use {} to select every pod)"#],
    },
    Case {
        name: "bad-label-key",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchLabels: {-app: web}\n",
        errors: &[r#"bad-label-key.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchLabels.-app: label key name "-app" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"#],
    },
    Case {
        name: "bad-label-value",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchLabels: {app.kubernetes.io/name: web/1}\n",
        errors: &[r#"bad-label-value.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchLabels["app.kubernetes.io/name"]: label value "web/1" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"#],
    },
    Case {
        name: "label-value-number",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchLabels: {version: 1}\n",
        errors: &[r#"label-value-number.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchLabels.version: expected a string, found a number"#],
    },
    Case {
        name: "bad-operator",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: in, values: [a]}]\n",
        errors: &[r#"bad-operator.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchExpressions[0].operator: unsupported operator "in" (expected In, NotIn, Exists or DoesNotExist)"#],
    },
    Case {
        name: "in-empty",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: In, values: []}]\n",
        errors: &[r#"in-empty.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchExpressions[0].values: must be non-empty when operator is In"#],
    },
    Case {
        name: "exists-values",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: Exists, values: [a]}]\n",
        errors: &[r#"exists-values.yaml: document 1 (NetworkPolicy x/web): spec.podSelector.matchExpressions[0].values: must be empty when operator is Exists"#],
    },
    Case {
        name: "peer-both",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n",
        errors: &[r#"peer-both.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector in one peer"#],
    },
    Case {
        name: "peer-empty",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - {}\n",
        errors: &[r#"peer-empty.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].from[0]: must specify a peer: podSelector, namespaceSelector or ipBlock"#],
    },
    Case {
        name: "bad-cidr",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n",
        errors: &[r#"bad-cidr.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].from[0].ipBlock.cidr: "10.0.0.0/33" is not a valid CIDR (expected address/prefix-length)"#],
    },
    Case {
        name: "host-bits",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.1.2.3/16}\n",
        errors: &[r#"host-bits.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].from[0].ipBlock.cidr: 10.1.2.3/16 has host bits set (did you mean 10.1.0.0/16?)"#],
    },
    Case {
        name: "except-outside",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.1.0.0/16, except: [10.2.0.0/24]}\n",
        errors: &[r#"except-outside.yaml: document 1 (NetworkPolicy x/web): spec.egress[0].to[0].ipBlock.except[0]: 10.2.0.0/24 is not strictly inside cidr 10.1.0.0/16"#],
    },
    Case {
        name: "except-equal",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.0.0/16]}\n",
        errors: &[r#"except-equal.yaml: document 1 (NetworkPolicy x/web): spec.egress[0].to[0].ipBlock.except[0]: 10.1.0.0/16 is not strictly inside cidr 10.1.0.0/16"#],
    },
    Case {
        name: "except-family",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: ['2001:db8::/32']}\n",
        errors: &[r#"except-family.yaml: document 1 (NetworkPolicy x/web): spec.egress[0].to[0].ipBlock.except[0]: 2001:db8::/32 is not the address family of cidr 10.0.0.0/8"#],
    },
    Case {
        name: "endport-no-port",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{protocol: TCP, endPort: 90}]\n",
        errors: &[r#"endport-no-port.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].endPort: endPort requires a numeric port"#],
    },
    Case {
        name: "endport-named",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: http, endPort: 90}]\n",
        errors: &[r#"endport-named.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].endPort: endPort cannot be used with named port "http""#],
    },
    Case {
        name: "endport-below",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 443}, {port: 80, endPort: 70}]\n",
        errors: &[r#"endport-below.yaml: document 1 (NetworkPolicy x/allow-web): spec.ingress[0].ports[1].endPort: 70 is below port 80"#],
    },
    Case {
        name: "port-zero",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n",
        errors: &[r#"port-zero.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].port: 0 is out of range (1-65535)"#],
    },
    Case {
        name: "port-big",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n",
        errors: &[r#"port-big.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].port: 70000 is out of range (1-65535)"#],
    },
    Case {
        name: "endport-big",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 80, endPort: 65536}]\n",
        errors: &[r#"endport-big.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].endPort: 65536 is out of range (1-65535)"#],
    },
    Case {
        name: "bad-protocol",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{protocol: tcp, port: 80}]\n",
        errors: &[r#"bad-protocol.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].protocol: unsupported protocol "tcp" (expected TCP, UDP or SCTP); protocols are upper case: TCP"#],
    },
    Case {
        name: "icmp-protocol-fathom",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{protocol: ICMP}]\n",
        errors: &[r#"icmp-protocol-fathom.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[0].ports[0].protocol: unsupported protocol "ICMP" (expected TCP, UDP or SCTP); ICMP is matched with icmps"#],
    },
    Case {
        name: "bad-port-name",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: \"80\"}]\n",
        errors: &[r#"bad-port-name.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].port: port name "80" must contain at least one letter"#],
    },
    Case {
        name: "port-float",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 80.5}]\n",
        errors: &[r#"port-float.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].ports[0].port: expected an integer, found 80.5"#],
    },
    Case {
        name: "bad-policytype",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [ingress]\n",
        errors: &[r#"bad-policytype.yaml: document 1 (NetworkPolicy x/web): spec.policyTypes[0]: unsupported value "ingress" (expected Ingress or Egress)"#],
    },
    Case {
        name: "dup-policytype",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n",
        errors: &[r#"dup-policytype.yaml: document 1 (NetworkPolicy x/web): spec.policyTypes[1]: Ingress is listed twice"#],
    },
    Case {
        name: "ingress-not-list",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress: {from: []}\n",
        errors: &[r#"ingress-not-list.yaml: document 1 (NetworkPolicy x/web): spec.ingress: expected a list, found a mapping"#],
    },
    Case {
        name: "null-rule",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  -\n",
        errors: &[r#"null-rule.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0]: expected a mapping, found null"#],
    },
    Case {
        name: "bad-mode",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  mode: dryrun\n  podSelector: {}\n",
        errors: &[r#"bad-mode.yaml: document 1 (FathomNetworkPolicy x/web): spec.mode: unsupported mode "dryrun" (expected enforce or audit)"#],
    },
    Case {
        name: "bad-action",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  egress:\n  - action: drop\n",
        errors: &[r#"bad-action.yaml: document 1 (FathomNetworkPolicy x/web): spec.egress[0].action: unsupported action "drop" (expected allow or deny)"#],
    },
    Case {
        name: "icmp-type-range",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n    icmps: [{type: 256}]\n",
        errors: &[r#"icmp-type-range.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[0].icmps[0].type: 256 is out of range (0-255)"#],
    },
    Case {
        name: "icmp-no-type",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n    icmps: [{code: 1}]\n",
        errors: &[r#"icmp-no-type.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[0].icmps[0].type: required field is missing"#],
    },
    Case {
        name: "icmp-family",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n    icmps: [{family: ipv4, type: 8}]\n",
        errors: &[r#"icmp-family.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[0].icmps[0].family: unsupported family "ipv4" (expected IPv4 or IPv6)"#],
    },
    Case {
        name: "bad-log-label",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n    logLabel: 'bad label'\n",
        errors: &[r#"bad-log-label.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[0].logLabel: log label "bad label" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"#],
    },
    Case {
        name: "allow-outside-types",
        yaml: "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  ingress:\n  - action: deny\n  - from: [{podSelector: {}}]\n",
        errors: &[r#"allow-outside-types.yaml: document 1 (FathomNetworkPolicy x/web): spec.ingress[1]: allow rule has no effect: policyTypes does not include Ingress"#],
    },
    Case {
        name: "yaml-syntax",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web\n",
        errors: &[r#"yaml-syntax.yaml: document 1: YAML syntax error: did not find expected ',' or '}' at line 4 column 1, while parsing a flow mapping at line 3 column 11"#],
    },
    Case {
        name: "dup-key",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  podSelector: {}\n",
        errors: &[r#"dup-key.yaml: document 1: YAML syntax error: spec: duplicate entry with key "podSelector" at line 5 column 3"#],
    },
    Case {
        name: "scalar-doc",
        yaml: "just a string\n",
        errors: &[r#"scalar-doc.yaml: document 1: expected a Kubernetes object (a mapping), found a string"#],
    },
    Case {
        name: "nested-list",
        yaml: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n",
        errors: &[r#"nested-list.yaml: document 1: items[0].kind: a List may not contain another List"#],
    },
    Case {
        name: "list-item-bad",
        yaml: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: a, namespace: x}\n  spec: {podSelector: {}}\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: b, namespace: x}\n  spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}\n",
        errors: &[r#"list-item-bad.yaml: document 1 (NetworkPolicy x/b): items[1].spec.ingress[0].ports[0].port: 0 is out of range (1-65535)"#],
    },
    Case {
        name: "duplicate-name",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {podSelector: {}}\n",
        errors: &[r#"duplicate-name.yaml: document 2 (NetworkPolicy x/web): metadata.name: duplicate NetworkPolicy x/web: already defined in duplicate-name.yaml: document 1"#],
    },
    Case {
        name: "mapped-v6",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: '::ffff:10.0.0.0/104'}}]\n",
        errors: &[r#"mapped-v6.yaml: document 1 (NetworkPolicy x/web): spec.ingress[0].from[0].ipBlock.cidr: ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 range; write it as an IPv4 CIDR"#],
    },
    Case {
        name: "bad-annotation",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x, annotations: {'a b': x}}\nspec: {podSelector: {}}\n",
        errors: &[r#"bad-annotation.yaml: document 1 (NetworkPolicy x/web): metadata.annotations["a b"]: annotation key name "a b" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"#],
    },
    Case {
        name: "null-podselector",
        yaml: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n",
        errors: &[r#"null-podselector.yaml: document 1 (NetworkPolicy x/web): spec.podSelector: must not be null (use {} to select every pod)"#],
    },
];

#[test]
fn malformed_documents_are_rejected_with_exact_messages() {
    assert!(CASES.len() >= 25);
    let mut failures = Vec::new();
    for c in CASES {
        let file = format!("{}.yaml", c.name);
        match load_str(&file, c.yaml, &LoadOptions::default()) {
            Ok(set) => failures.push(format!("{}: accepted ({} policies)", c.name, set.len())),
            Err(e) => {
                let got = e.messages();
                if got != c.errors {
                    failures.push(format!(
                        "{}:\n  got      {:?}\n  expected {:?}",
                        c.name, got, c.errors
                    ));
                }
            }
        }
    }
    println!("{} malformed documents checked", CASES.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const GOOD: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ok, namespace: x}\nspec: {podSelector: {}}\n";

#[test]
fn one_bad_document_means_no_policy_set() {
    let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 443}, {port: 80, endPort: 70}]\n";
    let text = format!(
        "{GOOD}---\n{bad}---\n{}",
        GOOD.replace("name: ok", "name: ok2")
    );
    let err = load_str("policies/web.yaml", &text, &LoadOptions::default())
        .expect_err("must be rejected");
    assert_eq!(
        err.messages(),
        ["policies/web.yaml: document 2 (NetworkPolicy x/allow-web): spec.ingress[0].ports[1].endPort: 70 is below port 80"]
    );
    // The good documents alone load.
    let ok = format!("{GOOD}---\n{}", GOOD.replace("name: ok", "name: ok2"));
    assert_eq!(
        load_str("policies/web.yaml", &ok, &LoadOptions::default())
            .expect("valid")
            .len(),
        2
    );
}

#[test]
fn every_error_of_every_document_and_file_is_reported() {
    let many = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: x, colour: red}\nspec:\n  podSelector: {matchLabels: {-bad: x}}\n  policyTypes: [Sideways]\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.1/8}}]\n    ports: [{protocol: ICMP}, {port: 0}]\n";
    let other = "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: b, namespace: x}\nspec:\n  mode: loud\n  podSelector: {}\n";
    let err = load_sources(
        &[
            Source {
                name: "a.yaml".into(),
                text: format!("{many}---\n{GOOD}"),
            },
            Source {
                name: "b.yaml".into(),
                text: other.into(),
            },
        ],
        &LoadOptions::default(),
    )
    .expect_err("must be rejected");
    assert_eq!(
        err.messages(),
        [
            "a.yaml: document 1 (NetworkPolicy x/a): metadata.colour: unknown field (expected one of: name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, managedFields, selfLink, finalizers, ownerReferences)",
            "a.yaml: document 1 (NetworkPolicy x/a): spec.podSelector.matchLabels.-bad: label key name \"-bad\" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "a.yaml: document 1 (NetworkPolicy x/a): spec.ingress[0].from[0].ipBlock.cidr: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
            "a.yaml: document 1 (NetworkPolicy x/a): spec.ingress[0].ports[0].protocol: unsupported protocol \"ICMP\" (expected TCP, UDP or SCTP)",
            "a.yaml: document 1 (NetworkPolicy x/a): spec.ingress[0].ports[1].port: 0 is out of range (1-65535)",
            "a.yaml: document 1 (NetworkPolicy x/a): spec.policyTypes[0]: unsupported value \"Sideways\" (expected Ingress or Egress)",
            "b.yaml: document 1 (FathomNetworkPolicy x/b): spec.mode: unsupported mode \"loud\" (expected enforce or audit)",
        ]
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("policy rejected: 7 errors; nothing was applied\n  a.yaml: document 1"),
        "{shown}"
    );
}

#[test]
fn duplicate_names_across_files_name_the_first_definition() {
    let err = load_sources(
        &[
            Source {
                name: "one.yaml".into(),
                text: GOOD.into(),
            },
            Source {
                name: "two.yaml".into(),
                text: GOOD.into(),
            },
        ],
        &LoadOptions::default(),
    )
    .expect_err("duplicate");
    assert_eq!(
        err.messages(),
        ["two.yaml: document 1 (NetworkPolicy x/ok): metadata.name: duplicate NetworkPolicy x/ok: already defined in one.yaml: document 1"]
    );
    // The same name in another kind or another namespace is fine.
    let fathom = GOOD
        .replace("networking.k8s.io/v1", "fathom.dev/v1alpha1")
        .replace("kind: NetworkPolicy", "kind: FathomNetworkPolicy");
    let elsewhere = GOOD.replace("namespace: x", "namespace: y");
    let set = load_sources(
        &[
            Source {
                name: "one.yaml".into(),
                text: GOOD.into(),
            },
            Source {
                name: "two.yaml".into(),
                text: format!("{fathom}---\n{elsewhere}"),
            },
        ],
        &LoadOptions::default(),
    )
    .expect("valid");
    assert_eq!(set.len(), 3);
}

#[test]
fn kubectl_get_output_and_defaults_load() {
    // Server-populated metadata is accepted; a missing namespace takes the default.
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n  uid: 0b0c\n  resourceVersion: '42'\n  generation: 1\n  creationTimestamp: '2024-01-01T00:00:00Z'\n  labels: {team: a}\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}\nspec:\n  podSelector: {}\n";
    let opts = LoadOptions {
        default_namespace: "prod".into(),
    };
    let set = load_str("get.yaml", text, &opts).expect("valid");
    assert_eq!(set.policies()[0].namespace, "prod");
}

mod no_panic {
    use fathom_policy::{load_str, LoadOptions};
    use proptest::prelude::*;

    const SEED: &str = "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: w, namespace: x}\nspec:\n  mode: audit\n  podSelector: {matchExpressions: [{key: app, operator: In, values: [a]}]}\n  ingress:\n  - action: deny\n    from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}, {namespaceSelector: {}, podSelector: {}}]\n    ports: [{port: 80, endPort: 90, protocol: TCP}, {port: http}]\n    icmps: [{type: 8, code: 0}]\n---\napiVersion: v1\nkind: List\nitems: []\n";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Arbitrary edits of a valid apply never panic: the loader returns a set or errors.
        #[test]
        fn edited_documents_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<char>()), 1..6)) {
            let mut text: Vec<char> = SEED.chars().collect();
            for (at, op, c) in edits {
                let i = at.index(text.len().max(1));
                match op {
                    0 if !text.is_empty() => { text.remove(i.min(text.len() - 1)); }
                    1 => text.insert(i.min(text.len()), c),
                    2 if !text.is_empty() => { let j = i.min(text.len() - 1); text[j] = c; }
                    _ => text.insert(i.min(text.len()), ['{', '}', '[', ']', ':', '-', '\n', ' ', '"', '*', '&', '!'][usize::from(u8::try_from(u32::from(c) % 12).unwrap_or(0))]),
                }
            }
            let text: String = text.into_iter().collect();
            match load_str("edited.yaml", &text, &LoadOptions::default()) {
                Ok(_) => {}
                Err(e) => prop_assert!(!e.is_empty() && e.iter().all(|m| m.file == "edited.yaml")),
            }
        }
    }
}
