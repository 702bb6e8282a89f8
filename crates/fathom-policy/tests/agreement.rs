//! The property the kernel will be held to: looking packets up in the compiled entries (the
//! kernel's algorithm, run in user space) gives the evaluator's verdict, for random policies,
//! inventories and packets. Verdicts are compared whole: action, deciding direction, reason
//! and every policy/rule reference of both directions.
//!
//! Policies are generated as JSON (which is YAML) and go through the real loader.

mod random;

use fathom_policy::{
    compile, evaluate, load_str, CompileOptions, IdentityAllocator, LoadOptions, Packet, Peer,
    PortProtocol, L4,
};
use proptest::prelude::*;
use random::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compiled_lookup_agrees_with_the_evaluator((policies, pods, env, packets) in scenario()) {
        let yaml: Vec<String> = policies.iter().enumerate().map(|(i, p)| policy_json(i, p).to_string()).collect();
        let yaml = yaml.join("\n---\n");
        let set = match load_str("random.yaml", &yaml, &LoadOptions::default()) {
            Ok(s) => s,
            Err(e) => return Err(TestCaseError::fail(format!("generated policy rejected: {e}\n{yaml}"))),
        };
        let eps = inventory(&pods, env);
        let compiled = compile(&set, &eps, &mut IdentityAllocator::new(), &CompileOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Besides the random packets, every pod pair on each of the destination's named ports:
        // named-port resolution only matters on exactly those ports, which random draws rarely hit.
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
            let packet = Packet::new(src, dst, l4);
            let want = evaluate(&set, &eps, &packet).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = compiled.evaluate(&eps, &packet).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &want, "packet {:?}\npolicies:\n{}", packet, yaml);
        }
    }
}
