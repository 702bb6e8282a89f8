//! The kernel held to the oracle: random policies, inventories and packets (the generators of
//! fathom-policy's agreement test) are compiled, applied to policy.bpf.c, and every packet is
//! run with BPF_PROG_TEST_RUN through the source endpoint's egress hook and the destination
//! endpoint's ingress hook. Per direction, the kernel's TC verdict and the decision its
//! verdict event names must equal the evaluator's verdict for that direction, whole (action,
//! reason, policies, rules). Needs root; nothing is attached anywhere.

mod policy_support;
#[path = "../../fathom-policy/tests/random/mod.rs"]
mod random;

use std::net::IpAddr;

use fathom_bpf::policy::{KernelVerdict, PolicyConfig};
use fathom_policy::{
    compile, evaluate, load_str, Action, CompileOptions, Compiled, DirectionVerdict, Endpoints,
    IdentityAllocator, LoadOptions, Packet, Peer, PortProtocol, Reason, Resolved, L4,
};
use policy_support::{frame, Kernel, TC_DROP, TC_PASS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use random::*;

/// The address a side of the packet uses, in `family` (4 or 6) when it has a choice.
fn address(eps: &Endpoints, peer: Peer, family: Option<u8>) -> Option<IpAddr> {
    match peer {
        Peer::Ip(ip) => Some(ip),
        Peer::Endpoint(id) => {
            let ep = eps.get(id)?;
            let want = family.unwrap_or(4);
            ep.ips
                .iter()
                .copied()
                .find(|ip| (ip.is_ipv4() && want == 4) || (ip.is_ipv6() && want == 6))
        }
    }
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        4
    } else {
        6
    }
}

fn local(eps: &Endpoints, peer: Peer) -> Option<u32> {
    match peer {
        Peer::Endpoint(id) => Some(id.0),
        Peer::Ip(ip) => match eps.resolve_ip(ip) {
            Resolved::Endpoint(ep) => Some(ep.id.0),
            _ => None,
        },
    }
}

/// One direction through the kernel: its verdict as a DirectionVerdict (via the decision
/// table), checked against the TC return code and the event.
fn kernel_direction(
    k: &Kernel,
    compiled: &Compiled,
    endpoint: u32,
    to_endpoint: bool,
    frame: &[u8],
    want: &DirectionVerdict,
) -> Result<DirectionVerdict, TestCaseError> {
    k.dp.flush_conntrack();
    let (ret, events) = k.run(endpoint, to_endpoint, frame);
    let got = match events.as_slice() {
        [] => DirectionVerdict {
            direction: want.direction,
            action: Action::Allow,
            reason: Reason::NotSelected,
            policies: Vec::new(),
        },
        [e] => {
            let d = compiled
                .decision(fathom_policy::DecisionId(e.decision_id))
                .ok_or_else(|| TestCaseError::fail(format!("unknown decision in {e:?}")))?
                .clone();
            let verdict = match d.action {
                Action::Allow => KernelVerdict::Forwarded,
                Action::Deny => KernelVerdict::Dropped,
                Action::Audit => KernelVerdict::Audit,
            };
            prop_assert_eq!(e.verdict, verdict, "event verdict vs its decision");
            d
        }
        more => return Err(TestCaseError::fail(format!("one event expected: {more:?}"))),
    };
    let want_ret = if got.action == Action::Deny {
        TC_DROP
    } else {
        TC_PASS
    };
    prop_assert_eq!(ret, want_ret, "TC verdict vs decision {:?}", got);
    Ok(got)
}

#[test]
fn kernel_agrees_with_the_evaluator() {
    // The runner's closure is `Fn`: state lives in cells.
    let k = std::cell::RefCell::new(Kernel::load(&PolicyConfig::default()));
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0u64);
    let sport = std::cell::Cell::new(1000u16);
    // Verdicts seen, by action: the comparison must not be vacuous.
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    let result = runner.run(&scenario(), |(policies, pods, env, packets)| {
        let yaml: Vec<String> = policies
            .iter()
            .enumerate()
            .map(|(i, p)| policy_json(i, p).to_string())
            .collect();
        let yaml = yaml.join("\n---\n");
        let set = load_str("random.yaml", &yaml, &LoadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("generated policy rejected: {e}")))?;
        let eps = inventory(&pods, env);
        let compiled = compile(
            &set,
            &eps,
            &mut IdentityAllocator::new(),
            &CompileOptions::default(),
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        k.borrow_mut().apply(&compiled);
        let k = k.borrow();

        let mut all = packets;
        for src in eps.iter() {
            for dst in eps.iter() {
                for p in &dst.ports {
                    let l4 = match p.protocol {
                        PortProtocol::Tcp => L4::Tcp { dport: p.port },
                        PortProtocol::Udp => L4::Udp { dport: p.port },
                        PortProtocol::Sctp => L4::Sctp { dport: p.port },
                    };
                    all.push((Peer::Endpoint(src.id), Peer::Endpoint(dst.id), l4));
                }
            }
        }
        for (src, dst, l4) in all {
            // Addresses of one family: a fixed address decides it, else IPv4.
            let fam = match (src, dst) {
                (Peer::Ip(ip), _) | (_, Peer::Ip(ip)) => Some(family(ip)),
                _ => None,
            };
            let (Some(sa), Some(da)) = (address(&eps, src, fam), address(&eps, dst, fam)) else {
                continue;
            };
            if family(sa) != family(da) {
                continue;
            }
            // The kernel sees addresses: ask the evaluator about the same addresses.
            let packet = Packet::new(Peer::Ip(sa), Peer::Ip(da), l4);
            let want =
                evaluate(&set, &eps, &packet).map_err(|e| TestCaseError::fail(e.to_string()))?;
            sport.set(sport.get().wrapping_add(1).max(1000));
            let f = frame(sa, da, l4, sport.get());
            if let (Some(ep), Some(w)) = (local(&eps, Peer::Ip(sa)), &want.egress) {
                let got = kernel_direction(&k, &compiled, ep, false, &f, w)?;
                *seen
                    .borrow_mut()
                    .entry(format!("{:?}/{:?}", got.action, got.reason))
                    .or_default() += 1;
                prop_assert_eq!(&got, w, "egress of {:?}\npolicies:\n{}", packet, yaml);
                checked.set(checked.get() + 1);
            }
            if let (Some(ep), Some(w)) = (local(&eps, Peer::Ip(da)), &want.ingress) {
                let got = kernel_direction(&k, &compiled, ep, true, &f, w)?;
                *seen
                    .borrow_mut()
                    .entry(format!("{:?}/{:?}", got.action, got.reason))
                    .or_default() += 1;
                prop_assert_eq!(&got, w, "ingress of {:?}\npolicies:\n{}", packet, yaml);
                checked.set(checked.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let checked = checked.get();
    println!("kernel agreed with the evaluator on {checked} directional verdicts");
    assert!(checked > 1000, "too few verdicts compared: {checked}");
    let seen = seen.into_inner();
    println!("by action/reason: {seen:?}");
    for action in ["Allow", "Deny", "Audit"] {
        let n: u64 = seen
            .iter()
            .filter(|(k, _)| k.starts_with(action))
            .map(|(_, n)| n)
            .sum();
        assert!(n > 20, "too few {action} verdicts: {seen:?}");
    }
}
