//! The VRRP wire: the socket's reader task, adverts out, gratuitous ARP.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::director::addr::Link;
use crate::director::net::{self, VrrpSocket};
use crate::vrrp::machine;
use crate::vrrp::packet::{self, Advert, VRRP_MULTICAST_V4};

use super::{Driver, Event};

/// The VRRP socket's reader task.
pub(super) async fn receive(sock: Arc<VrrpSocket>, tx: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let ev = match sock.recv(&mut buf).await {
            Ok(n) => Event::Packet(packet::decode_ipv4_any_ttl(buf.get(..n).unwrap_or(&[]))),
            Err(e) => Event::RecvError(e),
        };
        let was_err = matches!(ev, Event::RecvError(_));
        if tx.send(ev).await.is_err() {
            return;
        }
        if was_err {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Driver {
    pub(super) fn send_advert(&mut self, priority: u8) {
        let cfg = self.core.config();
        let v = &cfg.vrrp;
        let addresses = cfg.advert_addresses();
        let adv = Advert {
            vrid: v.vrid,
            priority,
            max_adver_int: machine::duration_to_centis(v.advert_interval),
            addresses,
        };
        let dsts: Vec<Ipv4Addr> = if v.unicast {
            v.peers.clone()
        } else {
            vec![VRRP_MULTICAST_V4]
        };
        let src = v.address;
        for dst in dsts {
            self.ip_id = self.ip_id.wrapping_add(1);
            let pkt = packet::encode_ipv4(&adv, src, dst, self.ip_id);
            match self.sock.send(&pkt, dst) {
                Ok(()) => self.counters.adverts_sent += 1,
                Err(e) => {
                    self.counters.send_errors += 1;
                    if self.counters.send_errors == 1 || self.counters.send_errors % 100 == 0 {
                        warn!(to = %dst, count = self.counters.send_errors, "sending VRRP advert: {e}");
                    }
                }
            }
        }
    }

    pub(super) fn send_garp(&mut self, count: u32) {
        let held: Vec<(Link, Ipv4Addr)> = self
            .core
            .held()
            .iter()
            .filter_map(|f| Some((self.link_for(f)?.clone(), f.net.addr())))
            .collect();
        for (link, addr) in held {
            let Some(mac) = link.mac else {
                continue;
            };
            let frames: Vec<[u8; 60]> = (0..count.max(1))
                .map(|_| net::garp_frame(mac, addr))
                .collect();
            match net::send_frames(link.index, &frames) {
                Ok(n) => {
                    self.counters.gratuitous_arps_sent += n as u64;
                    debug!(address = %addr, interface = %link.name, count = n, "gratuitous ARP sent");
                }
                Err(e) => {
                    warn!(address = %addr, interface = %link.name, "gratuitous ARP: {e}")
                }
            }
        }
    }
}
