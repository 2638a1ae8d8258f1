//! VRRPv3 codec: bytes ↔ struct both ways, checksums against an independent
//! computation and against a real keepalived, every rejection path, and a
//! mutation loop that must never panic.

use std::net::Ipv4Addr;

use lvsup::vrrp::packet::{
    Advert, IPPROTO_VRRP, Ipv4Header, PacketError, VRRP_MULTICAST_V4, check_ttl, decode_ipv4,
    decode_ipv4_any_ttl, encode_ipv4, vrrp_checksum,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("fixture address")
}

/// The checksum computed a second way, straight from RFC 5798 §5.2.8 and
/// RFC 768: build the pseudo-header as bytes, append the message with a zero
/// checksum field, sum 16-bit words in a u64, fold, complement.
fn independent_checksum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.push(0);
    data.push(112);
    data.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    let mut m = msg.to_vec();
    m[6] = 0;
    m[7] = 0;
    data.extend_from_slice(&m);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u64 = data
        .chunks(2)
        .map(|w| (u64::from(w[0]) << 8) | u64::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum holo-vrrp computes: the message alone, no pseudo-header.
/// Wrong for VRRPv3; peers using it must be rejected.
fn checksum_without_pseudo_header(msg: &[u8]) -> u16 {
    let mut m = msg.to_vec();
    m[6] = 0;
    m[7] = 0;
    let mut sum: u64 = m
        .chunks(2)
        .map(|w| (u64::from(w[0]) << 8) | u64::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Fixture {
    name: &'static str,
    src: &'static str,
    dst: &'static str,
    bytes: &'static str,
    advert: fn() -> Advert,
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        // Captured from keepalived 2.2.7 (fixtures/vrrp/keepalived-v3-prio100-1s-2addr.pcap).
        name: "keepalived prio 100, 1 s, 2 addresses",
        src: "10.77.0.1",
        dst: "224.0.0.18",
        bytes: concat!(
            "31",       // version 3 | type 1 (advertisement)
            "33",       // VRID 51
            "64",       // priority 100
            "02",       // count IPv4 addrs 2
            "0064",     // rsvd 0 | max adver int 100 cs
            "6a22",     // checksum, as keepalived computed it
            "0a4d0064", // 10.77.0.100
            "0a4d0065", // 10.77.0.101
        ),
        advert: || Advert {
            vrid: 51,
            priority: 100,
            max_adver_int: 100,
            addresses: vec![ip("10.77.0.100"), ip("10.77.0.101")],
        },
    },
    Fixture {
        // Captured: keepalived's priority-0 advert on SIGTERM.
        name: "keepalived prio 0 (leaving)",
        src: "10.77.0.1",
        dst: "224.0.0.18",
        bytes: concat!(
            "31",       // version 3 | type 1
            "33",       // VRID 51
            "00",       // priority 0: master leaving
            "02",       // 2 addresses
            "0064",     // 100 cs
            "ce22",     // checksum (keepalived)
            "0a4d0064", // 10.77.0.100
            "0a4d0065", // 10.77.0.101
        ),
        advert: || Advert {
            vrid: 51,
            priority: 0,
            max_adver_int: 100,
            addresses: vec![ip("10.77.0.100"), ip("10.77.0.101")],
        },
    },
    Fixture {
        // Captured: keepalived as the address owner at 100 ms (keepalived-v3-owner-100ms.pcap).
        name: "keepalived owner 255, 10 cs, 1 address",
        src: "10.77.0.1",
        dst: "224.0.0.18",
        bytes: concat!(
            "31",       // version 3 | type 1
            "33",       // VRID 51
            "ff",       // priority 255: address owner
            "01",       // 1 address
            "000a",     // 10 cs
            "da32",     // checksum (keepalived)
            "0a4d0064", // 10.77.0.100
        ),
        advert: || Advert {
            vrid: 51,
            priority: 255,
            max_adver_int: 10,
            addresses: vec![ip("10.77.0.100")],
        },
    },
    Fixture {
        // Hand-built; checksum from a separate Python computation.
        name: "max interval 4095 cs",
        src: "192.168.0.11",
        dst: "224.0.0.18",
        bytes: concat!(
            "31",       // version 3 | type 1
            "07",       // VRID 7
            "64",       // priority 100
            "01",       // 1 address
            "0fff",     // rsvd 0 | 4095 cs, all 12 bits set
            "f8a8",     // checksum
            "c0a80064", // 192.168.0.100
        ),
        advert: || Advert {
            vrid: 7,
            priority: 100,
            max_adver_int: 4095,
            addresses: vec![ip("192.168.0.100")],
        },
    },
    Fixture {
        // Hand-built, unicast to a peer, four addresses.
        name: "unicast, priority 1, 4 addresses",
        src: "192.0.2.2",
        dst: "192.0.2.3",
        bytes: concat!(
            "31",       // version 3 | type 1
            "c8",       // VRID 200
            "01",       // priority 1
            "04",       // 4 addresses
            "0064",     // 100 cs
            "d7e2",     // checksum (pseudo-header dst is the peer, not 224.0.0.18)
            "c000020a", // 192.0.2.10
            "c000020b", // 192.0.2.11
            "c000020c", // 192.0.2.12
            "c6336407", // 198.51.100.7
        ),
        advert: || Advert {
            vrid: 200,
            priority: 1,
            max_adver_int: 100,
            addresses: vec![
                ip("192.0.2.10"),
                ip("192.0.2.11"),
                ip("192.0.2.12"),
                ip("198.51.100.7"),
            ],
        },
    },
    Fixture {
        name: "priority 254, 1 cs",
        src: "10.0.0.2",
        dst: "224.0.0.18",
        bytes: concat!(
            "31",       // version 3 | type 1
            "01",       // VRID 1
            "fe",       // priority 254
            "01",       // 1 address
            "0001",     // 1 cs, the minimum
            "dc69",     // checksum
            "0a000001", // 10.0.0.1
        ),
        advert: || Advert {
            vrid: 1,
            priority: 254,
            max_adver_int: 1,
            addresses: vec![ip("10.0.0.1")],
        },
    },
];

#[test]
fn fixtures_decode_to_the_struct() {
    for f in FIXTURES {
        let got = Advert::decode(ip(f.src), ip(f.dst), &hex(f.bytes));
        assert_eq!(got, Ok((f.advert)()), "{}", f.name);
    }
}

#[test]
fn fixtures_encode_to_the_bytes() {
    for f in FIXTURES {
        let advert = (f.advert)();
        let bytes = advert.encode(ip(f.src), ip(f.dst));
        assert_eq!(bytes, hex(f.bytes), "{}", f.name);
        assert_eq!(bytes.len(), advert.len(), "{}", f.name);
    }
}

#[test]
fn checksum_matches_an_independent_computation() {
    for f in FIXTURES {
        let bytes = hex(f.bytes);
        let want = u16::from_be_bytes([bytes[6], bytes[7]]);
        assert_eq!(
            independent_checksum(ip(f.src), ip(f.dst), &bytes),
            want,
            "{}",
            f.name
        );
        // Over a filled-in message the library's function sums to zero.
        assert_eq!(vrrp_checksum(ip(f.src), ip(f.dst), &bytes), 0, "{}", f.name);
    }
}

#[test]
fn round_trip_struct_bytes_struct() {
    let src = ip("203.0.113.5");
    for priority in [0u8, 1, 100, 254, 255] {
        for interval in [1u16, 10, 100, 4095] {
            for n in [0usize, 1, 2, 7, 255] {
                let advert = Advert {
                    vrid: priority.wrapping_add(3),
                    priority,
                    max_adver_int: interval,
                    addresses: (0..n)
                        .map(|i| Ipv4Addr::from(0x0a00_0000u32 + i as u32))
                        .collect(),
                };
                let bytes = advert.encode(src, VRRP_MULTICAST_V4);
                assert_eq!(
                    independent_checksum(src, VRRP_MULTICAST_V4, &bytes),
                    u16::from_be_bytes([bytes[6], bytes[7]])
                );
                assert_eq!(Advert::decode(src, VRRP_MULTICAST_V4, &bytes), Ok(advert));
            }
        }
    }
}

#[test]
fn encode_saturates_interval_to_12_bits() {
    let advert = Advert {
        vrid: 1,
        priority: 100,
        max_adver_int: 5000,
        addresses: vec![ip("10.0.0.1")],
    };
    let bytes = advert.encode(ip("10.0.0.2"), VRRP_MULTICAST_V4);
    assert_eq!(&bytes[4..6], &[0x0f, 0xff]);
}

/// Re-fill the checksum after editing a fixture, so only the intended field is wrong.
fn refill(src: Ipv4Addr, dst: Ipv4Addr, mut bytes: Vec<u8>) -> Vec<u8> {
    let sum = independent_checksum(src, dst, &bytes);
    bytes[6..8].copy_from_slice(&sum.to_be_bytes());
    bytes
}

const SRC: &str = "10.77.0.1";
const GOOD: &str = "31 33 64 02 0064 6a22 0a4d0064 0a4d0065";

fn decode_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Advert, PacketError> {
    let mut b = hex(GOOD);
    edit(&mut b);
    let b = refill(ip(SRC), VRRP_MULTICAST_V4, b);
    Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b)
}

#[test]
fn rejects_vrrpv2_with_its_own_error() {
    assert_eq!(decode_edited(|b| b[0] = 0x21), Err(PacketError::Vrrpv2));
    let msg = PacketError::Vrrpv2.to_string();
    assert!(msg.contains("vrrp_version 3"), "{msg}");
}

#[test]
fn rejects_other_versions() {
    assert_eq!(decode_edited(|b| b[0] = 0x41), Err(PacketError::Version(4)));
    assert_eq!(decode_edited(|b| b[0] = 0x01), Err(PacketError::Version(0)));
}

#[test]
fn rejects_other_types() {
    assert_eq!(decode_edited(|b| b[0] = 0x32), Err(PacketError::Type(2)));
    assert_eq!(decode_edited(|b| b[0] = 0x30), Err(PacketError::Type(0)));
}

#[test]
fn rejects_length_not_matching_address_count() {
    // Count says 3, two addresses present.
    assert_eq!(
        decode_edited(|b| b[3] = 3),
        Err(PacketError::Length {
            len: 16,
            count: 3,
            want: 20
        })
    );
    // Count says 1, two present.
    assert_eq!(
        decode_edited(|b| b[3] = 1),
        Err(PacketError::Length {
            len: 16,
            count: 1,
            want: 12
        })
    );
    // A trailing byte.
    assert_eq!(
        decode_edited(|b| b.push(0)),
        Err(PacketError::Length {
            len: 17,
            count: 2,
            want: 16
        })
    );
}

#[test]
fn rejects_short_messages() {
    for n in 0..8 {
        let b = &hex(GOOD)[..n];
        assert_eq!(
            Advert::decode(ip(SRC), VRRP_MULTICAST_V4, b),
            Err(PacketError::TooShort(n))
        );
    }
}

#[test]
fn rejects_bad_checksum() {
    let mut b = hex(GOOD);
    b[15] ^= 0x01; // last address byte, checksum left as it was
    assert_eq!(
        Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b),
        Err(PacketError::Checksum {
            found: 0x6a22,
            computed: independent_checksum(ip(SRC), VRRP_MULTICAST_V4, &b),
        })
    );
}

