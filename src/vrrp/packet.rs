//! VRRPv3 advertisements for IPv4 (RFC 5798 §5), and the IPv4 header around
//! them on a raw-socket path (RFC 5798 §5.1.1, §7.1).
//!
//! Pure: bytes in, structs out, and back. Nothing here panics on any input;
//! every malformed packet is a [`PacketError`] the daemon counts and logs.

use std::net::Ipv4Addr;

use thiserror::Error;

/// IP protocol number of VRRP (RFC 5798 §5.1.1.4).
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 multicast group adverts go to (RFC 5798 §5.1.1.2).
pub const VRRP_MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Adverts are sent with TTL 255 and receivers drop anything else (RFC 5798 §5.1.1.3).
pub const VRRP_TTL: u8 = 255;
/// The only version this codec speaks (RFC 5798 §5.2.1).
pub const VRRP_VERSION: u8 = 3;
/// Type 1 = ADVERTISEMENT, the only type defined (RFC 5798 §5.2.2).
pub const VRRP_TYPE_ADVERTISEMENT: u8 = 1;
/// Max Adver Int is a 12-bit count of centiseconds (RFC 5798 §5.2.7).
pub const MAX_ADVER_INT_CS: u16 = 0x0fff;
/// Fixed part of the VRRP message, before the addresses.
pub const VRRP_HEADER_LEN: usize = 8;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Why a received packet was not accepted. Each is a distinct, countable
/// reason; none is a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("VRRP message too short: {0} bytes, need at least 8")]
    TooShort(usize),
    #[error(
        "peer speaks VRRPv2 (RFC 3768), lvsup speaks VRRPv3: set `vrrp_version 3` (or `version 3` in the vrrp_instance) in keepalived"
    )]
    Vrrpv2,
    #[error("unsupported VRRP version {0}, only version 3 is spoken")]
    Version(u8),
    #[error("unknown VRRP message type {0}, only 1 (advertisement) is defined")]
    Type(u8),
    #[error("VRRP length {len} does not match the address count {count} (want {want})")]
    Length { len: usize, count: u8, want: usize },
    #[error("VRRP checksum mismatch: packet says {found:#06x}, computed {computed:#06x}")]
    Checksum { found: u16, computed: u16 },
    #[error("VRRP max advert interval is 0")]
    ZeroInterval,
    #[error("IPv4 packet too short: {0} bytes")]
    Ipv4TooShort(usize),
    #[error("not an IPv4 packet (version {0})")]
    Ipv4Version(u8),
    #[error("bad IPv4 header length {0} bytes")]
    Ipv4HeaderLength(usize),
    #[error("IPv4 total length {total} does not fit the {got} bytes received")]
    Ipv4TotalLength { total: usize, got: usize },
    #[error("IPv4 header checksum mismatch")]
    Ipv4Checksum,
    #[error("IPv4 fragment: VRRP adverts are never fragmented")]
    Fragment,
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    /// RFC 5798 §7.1: "MUST verify that the IP TTL is 255". A TTL below 255
    /// means the packet crossed a router: an attack or a misconfiguration.
    /// Relaxed for unicast peers only: see [`check_ttl`].
    #[error("IP TTL {0} is not 255: advert crossed a router, dropped (RFC 5798 §7.1)")]
    Ttl(u8),
}

impl PacketError {
    /// The reason's short name: the key of the daemon's `bad_packets`
    /// counters in its status (every IPv4 header problem is one key).
    pub fn key(&self) -> &'static str {
        match self {
            PacketError::TooShort(_) => "too_short",
            PacketError::Vrrpv2 => "vrrpv2",
            PacketError::Version(_) => "version",
            PacketError::Type(_) => "type",
            PacketError::Length { .. } => "length",
            PacketError::Checksum { .. } => "checksum",
            PacketError::ZeroInterval => "zero_interval",
            PacketError::Ipv4TooShort(_)
            | PacketError::Ipv4Version(_)
            | PacketError::Ipv4HeaderLength(_)
            | PacketError::Ipv4TotalLength { .. }
            | PacketError::Ipv4Checksum => "ipv4_header",
            PacketError::Fragment => "fragment",
            PacketError::NotVrrp(_) => "not_vrrp",
            PacketError::Ttl(_) => "ttl",
        }
    }
}

