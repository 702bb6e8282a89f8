//! policy.bpf.c pinned: a second load under the same pin root re-adopts the first one's maps
//! (generation, both slots, counters), drops endpoint entries that no link enforces, writes
//! only what changed into the standby slot, and maps that no longer fit are replaced. Needs
//! root and bpffs; the pins live in a unique /sys/fs/bpf/fathom-test-* directory removed at
//! the end, and nothing is attached anywhere (BPF_PROG_TEST_RUN).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use fathom_bpf::policy::{remove_pins, PolicyConfig, PolicyDatapath, Readopted, PINNED_MAPS};
use fathom_policy::{
    compile, load_str, CompileOptions, Endpoint, Endpoints, IdentityAllocator, LoadOptions, L4,
};

mod policy_support;
use policy_support::{frame, TC_DROP, TC_PASS, TEST_IFINDEX};

const A: u32 = 11;

struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = remove_pins(&self.0);
    }
}

type Entries = (Vec<([u8; 16], [u8; 8])>, Vec<([u8; 20], [u8; 8])>);

/// x/a may receive nothing on UDP 81 (a deny-only policy: everything else passes).
fn entries() -> Entries {
    let yaml = "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: a-deny, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - action: deny\n    ports: [{port: 81, protocol: UDP}]\n";
    let set = load_str("t.yaml", yaml, &LoadOptions::default()).expect("loads");
    let mut eps = Endpoints::new();
    eps.add_namespace("x", Default::default()).expect("ns");
    eps.add_endpoint(Endpoint::new(A, "x", "a").label("pod", "a").ip(a()))
        .expect("a");
    let c = compile(
        &set,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compiles");
    (
        c.policy_map_entries()
            .iter()
            .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
            .collect(),
        c.ipcache_map_entries()
            .iter()
            .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
            .collect(),
    )
}

fn a() -> IpAddr {
    "10.1.0.1".parse().expect("ip")
}

/// One UDP datagram from outside to x/a on `port`: the TC verdict.
fn udp_to_a(dp: &PolicyDatapath, port: u16, sport: u16) -> i32 {
    dp.set_endpoint(TEST_IFINDEX, A).expect("endpoint");
    let f = frame(
        "10.9.0.1".parse().expect("ip"),
        a(),
        L4::Udp { dport: port },
        sport,
    );
    dp.test_run(true, &f, 1).expect("test run").0
}

fn slots(dp: &PolicyDatapath) -> BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut d = dp.dump();
    d.retain(|name, _| name.starts_with("policy_rules") || name.starts_with("policy_ipcache"));
    d
}

#[test]
fn a_second_load_re_adopts_the_pinned_state() {
    let root = PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-polpin-bpf-{}",
        std::process::id()
    ));
    let _pins = Pins(root.clone());
    let cfg = PolicyConfig::default();
    let (policy, ipcache) = entries();

    let (mut dp, found) = PolicyDatapath::load_pinned(&cfg, &root).expect("load (root?)");
    assert_eq!(found, Readopted::default(), "nothing pinned yet");
    for m in PINNED_MAPS {
        assert!(root.join(m).exists(), "{m} pinned");
    }
    dp.apply(&policy, &ipcache).expect("apply");
    dp.apply(&policy, &ipcache).expect("apply");
    assert_eq!(dp.generation(), 2);
    assert_eq!(udp_to_a(&dp, 81, 1000), TC_DROP);
    assert_eq!(udp_to_a(&dp, 80, 1001), TC_PASS);
    assert_eq!(dp.stats()["dropped"], 1);
    let before = slots(&dp);
    let counters_before = dp.counters();
    assert!(
        !counters_before.is_empty(),
        "the probes counted under their decisions"
    );
    drop(dp);

    let (mut dp, found) = PolicyDatapath::load_pinned(&cfg, &root).expect("reload");
    assert_eq!(
        found,
        Readopted {
            generation: 2,
            ..Readopted::default()
        }
    );
    assert_eq!(dp.generation(), 2);
    assert_eq!(slots(&dp), before, "both slots re-adopted as they were");
    assert_eq!(dp.stats()["dropped"], 1, "counters continue");
    assert_eq!(
        dp.counters(),
        counters_before,
        "per-decision counters of the active slot continue"
    );
    let dump = dp.dump();
    assert!(
        dump["policy_endpoints"].is_empty()
            && dump["policy_endpoint_slots"]
                .values()
                .all(|v| v.iter().all(|b| *b == 0)),
        "an endpoint entry no pinned link enforces is removed"
    );
    // The standby slot (1) holds generation 1, the same policy: the re-read shadow makes the
    // apply write nothing there, and it flips to generation 3.
    let r = dp.apply(&policy, &ipcache).expect("apply");
    assert_eq!(
        (r.generation, r.slot, r.policy_written, r.policy_deleted),
        (3, 1, 0, 0)
    );
    assert_eq!((r.ipcache_written, r.ipcache_deleted), (0, 0));
    assert_eq!(udp_to_a(&dp, 81, 1002), TC_DROP);
    assert_eq!(dp.stats()["dropped"], 2);
    drop(dp);

    // Maps of another size do not fit: new ones are pinned in their place.
    let small = PolicyConfig {
        policy_capacity: 1024,
        ..cfg
    };
    let (dp, found) = PolicyDatapath::load_pinned(&small, &root).expect("load, new maps");
    assert_eq!(
        found,
        Readopted {
            maps_replaced: true,
            ..Readopted::default()
        }
    );
    assert_eq!(dp.stats()["dropped"], 0);
    drop(dp);

    let removed = remove_pins(&root).expect("remove pins");
    assert_eq!(removed.len(), PINNED_MAPS.len());
    assert!(!root.exists());
}
