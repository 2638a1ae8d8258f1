//! What the director finds on the host (pure): lvsup's address label and
//! which of the addresses present are this cluster's.
//!
//! **Tag**: the IPv4 address label (`IFA_LABEL`, what `ip addr` prints at the
//! end of the line) `<ifname>:lvs<vrid>`, at most 15 bytes (IFNAMSIZ − 1; a
//! long interface name is cut to fit, the suffix always stays). The VRID
//! names the cluster on the LAN, so several lvsup clusters on one director
//! never touch each other's addresses; the label survives a `kill -9` of the
//! daemon, so the next start finds what the dead one left ([`classify`]).
//! `director::addr` puts it on the addresses it adds.

use ipnet::Ipv4Net;

use super::Floating;

/// Linux IFNAMSIZ − 1: the longest label the kernel keeps.
pub const MAX_LABEL: usize = 15;

/// `eth0:lvs51`: the label marking an address as this cluster's.
pub fn label(ifname: &str, vrid: u8) -> String {
    let suffix = format!(":lvs{vrid}");
    let room = MAX_LABEL - suffix.len();
    let mut name: String = ifname.chars().take(room).collect();
    while name.len() > room {
        name.pop();
    }
    name + &suffix
}

/// Whether an address with this label is ours (this VRID's).
pub fn is_ours(label: Option<&str>, vrid: u8) -> bool {
    label.is_some_and(|l| l.ends_with(&format!(":lvs{vrid}")))
}

/// One IPv4 address of the host, as the driver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The interface it is on, when it is one the director floats
    /// addresses on (VRRP or NAT internal); `None`: any other.
    pub interface: Option<String>,
    pub net: Ipv4Net,
    pub label: Option<String>,
}

impl HostAddress {
    /// Whether this is `f`, with this VRID's label, on `f`'s interface.
    pub fn holds(&self, f: &Floating, vrid: u8) -> bool {
        self.net == f.net
            && self.interface.as_deref() == Some(f.interface.as_str())
            && is_ours(self.label.as_deref(), vrid)
    }
}

/// What to do at start about an address already on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Exactly one of this config's floating addresses, on its interface,
    /// with our label: a run that died while Master left it; the core keeps
    /// it until another master is heard.
    Leftover(Floating),
    /// One of this config's floating addresses on its interface with our
    /// label but another prefix (the config changed since): remove it.
    Stale(Floating),
    /// One of our floating addresses without our label (put there by hand):
    /// leave it, warn.
    Foreign,
    /// Not this cluster's: leave it alone.
    Other,
}

