//! Async IPVS client over generic netlink (tokio), on genetlink's connection which
//! resolves the "IPVS" family id.
//!
//! Bulk writes go through [`IpvsClient::batch`] instead: many requests per datagram on
//! a second, dedicated netlink socket (see [`super::batch`] for why and how), which
//! also reads the whole table; that blocking side is `super::raw`.
//!
//! Every command needs `CAP_NET_ADMIN`, reads included (`ip_vs_ctl.c` registers all
//! ops with `GENL_ADMIN_PERM`). Kernel errnos are turned into plain words by
//! [`IpvsError`]; a malformed reply is an error value, never a panic.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use serde::Serialize;

use super::batch::{Acks, BATCH_BYTES, Request, encode_requests};
use super::constants::{IP_VS_PENAME_MAXLEN, IP_VS_SCHEDNAME_MAXLEN};
use super::daemon::{DaemonState, SyncDaemon};
use super::dest::Destination;
pub use super::error::IpvsError;
use super::error::{Ctx, ENOENT, errno_error, malformed};
pub use super::message::Timeouts;
use super::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use super::raw::{lock_socket, open_batch_socket, read_table, run_batch, stream_table};
use super::service::{Service, ServiceId};

/// Result of `IPVS_CMD_GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IpvsInfo {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201.
    pub version: u32,
    /// Size of the connection hash table.
    pub conn_tab_size: u32,
}

impl IpvsInfo {
    /// "1.2.1"
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// Async IPVS client. Cheap to clone (clones share one netlink connection, and the
/// batch socket).
#[derive(Clone, Debug)]
pub struct IpvsClient {
    handle: GenetlinkHandle,
    /// The resolved generic netlink family id of "IPVS" (for hand-built batches).
    family_id: u16,
    /// The dedicated socket of [`Self::batch`], opened on first use; `None` again
    /// after a transport error (a fresh socket has no stale acks queued).
    batch_sock: Arc<Mutex<Option<netlink_sys::Socket>>>,
    batch_acks: Acks,
    batch_bytes: usize,
}

/// What [`IpvsClient::batch`] did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Requests the kernel applied.
    pub applied: usize,
    /// Requests the kernel refused (or, after a transport error, whose fate is unknown
    /// or that were not sent).
    pub failed: usize,
    /// The first failure: index into the requests, and the error.
    pub first_error: Option<(usize, IpvsError)>,
}

impl IpvsClient {
    /// Open a generic netlink connection (spawned on the current tokio runtime) and
    /// resolve the "IPVS" family. Fails with [`IpvsError::ModuleNotLoaded`] when the
    /// family does not exist.
    pub async fn connect() -> Result<Self, IpvsError> {
        let (conn, handle, _unsolicited) =
            genetlink::new_connection().map_err(IpvsError::Socket)?;
        tokio::spawn(conn);
        let family_id = handle
            .resolve_family::<IpvsMessage>()
            .await
            .map_err(|e| genl_error("resolve generic netlink family IPVS", e))?
            .id;
        // Opened here, on the caller's thread, so it lives in the same network namespace
        // as the genetlink connection (a socket's namespace is fixed at creation; the
        // blocking-pool thread that later uses it may have been started elsewhere).
        let batch_sock = open_batch_socket().map_err(IpvsError::Socket)?;
        Ok(IpvsClient {
            handle,
            family_id,
            batch_sock: Arc::new(Mutex::new(Some(batch_sock))),
            batch_acks: Acks::default(),
            batch_bytes: BATCH_BYTES,
        })
    }

    /// A clone with a batch socket of its own (opened here, on the caller's
    /// thread: see `connect`), sharing the generic netlink connection: its
    /// [`Self::batch`]es run while this one's batch socket is held, by a
    /// table being streamed ([`Self::services_streamed`]).
    pub fn with_own_batch_socket(&self) -> Result<Self, IpvsError> {
        let sock = open_batch_socket().map_err(IpvsError::Socket)?;
        Ok(IpvsClient {
            batch_sock: Arc::new(Mutex::new(Some(sock))),
            ..self.clone()
        })
    }

