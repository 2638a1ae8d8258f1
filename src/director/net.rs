//! The daemon's raw sockets: VRRP (IP protocol 112) and gratuitous ARP
//! (AF_PACKET). Frame/packet building is pure ([`garp_frame`], the codec in
//! [`crate::vrrp::packet`]); the sockets are thin.
//!
//! VRRP socket (RFC 5798 §5.1.1, §7.1; what keepalived does too):
//! - `SOCK_RAW` proto 112 with `IP_HDRINCL`: we write the IPv4 header
//!   ourselves (TTL 255, TOS 0xc0, source = our configured address), so the
//!   source is right even when the VIP is on the same interface;
//! - `SO_BINDTODEVICE` to the VRRP interface; `IP_MULTICAST_ALL` off (only
//!   groups joined on this socket); multicast loop off (the machine also
//!   ignores adverts from our own address); 224.0.0.18 joined on the interface;
//! - received packets come with their IPv4 header, validated by the codec
//!   (TTL 255, checksum with pseudo-header, version, length).

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::vrrp::packet::{IPPROTO_VRRP, VRRP_MULTICAST_V4};

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
}

impl VrrpSocket {
    pub fn open(ifname: &str, ifindex: u32) -> io::Result<VrrpSocket> {
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.set_header_included_v4(true)?;
        s.set_multicast_all_v4(false)?;
        s.set_multicast_loop_v4(false)?;
        s.set_multicast_ttl_v4(255)?;
        s.set_ttl_v4(255)?;
        s.join_multicast_v4_n(&VRRP_MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        s.set_recv_buffer_size(256 * 1024)?;
        s.set_nonblocking(true)?;
        // SAFETY: `s` owns its fd, which stays open and the same for the
        // AsyncFd's whole life (socket2's Socket never swaps its descriptor).
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| e.into_parts().1)?;
        Ok(VrrpSocket { fd })
    }

    /// Send one whole IPv4 packet (header included) to `dst`.
    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(packet, &to)?;
        Ok(())
    }

    /// Receive one packet (with its IPv4 header) into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|inner| {
                let mut s: &Socket = inner.get_ref();
                s.read(buf)
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Ethernet + ARP, gratuitous ARP request as `arping -U` and keepalived send
/// it: broadcast, sender = target = the address, sender MAC = ours. Padded to
/// the 60-byte Ethernet minimum.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ETH_P_ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // htype Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // ptype IPv4
    f[18] = 6; // hlen
    f[19] = 4; // plen
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // op request
    f[22..28].copy_from_slice(&mac); // sender MAC
    f[28..32].copy_from_slice(&ip.octets()); // sender IP
    f[32..38].copy_from_slice(&[0xff; 6]); // target MAC (as keepalived)
    f[38..42].copy_from_slice(&ip.octets()); // target IP = sender IP
    f
}

/// Send `frames` on interface `ifindex` through a short-lived AF_PACKET socket.
pub fn send_frames(ifindex: u32, frames: &[[u8; 60]]) -> io::Result<usize> {
    const ETH_P_ARP: u16 = 0x0806;
    let s = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )?;
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let mut sent = 0;
    for f in frames {
        // SAFETY: valid fd, buffer and sockaddr_ll of the given length.
        let r = unsafe {
            libc::sendto(
                s.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_layout() {
        let mac = [0x02, 0, 0, 0, 0, 0x42];
        let f = garp_frame(mac, Ipv4Addr::new(192, 0, 2, 100));
        let hex: String = f[..42].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ffffffffffff020000000042080600010800060400010200000000\
             42c0000264ffffffffffffc0000264"
        );
        assert!(f[42..].iter().all(|b| *b == 0));
    }
}
