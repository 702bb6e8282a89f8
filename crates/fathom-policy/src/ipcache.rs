//! The ipcache: address prefixes → identities, with longest-prefix-match lookup, as the
//! kernel's LPM trie will hold it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::identity::Identity;

/// Prefix → identity, looked up by longest prefix. IPv4 and IPv6 are separate spaces.
#[derive(Debug, Clone, Default)]
pub struct IpCache {
    entries: BTreeMap<IpNet, Identity>,
    /// (is_v6, prefix length) → masked address bits → identity; for lookups.
    by_len: BTreeMap<(bool, u8), HashMap<u128, Identity>>,
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn mask(v6: bool, value: u128, len: u8) -> u128 {
    let width: u32 = if v6 { 128 } else { 32 };
    let len = u32::from(len).min(width);
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - len);
    let keep = if v6 {
        keep
    } else {
        keep & u128::from(u32::MAX)
    };
    value & keep
}

impl IpCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert or replace; returns the previous identity of exactly this prefix.
    pub fn insert(&mut self, net: IpNet, id: Identity) -> Option<Identity> {
        let net = net.trunc();
        let (v6, value) = bits(net.addr());
        self.by_len
            .entry((v6, net.prefix_len()))
            .or_default()
            .insert(mask(v6, value, net.prefix_len()), id);
        self.entries.insert(net, id)
    }

    pub fn get(&self, net: &IpNet) -> Option<Identity> {
        self.entries.get(&net.trunc()).copied()
    }

    /// Longest prefix containing `ip`, and its identity.
    pub fn lookup(&self, ip: IpAddr) -> Option<(IpNet, Identity)> {
        let ip = ip.to_canonical();
        let (v6, value) = bits(ip);
        for ((fam, len), table) in self.by_len.range((v6, 0)..=(v6, u8::MAX)).rev() {
            debug_assert_eq!(*fam, v6);
            if let Some(id) = table.get(&mask(v6, value, *len)) {
                let net = IpNet::new(ip, *len).ok()?.trunc();
                return Some((net, *id));
            }
        }
        None
    }

    /// Entries in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Identity)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut c = IpCache::new();
        c.insert(net("0.0.0.0/0"), Identity::WORLD);
        c.insert(net("10.0.0.0/8"), Identity(1 << 24));
        c.insert(net("10.1.0.0/16"), Identity((1 << 24) + 1));
        c.insert(net("10.1.2.3/32"), Identity(300));
        assert_eq!(
            c.lookup(ip("10.1.2.3")),
            Some((net("10.1.2.3/32"), Identity(300)))
        );
        assert_eq!(
            c.lookup(ip("10.1.2.4")),
            Some((net("10.1.0.0/16"), Identity((1 << 24) + 1)))
        );
        assert_eq!(
            c.lookup(ip("10.2.0.1")),
            Some((net("10.0.0.0/8"), Identity(1 << 24)))
        );
        assert_eq!(
            c.lookup(ip("192.0.2.1")),
            Some((net("0.0.0.0/0"), Identity::WORLD))
        );
    }

    #[test]
    fn families_are_separate() {
        let mut c = IpCache::new();
        c.insert(net("0.0.0.0/0"), Identity::WORLD);
        assert_eq!(c.lookup(ip("2001:db8::1")), None);
        c.insert(net("2001:db8::/32"), Identity(1 << 24));
        assert_eq!(
            c.lookup(ip("2001:db8::1")).map(|e| e.1),
            Some(Identity(1 << 24))
        );
        // IPv4-mapped IPv6 is looked up as IPv4.
        assert_eq!(
            c.lookup(ip("::ffff:192.0.2.1")).map(|e| e.1),
            Some(Identity::WORLD)
        );
    }
}