    /// A new batch socket if the shared one was dropped (opened on the caller's thread:
    /// see `connect`). `try_lock`, so the runtime thread never blocks on a batch running
    /// on the blocking pool (that one reopens the socket itself if it must).
    fn fresh_batch_socket(&self) -> Option<netlink_sys::Socket> {
        match self.batch_sock.try_lock() {
            Ok(g) if g.is_none() => open_batch_socket().ok(),
            _ => None,
        }
    }

    /// The generic netlink family id the kernel gave "IPVS".
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// Tune [`Self::batch`]: which messages ask for an ack, and the datagram size
    /// limit (default [`Acks::ErrorsAndLast`], [`BATCH_BYTES`]).
    pub fn set_batch_options(&mut self, acks: Acks, max_bytes: usize) {
        self.batch_acks = acks;
        self.batch_bytes = max_bytes.max(1);
    }

    /// Apply many writes with few syscalls: the requests are encoded back to back into
    /// datagrams of up to 64 KiB, each sent with one `send` on a dedicated netlink
    /// socket, and the acks are matched to the requests by sequence number. The kernel
    /// runs them in order and carries on after a failed one (like the pipelined
    /// one-at-a-time path), so `applied` counts every success and `first_error` is
    /// the earliest failure, worded as the single-request method would word it.
    ///
    /// Scheduler/PE names are checked first: if one is bad nothing is sent. A transport
    /// error stops the batch (the requests of that datagram and later are `failed`).
    pub async fn batch(&mut self, reqs: &[Request<'_>]) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        for (i, r) in reqs.iter().enumerate() {
            if let Request::AddService(s) | Request::EditService(s) = r
                && let Err(e) = check_names(s)
            {
                out.failed = reqs.len();
                out.first_error = Some((i, e));
                return out;
            }
        }
        if reqs.is_empty() {
            return out;
        }
        let chunks = encode_requests(self.family_id, reqs, 1, self.batch_bytes, self.batch_acks);
        // A blocking socket on the blocking pool rather than `TokioSocket`: the kernel
        // processes the whole datagram inside our `send` and has queued every ack before
        // it returns, so a blocking `recv` never really waits. `TokioSocket` would add
        // epoll registration and a would-block probe around every `recv` — syscalls
        // being the cost this path exists to cut (they are dear under emulation). One
        // hop to the blocking pool per batch, not per request.
        // After a transport error the socket was dropped: open the next one here (same
        // namespace reasoning as in `connect`). `try_lock` so the runtime thread never
        // blocks on a concurrent batch (that one then reopens it if it must).
        let fresh = self.fresh_batch_socket();
        let sock = Arc::clone(&self.batch_sock);
        let run = tokio::task::spawn_blocking(move || run_batch(&sock, fresh, &chunks)).await;
        let (acks, failure) = match run {
            Ok(r) => r,
            Err(e) => (Vec::new(), Some(format!("batch task failed: {e}"))),
        };
        let mut done = 0;
        for (chunk_first, a) in &acks {
            out.applied += a.applied();
            out.failed += a.errors.len();
            done += a.applied() + a.errors.len();
            if out.first_error.is_none()
                && let Some(&(k, errno)) = a.errors.first()
            {
                let i = chunk_first + k;
                out.first_error = Some((i, reqs[i].error(errno)));
            }
        }
        if let Some(msg) = failure {
            out.failed += reqs.len() - done;
            let e = IpvsError::Transport {
                op: format!("batch of {} IPVS requests", reqs.len()),
                msg,
            };
            // A kernel refusal earlier in the batch stays the first error.
            if out.first_error.is_none() {
                out.first_error = Some((done, e));
            }
        }
        out
    }

    /// Send one message and collect the reply messages. `dump` selects `NLM_F_DUMP`,
    /// otherwise the request asks for an ACK.
    pub async fn request(
        &mut self,
        msg: IpvsMessage,
        dump: bool,
        op: &str,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        self.request_ctx(msg, dump, op, Ctx::Plain).await
    }