#[test]
fn checksum_covers_the_pseudo_header() {
    let b = hex(GOOD);
    // Same bytes, claimed from another source or to another destination.
    assert!(matches!(
        Advert::decode(ip("10.77.0.2"), VRRP_MULTICAST_V4, &b),
        Err(PacketError::Checksum { .. })
    ));
    assert!(matches!(
        Advert::decode(ip(SRC), ip("10.77.0.2"), &b),
        Err(PacketError::Checksum { .. })
    ));
}

#[test]
fn holo_style_checksum_without_pseudo_header_is_rejected() {
    let mut b = hex(GOOD);
    let wrong = checksum_without_pseudo_header(&b);
    assert_ne!(wrong, 0x6a22);
    b[6..8].copy_from_slice(&wrong.to_be_bytes());
    assert!(matches!(
        Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b),
        Err(PacketError::Checksum { .. })
    ));
}

#[test]
fn rejects_zero_interval() {
    assert_eq!(
        decode_edited(|b| {
            b[4] = 0;
            b[5] = 0
        }),
        Err(PacketError::ZeroInterval)
    );
}

#[test]
fn reserved_bits_are_ignored() {
    // RFC 5798 §5.2.6: rsvd MUST be ignored on receipt.
    let got = decode_edited(|b| b[4] |= 0xf0).map(|a| a.max_adver_int);
    assert_eq!(got, Ok(100));
}

