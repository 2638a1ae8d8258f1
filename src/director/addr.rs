//! Floating addresses (VIP, NAT gateway) over rtnetlink, tagged as lvsup's.
//!
//! **Tag**: the IPv4 address label (`IFA_LABEL`, what `ip addr` prints at the
//! end of the line and `ifconfig` shows as an alias) `<ifname>:lvs<vrid>`,
//! at most 15 bytes (IFNAMSIZ − 1; a long interface name is cut to fit, the
//! suffix always stays). The VRID names the cluster on the LAN, so several
//! lvsup clusters on one director never touch each other's addresses; the
//! label survives a `kill -9` of the daemon, so the next start finds what
//! the dead one left ("stale VIP after a crash"; only this config's
//! addresses on their interfaces: see
//! [`crate::director::core::found::classify`]). Kernels since 6.3 also have
//! `IFA_PROTO`, but Debian 12's 6.1 does not, so the label it is.
//!
//! An address equal to the VIP that is **not** tagged (an operator put it
//! there by hand) is never removed: the daemon logs a warning instead.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::Handle;

pub use crate::director::core::found::{MAX_LABEL, is_ours, label};

/// One IPv4 address of the host, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    pub index: u32,
    pub net: Ipv4Net,
    pub label: Option<String>,
}

/// The interface holding `target`'s subnet: an address with a prefix shorter
/// than /32 whose network contains `target` and that is not `target` itself
/// nor one of our tagged addresses. Pure, over an address dump.
pub fn interface_for(addrs: &[HostAddr], target: Ipv4Addr, vrid: u8) -> Option<u32> {
    addrs
        .iter()
        .filter(|a| a.net.prefix_len() < 32 && a.net.addr() != target)
        .filter(|a| !is_ours(a.label.as_deref(), vrid))
        .filter(|a| a.net.contains(&target))
        .max_by_key(|a| a.net.prefix_len())
        .map(|a| a.index)
}

#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("rtnetlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("rtnetlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no interface named {0}")]
    NoSuchInterface(String),
    #[error("no interface has an address on the subnet of {0}: set `interface` in the config")]
    NoInterfaceFor(Ipv4Addr),
}

/// A link: index, name, MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and running (carrier): IFF_UP and IFF_RUNNING.
    pub up: bool,
}

/// rtnetlink for the daemon's address work.
#[derive(Clone)]
pub struct Addrs {
    handle: Handle,
}

/// What the kernel announced on the rtnetlink multicast groups the daemon
/// listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// RTM_NEWLINK / RTM_DELLINK: an interface changed (up, down, carrier).
    Link,
    /// RTM_NEWADDR / RTM_DELADDR: an IPv4 address was added or removed.
    Address,
    /// The socket's buffer overflowed (ENOBUFS, which netlink-proto passes
    /// on as an overrun message): announcements were lost, look at both.
    Lost,
}

/// Link and IPv4 address changes as the kernel announces them (the
/// RTMGRP_LINK and RTMGRP_IPV4_IFADDR groups, what `ip monitor link address`
/// shows): the daemon reacts to a link going down or a VIP removed by hand
/// when it happens, as keepalived does, instead of polling for it.
pub struct Changes {
    rx: futures::channel::mpsc::UnboundedReceiver<(
        netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
        netlink_sys::SocketAddr,
    )>,
}

impl Changes {
    /// The next change; `None` when the socket is gone.
    pub async fn next(&mut self) -> Option<Change> {
        use futures::StreamExt;
        use netlink_packet_core::NetlinkPayload;
        use netlink_packet_route::RouteNetlinkMessage as M;
        loop {
            let (msg, _) = self.rx.next().await?;
            match msg.payload {
                NetlinkPayload::InnerMessage(M::NewLink(_) | M::DelLink(_)) => {
                    return Some(Change::Link);
                }
                NetlinkPayload::InnerMessage(M::NewAddress(_) | M::DelAddress(_)) => {
                    return Some(Change::Address);
                }
                // ENOBUFS: announcements were lost; an error message: something
                // went wrong on the socket. Either way, look at everything.
                NetlinkPayload::Overrun(_) | NetlinkPayload::Error(_) => {
                    return Some(Change::Lost);
                }
                _ => {}
            }
        }
    }
}

impl Addrs {
    /// The request handle, and the change announcements on the same socket.
    pub fn connect() -> Result<(Addrs, Changes), AddrError> {
        let (mut conn, handle, rx) = rtnetlink::new_connection()?;
        let groups = rtnetlink::constants::RTMGRP_LINK | rtnetlink::constants::RTMGRP_IPV4_IFADDR;
        {
            use netlink_sys::AsyncSocket;
            conn.socket_mut()
                .socket_mut()
                .bind(&netlink_sys::SocketAddr::new(0, groups))?;
        }
        tokio::spawn(conn);
        Ok((Addrs { handle }, Changes { rx }))
    }

