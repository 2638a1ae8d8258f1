//! Constants of the IPVS generic-netlink interface.
//!
//! Names and values are those of the Linux uapi header `include/uapi/linux/ip_vs.h`
//! (enums written out as explicit numbers); the comments quote the header.

#![allow(missing_docs)]

/// `IPVS_GENL_NAME`
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`
pub const IPVS_GENL_VERSION: u8 = 0x1;
/// `IP_VS_VERSION_CODE` of current kernels (1.2.1).
pub const IP_VS_VERSION_CODE: u32 = 0x010201;

// --- commands (enum after `IPVS_CMD_UNSPEC = 0`) ---
pub const IPVS_CMD_NEW_SERVICE: u8 = 1; // add service
pub const IPVS_CMD_SET_SERVICE: u8 = 2; // modify service
pub const IPVS_CMD_DEL_SERVICE: u8 = 3; // delete service
pub const IPVS_CMD_GET_SERVICE: u8 = 4; // get service info
pub const IPVS_CMD_NEW_DEST: u8 = 5; // add destination
pub const IPVS_CMD_SET_DEST: u8 = 6; // modify destination
pub const IPVS_CMD_DEL_DEST: u8 = 7; // delete destination
pub const IPVS_CMD_GET_DEST: u8 = 8; // get destination info
pub const IPVS_CMD_NEW_DAEMON: u8 = 9; // start sync daemon
pub const IPVS_CMD_DEL_DAEMON: u8 = 10; // stop sync daemon
pub const IPVS_CMD_GET_DAEMON: u8 = 11; // get sync daemon status
pub const IPVS_CMD_SET_CONFIG: u8 = 12; // set config settings
pub const IPVS_CMD_GET_CONFIG: u8 = 13; // get config settings
pub const IPVS_CMD_SET_INFO: u8 = 14; // only used in GET_INFO reply
pub const IPVS_CMD_GET_INFO: u8 = 15; // get general IPVS info
pub const IPVS_CMD_ZERO: u8 = 16; // zero all counters and stats
pub const IPVS_CMD_FLUSH: u8 = 17; // flush services and dests

// --- first-level attributes (IPVS_CMD_ATTR_*) ---
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1; // nested service attribute
pub const IPVS_CMD_ATTR_DEST: u16 = 2; // nested destination attribute
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3; // nested sync daemon attribute
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4; // TCP connection timeout
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5; // TCP FIN wait timeout
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6; // UDP timeout

// --- service attributes, inside IPVS_CMD_ATTR_SERVICE (IPVS_SVC_ATTR_*) ---
pub const IPVS_SVC_ATTR_AF: u16 = 1; // address family (u16)
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2; // virtual service protocol (u16)
pub const IPVS_SVC_ATTR_ADDR: u16 = 3; // virtual service address (union nf_inet_addr, 16 bytes)
pub const IPVS_SVC_ATTR_PORT: u16 = 4; // virtual service port (__be16)
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5; // firewall mark of service (u32)
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6; // name of scheduler (NUL-terminated)
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7; // virtual service flags (struct ip_vs_flags)
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8; // persistent timeout (u32 seconds)
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9; // persistent netmask (__be32; prefix length for IPv6)
pub const IPVS_SVC_ATTR_STATS: u16 = 10; // nested attribute for service stats
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11; // name of ct retriever
pub const IPVS_SVC_ATTR_STATS64: u16 = 12; // nested attribute for service stats (64 bit)

// --- destination attributes, inside IPVS_CMD_ATTR_DEST (IPVS_DEST_ATTR_*) ---
pub const IPVS_DEST_ATTR_ADDR: u16 = 1; // real server address
pub const IPVS_DEST_ATTR_PORT: u16 = 2; // real server port (__be16)
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3; // forwarding method (u32)
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4; // destination weight (u32)
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5; // upper threshold (u32)
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6; // lower threshold (u32)
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7; // active connections (u32)
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8; // inactive connections (u32)
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9; // persistent connections (u32)
pub const IPVS_DEST_ATTR_STATS: u16 = 10; // nested attribute for dest stats
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11; // address family of address (u16)
pub const IPVS_DEST_ATTR_STATS64: u16 = 12; // nested attribute for dest stats (64 bit)
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13; // tunnel type (u8)
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14; // tunnel port (__be16)
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15; // tunnel flags (u16)

// --- sync daemon attributes, inside IPVS_CMD_ATTR_DAEMON (IPVS_DAEMON_ATTR_*) ---
pub const IPVS_DAEMON_ATTR_STATE: u16 = 1; // sync daemon state (master/backup), u32
pub const IPVS_DAEMON_ATTR_MCAST_IFN: u16 = 2; // multicast interface name (string)
pub const IPVS_DAEMON_ATTR_SYNC_ID: u16 = 3; // SyncID we belong to (u32)
pub const IPVS_DAEMON_ATTR_SYNC_MAXLEN: u16 = 4; // UDP payload size (u16)
pub const IPVS_DAEMON_ATTR_MCAST_GROUP: u16 = 5; // IPv4 multicast address (in_addr)
pub const IPVS_DAEMON_ATTR_MCAST_GROUP6: u16 = 6; // IPv6 multicast address (in6_addr)
pub const IPVS_DAEMON_ATTR_MCAST_PORT: u16 = 7; // multicast port (base), u16 host order
pub const IPVS_DAEMON_ATTR_MCAST_TTL: u16 = 8; // multicast TTL (u8)

// --- statistics attributes, inside *_ATTR_STATS / *_ATTR_STATS64 (IPVS_STATS_ATTR_*) ---
pub const IPVS_STATS_ATTR_CONNS: u16 = 1; // connections scheduled
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2; // incoming packets
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3; // outgoing packets
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4; // incoming bytes
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5; // outgoing bytes
pub const IPVS_STATS_ATTR_CPS: u16 = 6; // current connection rate
pub const IPVS_STATS_ATTR_INPPS: u16 = 7; // current in packet rate
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8; // current out packet rate
pub const IPVS_STATS_ATTR_INBPS: u16 = 9; // current in byte rate
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10; // current out byte rate
pub const IPVS_STATS_ATTR_PAD: u16 = 11; // alignment padding for nla_put_u64_64bit

// --- GET_INFO reply attributes (IPVS_INFO_ATTR_*), top level of a SET_INFO message ---
pub const IPVS_INFO_ATTR_VERSION: u16 = 1; // IPVS version number
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2; // size of connection hash table

// --- virtual service flags (IP_VS_SVC_F_*) ---
pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001; // persistent port
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002; // hashed entry (kernel-internal, shows up in replies)
pub const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004; // one-packet scheduling
pub const IP_VS_SVC_F_SCHED1: u32 = 0x0008; // scheduler flag 1 (sh-fallback)
pub const IP_VS_SVC_F_SCHED2: u32 = 0x0010; // scheduler flag 2 (sh-port)
pub const IP_VS_SVC_F_SCHED3: u32 = 0x0020; // scheduler flag 3

// --- connection flags: forwarding method (IP_VS_CONN_F_*) ---
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007; // mask for the fwd methods
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000; // masquerading/NAT
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001; // local node
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002; // tunneling
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003; // direct routing

// --- tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*) ---
pub const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;

// --- tunnel encapsulation flags (IP_VS_TUNNEL_ENCAP_FLAG_*) ---
pub const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM: u16 = 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;

// --- sync daemon states (IP_VS_STATE_*) ---
pub const IP_VS_STATE_NONE: u32 = 0x0000; // daemon is stopped
pub const IP_VS_STATE_MASTER: u32 = 0x0001; // started as master
pub const IP_VS_STATE_BACKUP: u32 = 0x0002; // started as backup

// --- lengths ---
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;
pub const IP_VS_PENAME_MAXLEN: usize = 16;
pub const IP_VS_IFNAME_MAXLEN: usize = 16;

// --- from <linux/socket.h> and <netinet/in.h> ---
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;