#[test]
fn zero_addresses_is_accepted() {
    let b = refill(ip(SRC), VRRP_MULTICAST_V4, hex("31 33 64 00 0064 0000"));
    let a = Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b).map(|a| a.addresses.len());
    assert_eq!(a, Ok(0));
}

// ---------------------------------------------------------------- IPv4 layer

/// keepalived's first advert as it came off the wire (IPv4 header + VRRP).
const KEEPALIVED_IP: &str = "45c0 0024 0001 0000 ff70 d048 0a4d 0001 e000 0012 \
                             3133 6402 0064 6a22 0a4d 0064 0a4d 0065";
// 45: v4, IHL 5 | c0: TOS network control | 0024: total 36 | 0001: id 1
// 0000: no flags/fragment | ff: TTL 255 | 70: proto 112 | d048: header checksum
// 0a4d0001: src 10.77.0.1 | e0000012: dst 224.0.0.18 | then the VRRP message

#[test]
fn ipv4_decode_of_a_keepalived_packet() {
    let (h, advert) = decode_ipv4(&hex(KEEPALIVED_IP)).expect("valid");
    assert_eq!(h.src, ip("10.77.0.1"));
    assert_eq!(h.dst, VRRP_MULTICAST_V4);
    assert_eq!(h.ttl, 255);
    assert_eq!(h.protocol, IPPROTO_VRRP);
    assert_eq!(h.id, 1);
    assert_eq!(advert, (FIXTURES[0].advert)());
}