    /// Every IPv4 address of the host.
    pub async fn dump(&self) -> Result<Vec<HostAddr>, AddrError> {
        let mut s = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await? {
            if m.header.family != AddressFamily::Inet {
                continue;
            }
            let mut addr = None;
            let mut local = None;
            let mut label = None;
            for a in &m.attributes {
                match a {
                    AddressAttribute::Address(IpAddr::V4(v)) => addr = Some(*v),
                    AddressAttribute::Local(IpAddr::V4(v)) => local = Some(*v),
                    AddressAttribute::Label(l) => label = Some(l.clone()),
                    _ => {}
                }
            }
            if let Some(a) = local.or(addr)
                && let Ok(net) = Ipv4Net::new(a, m.header.prefix_len)
            {
                out.push(HostAddr {
                    index: m.header.index,
                    net,
                    label,
                });
            }
        }
        Ok(out)
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Link, AddrError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(link_of(&m)),
            Ok(None) => Err(AddrError::NoSuchInterface(name.into())),
            Err(rtnetlink::Error::NetlinkError(_)) => Err(AddrError::NoSuchInterface(name.into())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Link, AddrError> {
        let mut s = self.handle.link().get().match_index(index).execute();
        match s.try_next().await? {
            Some(m) => Ok(link_of(&m)),
            None => Err(AddrError::NoSuchInterface(format!("#{index}"))),
        }
    }

    /// `interface` if given, else the interface whose subnet holds `target`.
    pub async fn resolve(
        &self,
        interface: Option<&str>,
        target: Ipv4Addr,
        vrid: u8,
    ) -> Result<Link, AddrError> {
        match interface {
            Some(name) => self.link_by_name(name).await,
            None => {
                let addrs = self.dump().await?;
                let idx =
                    interface_for(&addrs, target, vrid).ok_or(AddrError::NoInterfaceFor(target))?;
                self.link_by_index(idx).await
            }
        }
    }

    /// Add `net` on `link` with our label. Already there → Ok(false).
    pub async fn add(&self, link: &Link, net: Ipv4Net, vrid: u8) -> Result<bool, AddrError> {
        let mut req =
            self.handle
                .address()
                .add(link.index, IpAddr::V4(net.addr()), net.prefix_len());
        req.message_mut()
            .attributes
            .push(AddressAttribute::Label(label(&link.name, vrid)));
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.code.map(|c| -c.get()) == Some(libc::EEXIST) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Remove `net` from interface `index`. Not there → Ok(false).
    pub async fn remove(&self, index: u32, net: Ipv4Net) -> Result<bool, AddrError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = net.prefix_len();
        msg.header.index = index;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(net.addr())));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(net.addr())));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(
                    e.code.map(|c| -c.get()),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV) | Some(libc::ESRCH)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn link_of(m: &netlink_packet_route::link::LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut x = [0u8; 6];
                x.copy_from_slice(b);
                mac = Some(x);
            }
            _ => {}
        }
    }
    use netlink_packet_route::link::LinkFlags;
    Link {
        index: m.header.index,
        name,
        mac,
        up: m.header.flags.contains(LinkFlags::Up) && m.header.flags.contains(LinkFlags::Running),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What netlink-proto hands on from the announcement socket → the change
    /// the daemon acts on; a buffer overrun (announcements lost) asks for a
    /// look at everything, not nothing.
    #[tokio::test]
    async fn announcements_and_overruns_become_changes() {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::RouteNetlinkMessage as M;
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut changes = Changes { rx };
        let msg = |p: NetlinkPayload<M>| {
            (
                NetlinkMessage::new(NetlinkHeader::default(), p),
                netlink_sys::SocketAddr::new(0, 0),
            )
        };
        for p in [
            NetlinkPayload::Noop,
            NetlinkPayload::InnerMessage(M::NewLink(Default::default())),
            NetlinkPayload::Noop,
            NetlinkPayload::InnerMessage(M::DelAddress(Default::default())),
            NetlinkPayload::Overrun(Vec::new()),
        ] {
            tx.unbounded_send(msg(p)).expect("send");
        }
        drop(tx);
        let mut got: Vec<Option<Change>> = Vec::new();
        for _ in 0..4 {
            got.push(changes.next().await);
        }
        assert_eq!(
            got,
            [
                Some(Change::Link),
                Some(Change::Address),
                Some(Change::Lost),
                None
            ]
        );
    }

    fn a(index: u32, net: &str, label: Option<&str>) -> HostAddr {
        HostAddr {
            index,
            net: net.parse().expect("net"),
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn interface_holding_the_vip_subnet() {
        let vip = Ipv4Addr::new(192, 0, 2, 100);
        let addrs = vec![
            a(1, "127.0.0.1/8", Some("lo")),
            a(2, "10.0.0.5/8", Some("eth1")),
            a(3, "192.0.2.1/24", Some("eth0")),
            // Our own VIP must not make itself its interface.
            a(4, "192.0.2.100/32", Some("eth9:lvs51")),
        ];
        assert_eq!(interface_for(&addrs, vip, 51), Some(3));
        assert_eq!(
            interface_for(&addrs, Ipv4Addr::new(198, 51, 100, 1), 51),
            None
        );
        // The most specific subnet wins.
        let mut more = addrs.clone();
        more.push(a(5, "192.0.2.64/26", Some("eth2")));
        assert_eq!(interface_for(&more, vip, 51), Some(5));
    }
}