/// One VRRPv3 advertisement for IPv4.
///
/// RFC 5798 §5.1, the VRRP packet format (IPv4: 4-byte addresses):
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    IPv4 Fields or IPv6 Fields                 |
///   ...                                                             ...
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |(rsvd) |     Max Adver Int     |          Checksum             |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                                                               |
///    +                                                               +
///    |                       IPvX Address(es)                        |
///    +                                                               +
///    +                                                               +
///    +                                                               +
///    +                                                               +
///    |                                                               |
///    +                                                               +
///    |                                                               |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Version is 3 and Type is 1 (ADVERTISEMENT), so the first byte is `0x31`.
/// The checksum (§5.2.8) is the 16-bit one's complement of the one's
/// complement sum of the VRRP message **and the IPv4 pseudo-header** (source,
/// destination, zero, protocol 112, VRRP length), as for UDP (RFC 768).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual Router ID, 1..=255 (§5.2.3).
    pub vrid: u8,
    /// 0 = the master is leaving; 255 = the address owner (§5.2.4).
    pub priority: u8,
    /// Advertisement interval in centiseconds, 1..=4095 on the wire (§5.2.7).
    pub max_adver_int: u16,
    /// The virtual addresses (§5.2.9).
    pub addresses: Vec<Ipv4Addr>,
}

impl Advert {
    /// The length of the encoded VRRP message (no IP header).
    pub fn len(&self) -> usize {
        VRRP_HEADER_LEN + 4 * self.address_count() as usize
    }

    /// Never true: even with no addresses the fixed header is 8 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn address_count(&self) -> u8 {
        u8::try_from(self.addresses.len()).unwrap_or(u8::MAX)
    }

    /// The VRRP message, checksum computed over the IPv4 pseudo-header of
    /// `src` → `dst` (RFC 5798 §5.2.8). An interval above 4095 cs is sent as
    /// 4095 (the field is 12 bits); at most 255 addresses are sent (the count
    /// is 8 bits).
    pub fn encode(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let count = self.address_count();
        let mut out = Vec::with_capacity(self.len());
        out.push((VRRP_VERSION << 4) | VRRP_TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(count);
        // rsvd (4 bits, zero) | Max Adver Int (12 bits).
        let int = self.max_adver_int.min(MAX_ADVER_INT_CS);
        out.extend_from_slice(&int.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for a in self.addresses.iter().take(count as usize) {
            out.extend_from_slice(&a.octets());
        }
        let sum = vrrp_checksum(src, dst, &out);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// Parse and validate one VRRP message (the IP payload) received from
    /// `src` to `dst`: version 3, type 1, length against the address count,
    /// checksum with the pseudo-header, non-zero interval (RFC 5798 §7.1).
    ///
    /// The VRID and the TTL are the caller's to check (the TTL lives in the IP
    /// header: see [`decode_ipv4`]).
    pub fn decode(src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8]) -> Result<Advert, PacketError> {
        let [
            ver_type,
            vrid,
            priority,
            count,
            int_hi,
            int_lo,
            sum_hi,
            sum_lo,
            rest @ ..,
        ] = bytes
        else {
            return Err(PacketError::TooShort(bytes.len()));
        };
        match ver_type >> 4 {
            3 => {}
            2 => return Err(PacketError::Vrrpv2),
            v => return Err(PacketError::Version(v)),
        }
        let ty = ver_type & 0x0f;
        if ty != VRRP_TYPE_ADVERTISEMENT {
            return Err(PacketError::Type(ty));
        }
        let want = VRRP_HEADER_LEN + 4 * usize::from(*count);
        if bytes.len() != want {
            return Err(PacketError::Length {
                len: bytes.len(),
                count: *count,
                want,
            });
        }
        // Summing the whole message with its checksum in place gives zero.
        if vrrp_checksum(src, dst, bytes) != 0 {
            let mut zeroed = bytes.to_vec();
            zeroed[6] = 0;
            zeroed[7] = 0;
            return Err(PacketError::Checksum {
                found: u16::from_be_bytes([*sum_hi, *sum_lo]),
                computed: vrrp_checksum(src, dst, &zeroed),
            });
        }
        // The 4 reserved bits MUST be sent as zero and ignored on receipt (§5.2.6).
        let max_adver_int = u16::from_be_bytes([*int_hi, *int_lo]) & MAX_ADVER_INT_CS;
        if max_adver_int == 0 {
            return Err(PacketError::ZeroInterval);
        }
        let addresses = rest
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect();
        Ok(Advert {
            vrid: *vrid,
            priority: *priority,
            max_adver_int,
            addresses,
        })
    }
}

/// The checksum field value for `msg` (RFC 5798 §5.2.8): one's complement of
/// the one's complement sum of the IPv4 pseudo-header (RFC 768 layout: src,
/// dst, zero, protocol 112, VRRP length) and `msg`. Run over a message whose
/// checksum field is already filled, it returns 0 when that field is right.
pub fn vrrp_checksum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
    let mut sum = 0u32;
    sum = ones_sum(sum, &src.octets());
    sum = ones_sum(sum, &dst.octets());
    sum += u32::from(IPPROTO_VRRP);
    // The length is the IP payload length; VRRP messages are far below 64 KiB,
    // and a longer slice cannot come from one IPv4 packet anyway.
    sum += (msg.len() & 0xffff) as u32;
    sum = ones_sum(sum, msg);
    !fold(sum)
}