#[test]
fn ipv4_encode_matches_keepalived_byte_for_byte() {
    let bytes = encode_ipv4(
        &(FIXTURES[0].advert)(),
        ip("10.77.0.1"),
        VRRP_MULTICAST_V4,
        1,
    );
    assert_eq!(bytes, hex(KEEPALIVED_IP));
}

/// Edit the IPv4 header of the keepalived packet, re-fill its checksum.
fn ipv4_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = hex(KEEPALIVED_IP);
    edit(&mut b);
    b[10] = 0;
    b[11] = 0;
    let mut sum: u32 = b[..20]
        .chunks(2)
        .map(|w| (u32::from(w[0]) << 8) | u32::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    b[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    b
}

#[test]
fn ttl_not_255_is_its_own_error() {
    for ttl in [0u8, 1, 64, 254] {
        let b = ipv4_edited(|b| b[8] = ttl);
        assert_eq!(decode_ipv4(&b), Err(PacketError::Ttl(ttl)));
    }
}

#[test]
fn ipv4_rejections() {
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[9] = 17)),
        Err(PacketError::NotVrrp(17))
    );
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[6] = 0x20)), // more fragments
        Err(PacketError::Fragment)
    );
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[7] = 0x01)), // offset 8
        Err(PacketError::Fragment)
    );
    // DF alone is fine.
    assert!(decode_ipv4(&ipv4_edited(|b| b[6] = 0x40)).is_ok());
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[0] = 0x65)),
        Err(PacketError::Ipv4Version(6))
    );
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[0] = 0x44)),
        Err(PacketError::Ipv4HeaderLength(16))
    );
    assert_eq!(
        decode_ipv4(&ipv4_edited(|b| b[3] = 0x30)),
        Err(PacketError::Ipv4TotalLength { total: 48, got: 36 })
    );
    let mut b = hex(KEEPALIVED_IP);
    b[11] ^= 0xff;
    assert_eq!(decode_ipv4(&b), Err(PacketError::Ipv4Checksum));
    assert_eq!(decode_ipv4(&b[..19]), Err(PacketError::Ipv4TooShort(19)));
    // The VRRP layer's errors come through.
    let mut b = hex(KEEPALIVED_IP);
    b[35] ^= 1;
    assert!(matches!(decode_ipv4(&b), Err(PacketError::Checksum { .. })));
}

#[test]
fn ipv4_total_length_shorter_than_buffer_trims_padding() {
    // Ethernet minimum-frame padding after the IP packet is not VRRP.
    let mut b = hex(KEEPALIVED_IP);
    b.extend_from_slice(&[0; 10]);
    let (_, advert) = decode_ipv4(&b).expect("padding ignored");
    assert_eq!(advert.addresses.len(), 2);
}

#[test]
fn ipv4_header_round_trip() {
    let h = Ipv4Header::vrrp(ip("192.0.2.1"), VRRP_MULTICAST_V4, 0xbeef);
    let bytes = h.encode(&[1, 2, 3, 4]);
    let (back, payload) = Ipv4Header::decode(&bytes).expect("valid");
    assert_eq!(back, h);
    assert_eq!(payload, &[1, 2, 3, 4]);
}

