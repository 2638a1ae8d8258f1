//! VRRPv3 (RFC 5798) for the director daemon: the packet codec and the
//! sans-IO state machine. Sockets, clocks and addresses live in the daemon.

pub mod machine;
pub mod packet;
