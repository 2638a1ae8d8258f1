//! IPVS errors in words an operator can act on, and the mapping of the kernel's
//! errno values (as `ip_vs_ctl.c` returns them) to them. Pure: shared by the
//! client (one request at a time) and the batch codec (many per datagram).

use std::io;
use std::net::SocketAddr;

use super::service::ServiceId;

// errno values (asm-generic/errno-base.h)
pub(crate) const EPERM: i32 = 1;
pub(crate) const ENOENT: i32 = 2;
pub(crate) const ESRCH: i32 = 3;
pub(crate) const EEXIST: i32 = 17;

/// What went wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("kernel module ip_vs is not loaded (modprobe ip_vs)")]
    ModuleNotLoaded,
    #[error("permission denied: IPVS needs CAP_NET_ADMIN (run as root)")]
    PermissionDenied,
    #[error("service {0} already exists")]
    ServiceExists(ServiceId),
    #[error("service {0} does not exist")]
    NoSuchService(ServiceId),
    #[error(
        "scheduler {scheduler:?} for service {service} is not available (modprobe ip_vs_{scheduler})"
    )]
    UnknownScheduler {
        service: ServiceId,
        scheduler: String,
    },
    #[error("destination {dest} already exists in service {service}")]
    DestinationExists {
        service: ServiceId,
        dest: SocketAddr,
    },
    #[error("destination {dest} does not exist in service {service}")]
    NoSuchDestination {
        service: ServiceId,
        dest: SocketAddr,
    },
    #[error("{op}: kernel refused: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("service {service}: {reason}")]
    InvalidService { service: ServiceId, reason: String },
    #[error("cannot open a generic netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("malformed IPVS reply from the kernel ({op}): {msg}")]
    Malformed { op: String, msg: String },
    #[error("netlink transport error ({op}): {msg}")]
    Transport { op: String, msg: String },
}

/// Context for turning an errno into an [`IpvsError`].
pub(crate) enum Ctx<'a> {
    Plain,
    Service {
        id: &'a ServiceId,
        scheduler: Option<&'a str>,
    },
    Dest {
        id: &'a ServiceId,
        dest: SocketAddr,
    },
}

/// Map a positive errno to an error in plain words, using what the request was about.
/// Codes as `ip_vs_ctl.c` returns them: ESRCH = service not found, EEXIST = already
/// there, ENOENT = destination not found (or, on NEW/SET_SERVICE, unknown scheduler).
pub(crate) fn errno_error(op: &str, code: i32, ctx: Ctx<'_>) -> IpvsError {
    match (code, ctx) {
        (EPERM, _) => IpvsError::PermissionDenied,
        (ESRCH, Ctx::Service { id, .. } | Ctx::Dest { id, .. }) => IpvsError::NoSuchService(*id),
        (EEXIST, Ctx::Service { id, .. }) => IpvsError::ServiceExists(*id),
        (
            ENOENT,
            Ctx::Service {
                id,
                scheduler: Some(s),
            },
        ) => IpvsError::UnknownScheduler {
            service: *id,
            scheduler: s.to_string(),
        },
        (EEXIST, Ctx::Dest { id, dest }) => IpvsError::DestinationExists { service: *id, dest },
        (ENOENT, Ctx::Dest { id, dest }) => IpvsError::NoSuchDestination { service: *id, dest },
        (code, _) => IpvsError::Kernel {
            op: op.to_string(),
            source: io::Error::from_raw_os_error(code),
        },
    }
}

/// A reply lvsup cannot read.
pub(crate) fn malformed(op: &str, msg: impl ToString) -> IpvsError {
    IpvsError::Malformed {
        op: op.to_string(),
        msg: msg.to_string(),
    }
}