/// Classify an address found at start. `owned` is what this config floats,
/// each on the interface it goes on (the VIPs on the VRRP interface, the
/// NAT gateway on the internal one).
///
/// Only those addresses, only on those interfaces, are ever touched. The
/// label alone (`:lvs<VRID>`) is not enough: the VRID is unique per LAN, not
/// per host, so another cluster with the same VRID on another NIC (another
/// segment) labels its VIP the same way, and a start-up that removed every
/// `:lvs<VRID>` address took that cluster's VIP away. The price: an address
/// of an *earlier* config of this cluster (the VIP changed while the daemon
/// was dead) stays; a clean stop releases it, and `ip addr del` removes it.
pub fn classify(a: &HostAddress, vrid: u8, owned: &[Floating]) -> Found {
    let ours = is_ours(a.label.as_deref(), vrid);
    let on = |f: &&Floating| a.interface.as_deref() == Some(f.interface.as_str());
    if let Some(f) = owned.iter().filter(on).find(|f| ours && f.net == a.net) {
        Found::Leftover(f.clone())
    } else if let Some(f) = owned
        .iter()
        .filter(on)
        .find(|f| ours && f.net.addr() == a.net.addr())
    {
        Found::Stale(Floating {
            interface: f.interface.clone(),
            net: a.net,
        })
    } else if !ours && owned.iter().any(|f| f.net.addr() == a.net.addr()) {
        Found::Foreign
    } else {
        Found::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_fits_ifnamsiz_and_keeps_the_suffix() {
        assert_eq!(label("eth0", 51), "eth0:lvs51");
        assert_eq!(label("enp0s31f6", 255), "enp0s31f:lvs255");
        assert_eq!(label("verylonginterface", 1), "verylongin:lvs1");
        for n in ["eth0", "enp0s31f6", "verylonginterface", "x"] {
            for v in [1, 51, 255] {
                let l = label(n, v);
                assert!(l.len() <= MAX_LABEL, "{l}");
                assert!(is_ours(Some(&l), v));
            }
        }
    }

    #[test]
    fn tag_is_per_vrid() {
        assert!(is_ours(Some("eth0:lvs51"), 51));
        assert!(!is_ours(Some("eth0:lvs51"), 5));
        assert!(!is_ours(Some("eth0:lvs5"), 51));
        assert!(!is_ours(Some("eth0"), 51));
        assert!(!is_ours(None, 51));
    }

    fn a(interface: Option<&str>, net: &str, label: Option<&str>) -> HostAddress {
        HostAddress {
            interface: interface.map(str::to_string),
            net: net.parse().expect("net"),
            label: label.map(str::to_string),
        }
    }

    fn f(interface: &str, net: &str) -> Floating {
        Floating {
            interface: interface.into(),
            net: net.parse().expect("net"),
        }
    }

    #[test]
    fn classify_only_this_clusters_addresses_on_its_interfaces() {
        // The VIP on the VRRP interface eth0, the gateway on eth1.
        let (vip, gw) = (f("eth0", "192.0.2.100/32"), f("eth1", "10.0.0.1/24"));
        let owned = [vip.clone(), gw.clone()];
        let c = |i, n, l| classify(&a(i, n, l), 51, &owned);
        // Our VIP and gateway, each on its interface, with our label.
        let leftover = c(Some("eth0"), "192.0.2.100/32", Some("eth0:lvs51"));
        assert_eq!(leftover, Found::Leftover(vip));
        let leftover = c(Some("eth1"), "10.0.0.1/24", Some("eth1:lvs51"));
        assert_eq!(leftover, Found::Leftover(gw));
        // The gateway with another prefix (config changed): removed.
        let stale = c(Some("eth1"), "10.0.0.1/16", Some("eth1:lvs51"));
        assert_eq!(stale, Found::Stale(f("eth1", "10.0.0.1/16")));
        // Another cluster with the same VRID on another NIC (another
        // segment) keeps its VIP: the label alone does not make it ours.
        let other = c(None, "198.51.100.7/32", Some("eth5:lvs51"));
        assert_eq!(other, Found::Other);
        // Even the same address there is not ours: only our interface counts.
        assert_eq!(c(None, "192.0.2.100/32", Some("eth5:lvs51")), Found::Other);
        // The gateway address on the VRRP interface is not where it goes.
        assert_eq!(
            c(Some("eth0"), "10.0.0.1/24", Some("eth0:lvs51")),
            Found::Other
        );
        // Another address with our label on our interface (an earlier
        // config's VIP): left alone, it is not this config's.
        assert_eq!(
            c(Some("eth0"), "192.0.2.99/32", Some("eth0:lvs51")),
            Found::Other
        );
        // The VIP put there by hand: not removed, warned about.
        assert_eq!(
            c(Some("eth0"), "192.0.2.100/32", Some("eth0")),
            Found::Foreign
        );
        // Another VRID's VIP, and the host's own address.
        assert_eq!(
            c(Some("eth0"), "192.0.2.50/32", Some("eth0:lvs52")),
            Found::Other
        );
        assert_eq!(c(Some("eth0"), "192.0.2.1/24", Some("eth0")), Found::Other);
    }

    #[test]
    fn holds_needs_address_interface_and_label() {
        let vip = f("eth0", "192.0.2.100/32");
        assert!(a(Some("eth0"), "192.0.2.100/32", Some("eth0:lvs51")).holds(&vip, 51));
        assert!(!a(Some("eth0"), "192.0.2.100/24", Some("eth0:lvs51")).holds(&vip, 51));
        assert!(!a(None, "192.0.2.100/32", Some("eth5:lvs51")).holds(&vip, 51));
        assert!(!a(Some("eth0"), "192.0.2.100/32", Some("eth0")).holds(&vip, 51));
        assert!(!a(Some("eth0"), "192.0.2.100/32", Some("eth0:lvs52")).holds(&vip, 51));
    }
}