/// Add `bytes` as big-endian 16-bit words (odd tail padded with zero),
/// keeping the carries folded so the u32 never overflows.
fn ones_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The IPv4 header fields the VRRP receive path cares about.
///
/// RFC 791 §3.1:
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version|  IHL  |Type of Service|          Total Length         |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |         Identification        |Flags|      Fragment Offset    |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |  Time to Live |    Protocol   |         Header Checksum       |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                       Source Address                          |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Destination Address                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Options                    |    Padding    |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub tos: u8,
    pub id: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// The header lvsup sends adverts with: TOS 0xc0 (network control, as
    /// keepalived), TTL 255, protocol 112, no fragmentation.
    pub fn vrrp(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Ipv4Header {
        Ipv4Header {
            tos: 0xc0,
            id,
            ttl: VRRP_TTL,
            protocol: IPPROTO_VRRP,
            src,
            dst,
        }
    }

    /// A 20-byte header (no options) followed by `payload`, header checksum
    /// filled in: for a raw socket with `IP_HDRINCL`.
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let total = (IPV4_HEADER_LEN + payload.len()).min(usize::from(u16::MAX)) as u16;
        let mut out = Vec::with_capacity(usize::from(total));
        out.push(0x45); // version 4, IHL 5 words
        out.push(self.tos);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // flags, fragment offset
        out.push(self.ttl);
        out.push(self.protocol);
        out.extend_from_slice(&[0, 0]); // checksum, below
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
        let sum = !fold(ones_sum(0, &out));
        out[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&payload[..usize::from(total) - IPV4_HEADER_LEN]);
        out
    }

    /// Parse an IPv4 header as a raw socket delivers it (Linux leaves the
    /// header as received) and return it with its payload. Checks version,
    /// header length, total length, header checksum, no fragment, protocol
    /// 112 and — last, so it is reported as itself — TTL 255 (RFC 5798 §7.1).
    pub fn decode(bytes: &[u8]) -> Result<(Ipv4Header, &[u8]), PacketError> {
        let (header, payload) = Ipv4Header::decode_any_ttl(bytes)?;
        check_ttl(&header, &[])?;
        Ok((header, payload))
    }

    /// [`Ipv4Header::decode`] without the TTL check: the caller applies
    /// [`check_ttl`] with its peers (the TTL rule depends on who sent it).
    pub fn decode_any_ttl(bytes: &[u8]) -> Result<(Ipv4Header, &[u8]), PacketError> {
        if bytes.len() < IPV4_HEADER_LEN {
            return Err(PacketError::Ipv4TooShort(bytes.len()));
        }
        let version = bytes[0] >> 4;
        if version != 4 {
            return Err(PacketError::Ipv4Version(version));
        }
        let ihl = usize::from(bytes[0] & 0x0f) * 4;
        if ihl < IPV4_HEADER_LEN || ihl > bytes.len() {
            return Err(PacketError::Ipv4HeaderLength(ihl));
        }
        let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if total < ihl || total > bytes.len() {
            return Err(PacketError::Ipv4TotalLength {
                total,
                got: bytes.len(),
            });
        }
        if fold(ones_sum(0, &bytes[..ihl])) != 0xffff {
            return Err(PacketError::Ipv4Checksum);
        }
        let flags_frag = u16::from_be_bytes([bytes[6], bytes[7]]);
        // More-fragments bit or a non-zero offset.
        if flags_frag & 0x3fff != 0 {
            return Err(PacketError::Fragment);
        }
        let header = Ipv4Header {
            tos: bytes[1],
            id: u16::from_be_bytes([bytes[4], bytes[5]]),
            ttl: bytes[8],
            protocol: bytes[9],
            src: Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
            dst: Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
        };
        if header.protocol != IPPROTO_VRRP {
            return Err(PacketError::NotVrrp(header.protocol));
        }
        Ok((header, &bytes[ihl..total]))
    }
}

