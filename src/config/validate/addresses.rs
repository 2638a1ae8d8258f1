//! Addresses are unique, and none is the VIP; the error is at the later one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use super::check::V;

/// An address and where it came from, for the uniqueness rule.
pub(super) struct AddrUse {
    pub(super) addr: Ipv4Addr,
    pub(super) key: String,
    pub(super) span: Range<usize>,
}

/// Report each address used twice (or a host address equal to the VIP),
/// in file order.
pub(super) fn unique(v: &mut V<'_>, mut addrs: Vec<AddrUse>) {
    addrs.sort_by_key(|u| u.span.start);
    let mut seen: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (i, u) in addrs.iter().enumerate() {
        if let Some(&first) = seen.get(&u.addr) {
            let f = &addrs[first];
            let line = v.line(&f.span);
            let msg = if f.key.starts_with("services[") && f.key.ends_with(".vip") {
                format!(
                    "{} is the VIP of {} (line {line}); a VIP must be none of the hosts' addresses",
                    u.addr,
                    f.key.trim_end_matches(".vip")
                )
            } else if f.key == "cluster.vip" {
                format!(
                    "{} is the VIP (line {line}); the VIP must be none of the hosts' addresses",
                    u.addr
                )
            } else {
                format!("{} is already used by {} (line {line})", u.addr, f.key)
            };
            v.err(&u.key, u.span.clone(), msg).related =
                Some(("first used here".into(), f.span.clone()));
        } else {
            seen.insert(u.addr, i);
        }
    }
}