// ---------------------------------------------------------- real keepalived

/// Classic pcap, Ethernet link type: each frame's bytes after the 14-byte
/// Ethernet header.
fn pcap_ip_packets(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("fixture pcap");
    let le = match &data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        m => panic!("not a pcap: {m:?}"),
    };
    let u32_at = |i: usize| {
        let b = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= data.len() {
        let incl = u32_at(i + 8) as usize;
        let frame = &data[i + 16..i + 16 + incl];
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
        out.push(frame[14..].to_vec());
        i += 16 + incl;
    }
    out
}

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vrrp/");

#[test]
fn decodes_a_real_keepalived_v3_capture() {
    let packets = pcap_ip_packets(&format!("{FIX}keepalived-v3-prio100-1s-2addr.pcap"));
    assert_eq!(packets.len(), 6);
    let adverts: Vec<(Ipv4Header, Advert)> = packets
        .iter()
        .map(|p| decode_ipv4(p).expect("keepalived's adverts are valid"))
        .collect();
    for (h, a) in &adverts {
        assert_eq!(h.src, ip("10.77.0.1"));
        assert_eq!(h.dst, VRRP_MULTICAST_V4);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.max_adver_int, 100);
        assert_eq!(a.addresses, vec![ip("10.77.0.100"), ip("10.77.0.101")]);
    }
    let priorities: Vec<u8> = adverts.iter().map(|(_, a)| a.priority).collect();
    // Five adverts as master, then priority 0 on SIGTERM (RFC 5798 §6.4.3).
    assert_eq!(priorities, [100, 100, 100, 100, 100, 0]);
    // Our encoder reproduces each packet exactly, IP header included.
    for (p, (h, a)) in packets.iter().zip(&adverts) {
        assert_eq!(&encode_ipv4(a, h.src, h.dst, h.id), p);
    }
}

#[test]
fn decodes_a_real_keepalived_owner_capture() {
    let packets = pcap_ip_packets(&format!("{FIX}keepalived-v3-owner-100ms.pcap"));
    assert!(packets.len() > 10);
    for p in &packets {
        let (_, a) = decode_ipv4(p).expect("valid");
        assert_eq!(
            a,
            Advert {
                vrid: 51,
                priority: 255,
                max_adver_int: 10,
                addresses: vec![ip("10.77.0.100")],
            }
        );
    }
}

#[test]
fn real_keepalived_v2_advert_is_reported_as_v2() {
    let packets = pcap_ip_packets(&format!("{FIX}keepalived-v2-prio100.pcap"));
    assert!(!packets.is_empty());
    for p in &packets {
        assert_eq!(decode_ipv4(p), Err(PacketError::Vrrpv2));
    }
}

// ------------------------------------------------------------- no panics

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_packets_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let seeds: Vec<Vec<u8>> = std::iter::once(hex(KEEPALIVED_IP))
        .chain(FIXTURES.iter().map(|f| hex(f.bytes)))
        .collect();
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut b = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                1 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                2 => b.truncate(rng.below(b.len() + 1)),
                3 => b.extend((0..rng.below(12)).map(|_| rng.next() as u8)),
                _ if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b.remove(i);
                }
                _ => {}
            }
        }
        accepted += usize::from(decode_ipv4(&b).is_ok());
        accepted += usize::from(Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b).is_ok());
        let _ = Ipv4Header::decode(&b);
    }
    // Most mutations break the checksum; this only shows the loop ran.
    assert!(accepted < 20_000);
    // Pure noise of every length up to 64 bytes.
    for len in 0..64 {
        for _ in 0..50 {
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = decode_ipv4(&b);
            let _ = Advert::decode(ip(SRC), VRRP_MULTICAST_V4, &b);
        }
    }
}