/// The TTL rule (pure). Multicast adverts, and anything not sent straight to
/// us by a configured unicast peer, must arrive with TTL 255 (RFC 5798
/// §5.1.1.3, §7.1): link-local, never routed, so a TTL below 255 means it
/// crossed a router — spoofed from off the link.
///
/// Relaxed for unicast peers only: `unicast_peers` (empty in multicast mode)
/// are the other directors of a `vrrp_unicast` cluster, and an advert from
/// one of them to a unicast destination is accepted whatever its TTL.
/// Unicast VRRP exists for networks without a shared multicast segment
/// (clouds, directors in different subnets), where the peers may well sit
/// behind a router that decrements the TTL; requiring 255 there made such a
/// pair split-brain silently (each Master, every advert dropped). keepalived
/// does the same: it checks the TTL only for multicast adverts, not for
/// `unicast_peer`s. The source check stays (only the configured peers), so
/// the relaxation opens nothing to other hosts.
pub fn check_ttl(header: &Ipv4Header, unicast_peers: &[Ipv4Addr]) -> Result<(), PacketError> {
    if header.ttl == VRRP_TTL || (!header.dst.is_multicast() && unicast_peers.contains(&header.src))
    {
        Ok(())
    } else {
        Err(PacketError::Ttl(header.ttl))
    }
}

/// A whole received IPv4 packet → its header and the validated advert
/// (TTL 255 required: see [`check_ttl`]).
pub fn decode_ipv4(bytes: &[u8]) -> Result<(Ipv4Header, Advert), PacketError> {
    let (header, payload) = Ipv4Header::decode(bytes)?;
    let advert = Advert::decode(header.src, header.dst, payload)?;
    Ok((header, advert))
}

/// [`decode_ipv4`] without the TTL check, for the daemon's receive path:
/// it applies [`check_ttl`] with the unicast peers of the config in force.
pub fn decode_ipv4_any_ttl(bytes: &[u8]) -> Result<(Ipv4Header, Advert), PacketError> {
    let (header, payload) = Ipv4Header::decode_any_ttl(bytes)?;
    let advert = Advert::decode(header.src, header.dst, payload)?;
    Ok((header, advert))
}

/// A whole IPv4 packet carrying `advert` from `src` to `dst`, for a raw
/// socket with `IP_HDRINCL`.
pub fn encode_ipv4(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    Ipv4Header::vrrp(src, dst, id).encode(&advert.encode(src, dst))
}