    async fn request_ctx(
        &mut self,
        msg: IpvsMessage,
        dump: bool,
        op: &str,
        ctx: Ctx<'_>,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let mut nl = NetlinkMessage::from(GenlMessage::from_payload(msg));
        nl.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        nl.finalize();
        let mut stream = self
            .handle
            .request(nl)
            .await
            .map_err(|e| genl_error(op, e))?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let reply = item.map_err(|e| IpvsError::Malformed {
                op: op.to_string(),
                msg: e.to_string(),
            })?;
            match reply.payload {
                NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(errno_error(op, -code.get(), ctx));
                    }
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(IpvsError::Transport {
                        op: op.to_string(),
                        msg: "netlink overrun".into(),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Version and connection table size (`IPVS_CMD_GET_INFO`, reply `IPVS_CMD_SET_INFO`).
    pub async fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        let op = "get IPVS info";
        let replies = self.request(IpvsMessage::get_info(), false, op).await?;
        let (mut version, mut size) = (None, None);
        for m in replies.iter().filter(|m| m.cmd == IpvsCmd::SetInfo) {
            for a in &m.attrs {
                match a {
                    IpvsAttr::InfoVersion(v) => version = Some(*v),
                    IpvsAttr::InfoConnTabSize(v) => size = Some(*v),
                    _ => {}
                }
            }
        }
        match (version, size) {
            (Some(version), Some(conn_tab_size)) => Ok(IpvsInfo {
                version,
                conn_tab_size,
            }),
            _ => Err(malformed(
                op,
                "SET_INFO reply without VERSION and CONN_TAB_SIZE",
            )),
        }
    }

    /// All virtual services (dump of `IPVS_CMD_GET_SERVICE`) without destinations.
    pub async fn services_only(&mut self) -> Result<Vec<Service>, IpvsError> {
        let op = "list services";
        let replies = self
            .request(IpvsMessage::get_service(None), true, op)
            .await?;
        let mut out = Vec::with_capacity(replies.len());
        for m in &replies {
            let attrs = m
                .service()
                .ok_or_else(|| malformed(op, "reply without a service nest"))?;
            out.push(Service::from_attrs(attrs).map_err(|e| malformed(op, e))?);
        }
        Ok(out)
    }

    /// All virtual services with their destinations and counters, sorted like
    /// `ipvsadm -Ln` (services by id, destinations by address).
    ///
    /// One dump of the services, then one dump of destinations per service, like
    /// `ipvsadm -Ln` — on the dedicated socket, in one trip to the blocking pool: each
    /// dump is a `send` and a few `recv`s of up to 32 KiB (the kernel's dump skb limit)
    /// with no per-message hop through genetlink's connection task.
    pub async fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        let family = self.family_id;
        let fresh = self.fresh_batch_socket();
        // A second socket for a second reader thread (opened here: same namespace).
        let second = open_batch_socket().ok();
        let slot = Arc::clone(&self.batch_sock);
        let run = tokio::task::spawn_blocking(move || {
            let mut guard = lock_socket(&slot, fresh).map_err(|msg| IpvsError::Transport {
                op: "list services".into(),
                msg,
            })?;
            let r = read_table(
                guard.as_ref().expect("locked with a socket"),
                second.as_ref(),
                family,
            );
            if spoils_socket(&r) {
                *guard = None;
            }
            r
        })
        .await;
        let mut services = run.map_err(|e| IpvsError::Transport {
            op: "list services".into(),
            msg: format!("read task failed: {e}"),
        })??;
        services.sort_by_key(|s| s.id);
        Ok(services)
    }

    /// The table one service at a time (see [`Self::services`] for what is
    /// read): each service, with its destinations, is sent as soon as it is
    /// read, `depth` at most waiting; an error ends the stream. The reading
    /// holds the batch socket until the stream ends or the receiver is
    /// dropped, so a caller reads to the end (or drops it) before it writes.
    pub fn services_streamed(
        &mut self,
        depth: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Service, IpvsError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
        let family = self.family_id;
        let fresh = self.fresh_batch_socket();
        let slot = Arc::clone(&self.batch_sock);
        tokio::task::spawn_blocking(move || {
            let mut guard = match lock_socket(&slot, fresh) {
                Ok(g) => g,
                Err(msg) => {
                    let _ = tx.blocking_send(Err(IpvsError::Transport {
                        op: "list services".into(),
                        msg,
                    }));
                    return;
                }
            };
            let mut broken = false;
            stream_table(guard.as_ref().expect("locked with a socket"), family, |r| {
                broken |= spoils_socket(&r);
                tx.blocking_send(r).is_ok()
            });
            if broken {
                *guard = None;
            }
        });
        rx
    }

    /// One service (`IPVS_CMD_GET_SERVICE` doit) with its destinations, or `None`.
    pub async fn service(&mut self, id: &ServiceId) -> Result<Option<Service>, IpvsError> {
        let op = format!("get service {id}");
        let msg = IpvsMessage::get_service(Some(id));
        let replies = match self
            .request_ctx(
                msg,
                false,
                &op,
                Ctx::Service {
                    id,
                    scheduler: None,
                },
            )
            .await
        {
            Err(IpvsError::NoSuchService(_)) => return Ok(None),
            other => other?,
        };
        let Some(attrs) = replies.iter().find_map(|m| m.service()) else {
            return Ok(None);
        };
        let mut svc = Service::from_attrs(attrs).map_err(|e| malformed(&op, e))?;
        svc.destinations = self.destinations(id).await?;
        Ok(Some(svc))
    }

    /// Destinations of one service (dump of `IPVS_CMD_GET_DEST`), sorted by address.
    pub async fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>, IpvsError> {
        let op = format!("list destinations of {id}");
        let msg = IpvsMessage::get_dest(id);
        let replies = self
            .request_ctx(
                msg,
                true,
                &op,
                Ctx::Service {
                    id,
                    scheduler: None,
                },
            )
            .await?;
        let mut out = Vec::with_capacity(replies.len());
        for m in &replies {
            let attrs = m
                .dest()
                .ok_or_else(|| malformed(&op, "reply without a dest nest"))?;
            out.push(Destination::from_attrs(attrs, id.family()).map_err(|e| malformed(&op, e))?);
        }
        out.sort_by_key(|d| d.socket_addr());
        Ok(out)
    }

    async fn send_service(
        &mut self,
        msg: IpvsMessage,
        id: &ServiceId,
        scheduler: Option<&str>,
        op: String,
    ) -> Result<(), IpvsError> {
        self.request_ctx(msg, false, &op, Ctx::Service { id, scheduler })
            .await
            .map(drop)
    }

    /// Add a virtual service (its `destinations` are not added: see [`Self::add_destination`]).
    pub async fn add_service(&mut self, svc: &Service) -> Result<(), IpvsError> {
        check_names(svc)?;
        let op = format!("add service {}", svc.id);
        self.send_service(
            IpvsMessage::new_service(svc),
            &svc.id,
            Some(&svc.scheduler),
            op,
        )
        .await
    }

    /// Change scheduler, flags, persistence, netmask of an existing service in place.
    pub async fn edit_service(&mut self, svc: &Service) -> Result<(), IpvsError> {
        check_names(svc)?;
        let op = format!("edit service {}", svc.id);
        self.send_service(
            IpvsMessage::set_service(svc),
            &svc.id,
            Some(&svc.scheduler),
            op,
        )
        .await
    }

    /// Delete a virtual service and its destinations.
    pub async fn delete_service(&mut self, id: &ServiceId) -> Result<(), IpvsError> {
        let op = format!("delete service {id}");
        self.send_service(IpvsMessage::del_service(id), id, None, op)
            .await
    }

    async fn send_dest(
        &mut self,
        msg: IpvsMessage,
        id: &ServiceId,
        dest: SocketAddr,
        verb: &str,
    ) -> Result<(), IpvsError> {
        let op = format!("{verb} destination {dest} of {id}");
        self.request_ctx(msg, false, &op, Ctx::Dest { id, dest })
            .await
            .map(drop)
    }

    /// Add a real server to service `id`.
    pub async fn add_destination(
        &mut self,
        id: &ServiceId,
        d: &Destination,
    ) -> Result<(), IpvsError> {
        self.send_dest(IpvsMessage::new_dest(id, d), id, d.socket_addr(), "add")
            .await
    }

    /// Change forwarding method, weight, thresholds, tunnel options in place.
    pub async fn edit_destination(
        &mut self,
        id: &ServiceId,
        d: &Destination,
    ) -> Result<(), IpvsError> {
        self.send_dest(IpvsMessage::set_dest(id, d), id, d.socket_addr(), "edit")
            .await
    }

    /// Remove a real server from service `id`.
    pub async fn delete_destination(
        &mut self,
        id: &ServiceId,
        dest: SocketAddr,
    ) -> Result<(), IpvsError> {
        self.send_dest(IpvsMessage::del_dest(id, dest), id, dest, "delete")
            .await
    }

    /// Remove every virtual service (`ipvsadm -C`).
    pub async fn flush(&mut self) -> Result<(), IpvsError> {
        self.request(IpvsMessage::flush(), false, "flush")
            .await
            .map(drop)
    }

    /// Zero the counters of one service, or of all when `id` is `None` (`ipvsadm -Z`).
    pub async fn zero(&mut self, id: Option<&ServiceId>) -> Result<(), IpvsError> {
        match id {
            None => self
                .request(IpvsMessage::zero(None), false, "zero counters")
                .await
                .map(drop),
            Some(id) => {
                let op = format!("zero counters of {id}");
                self.send_service(IpvsMessage::zero(Some(id)), id, None, op)
                    .await
            }
        }
    }

    /// Connection timeouts (`IPVS_CMD_GET_CONFIG`, reply `IPVS_CMD_SET_CONFIG`).
    pub async fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let replies = self
            .request(IpvsMessage::get_config(), false, "get timeouts")
            .await?;
        let mut t = Timeouts::default();
        for a in replies.iter().flat_map(|m| m.attrs.iter()) {
            match a {
                IpvsAttr::TimeoutTcp(v) => t.tcp = *v,
                IpvsAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                IpvsAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        Ok(t)
    }

    /// Set connection timeouts; zero fields are left unchanged.
    pub async fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError> {
        self.request(IpvsMessage::set_config(t), false, "set timeouts")
            .await
            .map(drop)
    }

    /// Start a connection-sync daemon (`IPVS_CMD_NEW_DAEMON`).
    pub async fn start_daemon(&mut self, d: &SyncDaemon) -> Result<(), IpvsError> {
        let op = format!("start {:?} sync daemon on {}", d.state, d.mcast_ifn);
        self.request(IpvsMessage::new_daemon(d), false, &op)
            .await
            .map(drop)
    }

    /// Stop the master or backup sync daemon (`IPVS_CMD_DEL_DAEMON`).
    pub async fn stop_daemon(&mut self, state: DaemonState) -> Result<(), IpvsError> {
        let op = format!("stop {state:?} sync daemon");
        self.request(IpvsMessage::del_daemon(state), false, &op)
            .await
            .map(drop)
    }

    /// Running sync daemons (dump of `IPVS_CMD_GET_DAEMON`).
    pub async fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        let op = "list sync daemons";
        let replies = self.request(IpvsMessage::get_daemon(), true, op).await?;
        let mut out = Vec::new();
        for m in &replies {
            if let Some(attrs) = m.daemon() {
                out.push(SyncDaemon::from_attrs(attrs).map_err(|e| malformed(op, e))?);
            }
        }
        Ok(out)
    }
}

/// Whether a read ended in a way that leaves the socket unusable (a
/// transport error, or replies it could not parse, which may leave the
/// rest of a dump unread in it): then the socket is dropped and a fresh one
/// opened next time.
fn spoils_socket<T>(r: &Result<T, IpvsError>) -> bool {
    matches!(
        r,
        Err(IpvsError::Transport { .. } | IpvsError::Malformed { .. })
    )
}

/// Scheduler and PE names are NUL-terminated strings of at most 15 characters
/// (`IP_VS_SCHEDNAME_MAXLEN`/`IP_VS_PENAME_MAXLEN` = 16); say so before the kernel's EINVAL.
fn check_names(svc: &Service) -> Result<(), IpvsError> {
    let bad = |what: &str, name: &str, max: usize| {
        (name.is_empty() || name.len() >= max || name.contains('\0')).then(|| {
            IpvsError::InvalidService {
                service: svc.id,
                reason: format!("{what} name {name:?} must be 1 to {} characters", max - 1),
            }
        })
    };
    if let Some(e) = bad("scheduler", &svc.scheduler, IP_VS_SCHEDNAME_MAXLEN) {
        return Err(e);
    }
    if let Some(e) = svc
        .pe_name
        .as_deref()
        .and_then(|p| bad("persistence engine", p, IP_VS_PENAME_MAXLEN))
    {
        return Err(e);
    }
    Ok(())
}

fn genl_error(op: &str, e: GenetlinkError) -> IpvsError {
    match e {
        GenetlinkError::NetlinkError(io) => match io.raw_os_error() {
            // CTRL_CMD_GETFAMILY answers ENOENT for an unknown family.
            Some(ENOENT) if op.starts_with("resolve") => IpvsError::ModuleNotLoaded,
            Some(code) => errno_error(op, code, Ctx::Plain),
            None => IpvsError::Kernel {
                op: op.to_string(),
                source: io,
            },
        },
        GenetlinkError::AttributeNotFound(a) => malformed(op, format!("family reply without {a}")),
        GenetlinkError::DecodeError(d) => malformed(op, d),
        other => IpvsError::Transport {
            op: op.to_string(),
            msg: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::error::{EEXIST, EPERM, ESRCH};
    use std::net::SocketAddr;

    fn id() -> ServiceId {
        ServiceId::tcp("10.0.0.1:80".parse().unwrap())
    }

    #[test]
    fn errors_read_as_plain_words() {
        let id = id();
        let e = errno_error(
            "add",
            EEXIST,
            Ctx::Service {
                id: &id,
                scheduler: Some("rr"),
            },
        );
        assert_eq!(e.to_string(), "service TCP 10.0.0.1:80 already exists");
        let e = errno_error(
            "x",
            ESRCH,
            Ctx::Service {
                id: &id,
                scheduler: None,
            },
        );
        assert_eq!(e.to_string(), "service TCP 10.0.0.1:80 does not exist");
        let dest: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let e = errno_error("x", ENOENT, Ctx::Dest { id: &id, dest });
        assert_eq!(
            e.to_string(),
            "destination 10.0.0.2:80 does not exist in service TCP 10.0.0.1:80"
        );
        let e = errno_error("x", EEXIST, Ctx::Dest { id: &id, dest });
        assert_eq!(
            e.to_string(),
            "destination 10.0.0.2:80 already exists in service TCP 10.0.0.1:80"
        );
        let e = errno_error("x", ESRCH, Ctx::Dest { id: &id, dest });
        assert!(matches!(e, IpvsError::NoSuchService(_)));
        let e = errno_error("x", EPERM, Ctx::Plain);
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        let e = errno_error(
            "add service",
            ENOENT,
            Ctx::Service {
                id: &id,
                scheduler: Some("foo"),
            },
        );
        assert!(e.to_string().contains("modprobe ip_vs_foo"), "{e}");
        let e = genl_error(
            "resolve generic netlink family IPVS",
            GenetlinkError::NetlinkError(std::io::Error::from_raw_os_error(ENOENT)),
        );
        assert_eq!(
            e.to_string(),
            "kernel module ip_vs is not loaded (modprobe ip_vs)"
        );
        let e = errno_error("flush", 22, Ctx::Plain);
        assert!(e.to_string().starts_with("flush: kernel refused"), "{e}");
    }

    #[test]
    fn overlong_scheduler_name_is_refused_before_the_kernel() {
        let svc = Service::new(id(), "a-scheduler-name-too-long");
        let e = check_names(&svc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service TCP 10.0.0.1:80: scheduler name \"a-scheduler-name-too-long\" must be 1 to 15 characters"
        );
        assert!(check_names(&Service::new(id(), "wlc")).is_ok());
    }

    #[test]
    fn info_version_string() {
        let i = IpvsInfo {
            version: 0x010201,
            conn_tab_size: 4096,
        };
        assert_eq!(i.version_string(), "1.2.1");
    }
}