#[test]
fn real_keepalived_unicast_exchange_with_lvsup_adverts() {
    // keepalived's unicast adverts (pseudo-header dst = the peer, not the
    // group) and adverts our encoder produced, which keepalived accepted.
    let packets = pcap_ip_packets(&format!("{FIX}keepalived-v3-unicast-vs-lvsup.pcap"));
    let decoded: Vec<(Ipv4Header, Advert)> = packets
        .iter()
        .map(|p| decode_ipv4(p).expect("valid"))
        .collect();
    let ka = ip("10.77.0.1");
    let lvsup = ip("10.77.0.2");
    let summary: Vec<(Ipv4Addr, Ipv4Addr, u8)> = decoded
        .iter()
        .map(|(h, a)| (h.src, h.dst, a.priority))
        .collect();
    let mut want = vec![(ka, lvsup, 100); 3];
    want.extend(vec![(lvsup, ka, 200); 5]);
    want.extend(vec![(ka, lvsup, 100); 4]);
    want.push((ka, lvsup, 0));
    assert_eq!(summary, want);
    for (h, a) in &decoded {
        assert_eq!(a.vrid, 51);
        assert_eq!(a.addresses, vec![ip("10.77.0.100")]);
        // Re-encoding reproduces every packet, keepalived's and ours.
        let again = encode_ipv4(a, h.src, h.dst, h.id);
        assert!(packets.contains(&again));
    }
}

/// `bytes` (an IPv4 packet) with another TTL, header checksum re-filled.
fn with_ttl(mut b: Vec<u8>, ttl: u8) -> Vec<u8> {
    b[8] = ttl;
    b[10] = 0;
    b[11] = 0;
    let mut sum: u32 = b[..20]
        .chunks(2)
        .map(|w| (u32::from(w[0]) << 8) | u32::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    b[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    b
}

/// Issue 14 item 9: unicast peers behind a router arrive with TTL < 255;
/// the TTL rule is relaxed for them only (as keepalived), multicast keeps
/// RFC 5798 §5.1.1.3's TTL 255.
#[test]
fn ttl_relaxed_for_unicast_peers_only() {
    let advert = (FIXTURES[0].advert)();
    let (me, peer, stranger) = (ip("10.77.0.1"), ip("10.88.0.2"), ip("10.88.0.9"));
    let peers = [peer];
    // A unicast advert from the peer, two routers away.
    let routed = with_ttl(encode_ipv4(&advert, peer, me, 7), 253);
    assert_eq!(decode_ipv4(&routed).map(|_| ()), Err(PacketError::Ttl(253)));
    let (h, a) = decode_ipv4_any_ttl(&routed).expect("valid apart from the TTL");
    assert_eq!((h.ttl, h.src, h.dst), (253, peer, me));
    assert_eq!(a, advert);
    assert_eq!(check_ttl(&h, &peers), Ok(()));
    // Multicast mode (no unicast peers): TTL 255 or nothing.
    assert_eq!(check_ttl(&h, &[]), Err(PacketError::Ttl(253)));
    // Not a peer: TTL 255 required.
    let other = with_ttl(encode_ipv4(&advert, stranger, me, 7), 253);
    let (h, _) = decode_ipv4_any_ttl(&other).expect("decodes");
    assert_eq!(check_ttl(&h, &peers), Err(PacketError::Ttl(253)));
    // A peer's advert to the multicast group: the multicast rule.
    let group = with_ttl(encode_ipv4(&advert, peer, VRRP_MULTICAST_V4, 7), 254);
    let (h, _) = decode_ipv4_any_ttl(&group).expect("decodes");
    assert_eq!(check_ttl(&h, &peers), Err(PacketError::Ttl(254)));
    // TTL 255 passes everywhere.
    let direct = encode_ipv4(&advert, stranger, me, 7);
    let (h, _) = decode_ipv4_any_ttl(&direct).expect("decodes");
    assert_eq!(check_ttl(&h, &[]), Ok(()));
    // Everything else is still checked without the TTL.
    let mut broken = routed.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert!(matches!(
        decode_ipv4_any_ttl(&broken),
        Err(PacketError::Checksum { .. })
    ));
}

/// The status's `bad_packets` keys (moved from the daemon's report): short,
/// one per reason, every IPv4 header problem under one key.
#[test]
fn packet_errors_have_short_keys() {
    assert_eq!(PacketError::Ttl(64).key(), "ttl");
    assert_eq!(PacketError::Vrrpv2.key(), "vrrpv2");
    let checksum = PacketError::Checksum {
        found: 1,
        computed: 2,
    };
    assert_eq!(checksum.key(), "checksum");
    assert_eq!(PacketError::Ipv4Checksum.key(), "ipv4_header");
    assert_eq!(PacketError::Ipv4TooShort(3).key(), "ipv4_header");
}
