//! `lvsup import keepalived [-o FILE] [--lossy] CONF[@ADDRESS[,INTERNAL]]...`:
//! one keepalived.conf per director → one cluster.toml.
//!
//! [`lexer`] and [`parse`] read the keepalived grammar (their docs list the
//! facts they rely on), [`convert`] maps the statements to lvsup's model and
//! renders the toml, checked by lvsup's own validator before it is returned.
//! The file reading (the file named on the command line and its `include`s)
//! is [`import`] and [`FsIncludes`]; everything else is pure.
//!
//! # Directors
//!
//! One file per director; the usual pair is the same file with `state`,
//! `priority` and `router_id` changed. Everything else must agree between the
//! files (VIP, lb_kind, interface, virtual_router_id, advert_int, preempt,
//! unicast or multicast, the NAT gateway, every virtual_server with its real
//! servers and checks): a difference is an error naming both files.
//! * address: the vrrp_instance's `unicast_src_ip`/`mcast_src_ip`, else
//!   `CONF@ADDRESS`, else an error naming the file;
//! * NAT internal address: the gateway instance's `unicast_src_ip`/
//!   `mcast_src_ip`, else `CONF@ADDRESS,INTERNAL`, else an error;
//! * name: `router_id` (lower case, `_` → `-`) when it is a valid host name
//!   and differs between the files, else `director-A-B-C-D` from the address;
//! * priority: `priority` (keepalived's default 100); equal priorities are an
//!   error (lvsup needs them distinct).
//!
//! # Mapping
//!
//! | keepalived | cluster.toml |
//! |---|---|
//! | vrrp_instance NAME | `cluster.name` = NAME lower-cased, non-alphanumerics → `-` |
//! | virtual_ipaddress (the address the virtual_servers use) | `cluster.vip`; its `/prefix` (if any, not /24) is written on the hosts' addresses |
//! | interface | `cluster.interface` |
//! | virtual_router_id | `cluster.vrid` |
//! | advert_int (default 1) | `cluster.advert_interval` |
//! | nopreempt | `cluster.preempt = false` |
//! | preempt_delay N | `cluster.preempt_delay = "Ns"` (dropped with a warning under nopreempt, where keepalived ignores it too) |
//! | notify_master / notify_backup / notify_fault / notify_stop "CMD" [user] (the instance's, or its vrrp_sync_group's) | `cluster.notify = { master = [argv], … }`: CMD split into words as keepalived splits it; the user is dropped with a warning (lvsup runs them as the daemon's unprivileged user) |
//! | unicast_peer { … } | `cluster.vrrp_unicast = true` (the peers must be the other directors) |
//! | lvs_sync_daemon IF (global_defs), lvs_sync_daemon_interface IF (1.x) | `cluster.sync_daemon = true` (IF must be the VRRP interface) |
//! | NAT: second address of the instance, or the address of the other instance of its vrrp_sync_group | `nat.gateway`; its `dev`/the instance's interface → `nat.internal_interface` |
//! | virtual_server IP PORT | `[[services]] port` |
//! | protocol (keepalived's default: UDP) | `protocol` |
//! | lb_algo / lvs_sched (default wlc) | `scheduler` |
//! | lb_kind / lvs_method (default NAT) | `cluster.mode` |
//! | persistence_timeout [N] (no value: 360) | `persistence = "Ns"` |
//! | real_server IP PORT, weight (default 1) | `[[real_servers]]` address, weight; NAT port remapping → `port` |
//! | virtual_server on another address of the vrrp_instance holding the first one's | `[[services]] vip` (the first virtual_server's address is `cluster.vip`) |
//! | real_server in only some virtual_servers | `[[real_servers]] services = ["PORT/PROTO", "VIP:PORT/PROTO", …]` (lvsup's default service names) |
//! | real_server weight differing between virtual_servers | `weight` (its first) and `weights = { NAME = W }` for the others |
//! | TCP_CHECK / HTTP_GET / SSL_GET / MISC_CHECK | `health.check` "tcp" / "http" / "https" / "script"; no checker: "none" |
//! | SSL_GET | `tls_verify = false`: keepalived's SSL_GET never verifies the real server's certificate (it loads a `ca` but leaves OpenSSL's peer verification off); its `virtualhost` → `sni` |
//! | url { path, status_code N, digest D, regex R } | `health.path`, `health.expect_status` (no status_code: 200), `health.expect_digest` = D, `health.expect_body` = R when R has no regex special character |
//! | connect_port (if not the real server's port) | `health.port` |
//! | misc_path "CMD ARGS" | `health.script` = the words; the real server's own address → `{address}`, its port → `{port}` (lvsup has one script per service, run per real server) |
//! | misc_timeout N (default: delay_loop) | `health.timeout` |
//! | persistence_granularity MASK (with persistence_timeout) | `persistence_netmask = "MASK"` |
//! | sorry_server IP [PORT] | `sorry_server = "IP"` (`"IP:PORT"` in NAT when PORT differs) |
//! | virtual_server fwmark N with `# ports 80,443` on its line | `fwmark = N`, `ports = [80, 443]`; the real servers' port → `health.port` |
//!
//! ## Health timers
//!
//! keepalived checks every `delay_loop` (default 60 s), each attempt times out
//! after `connect_timeout` (default 5 s); after a failure it retries `retry`
//! times (`nb_get_retry` in 1.x; default 1) `delay_before_retry` apart, then
//! removes the real server; one success puts it back. Timers are inherited
//! virtual_server → real_server → checker.
//!
//! | keepalived | lvsup | note |
//! |---|---|---|
//! | delay_loop | `interval` | if connect_timeout ≥ delay_loop: connect_timeout + delay_loop (keepalived starts the next check delay_loop after one ends), with a warning |
//! | connect_timeout | `timeout` | |
//! | retry / nb_get_retry | `fall` = retry + 1 | the attempts before removal; `nb_get_retry` is taken as `retry` everywhere (keepalived 2.x ignores it in TCP_CHECK) |
//! | delay_before_retry | — | lvsup re-checks at `interval`: removal takes fall × interval instead of ≈ (retry+1) × connect_timeout + retry × delay_before_retry |
//! | (one success) | `rise = 1` | |
//!
//! lvsup has one health check per service: the checks of all real servers of
//! a virtual_server must be the same.
//!
//! # Names of real servers
//!
//! `rs-A-B-C-D` from the address, unless the comment on the `real_server`
//! line names it: `# web1`, `# name: web1` or `# name=web1` (a valid host
//! name; any other comment names nothing).
//!
//! # What is not converted
//!
//! * An error, listing every construct with `file:line` (nothing written;
//!   `--lossy` writes the file anyway, dropping them, one warning line each
//!   and a comment at the top of the file): a keepalived keyword lvsup cannot
//!   express (sorry_server_inhibit, a sorry_server_lvs_method other than
//!   the service's lb_kind, a fwmark virtual server without its
//!   ports in a comment, group virtual servers, the generic `notify` script
//!   and the other notify hooks, misc_dynamic, the checkers other than
//!   TCP/HTTP/SSL/MISC, regular expressions, quorum, tracking, static
//!   addresses and routes, virtual_ipaddress options, vrrp_strict, …; see
//!   [`keywords::unsupported`]), several VRRP instances (a virtual_server
//!   on an address of another instance than the first's; an address of the
//!   instance no virtual_server uses, other than a NAT gateway), the same
//!   real server twice in one virtual_server, different checks for the real
//!   servers of a service, scheduler names lvsup does not know, priority 255.
//! * A warning: keywords that change nothing lvsup builds
//!   ([`keywords::dropped`]: authentication — RFC 5798 has none —, e-mail and
//!   SNMP settings, gratuitous-ARP timing, process tuning…), keepalived's
//!   defaults taken (no protocol → udp, no lb_algo → wlc, no lb_kind → NAT),
//!   words keepalived does not know either (typos: keepalived ignores them too).
//! * A plain error (never dropped): IPv6 ("not supported yet"), a missing
//!   director address, files that disagree, syntax errors.

pub mod convert;
pub mod keywords;
pub mod lexer;
pub mod parse;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use convert::{DirectorInput, Finding, ImportError, Imported, convert};

/// `CONF[@ADDRESS[,INTERNAL]]` of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfArg {
    pub path: PathBuf,
    pub address: Option<Ipv4Addr>,
    pub internal: Option<Ipv4Addr>,
}

impl std::str::FromStr for ConfArg {
    type Err = String;

    fn from_str(s: &str) -> Result<ConfArg, String> {
        let whole = ConfArg {
            path: PathBuf::from(s),
            address: None,
            internal: None,
        };
        let Some((path, addrs)) = s.rsplit_once('@') else {
            return Ok(whole);
        };
        let (a, i) = match addrs.split_once(',') {
            Some((a, i)) => (a, Some(i)),
            None => (addrs, None),
        };
        let looks_like_address = |x: &str| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
        };
        if !looks_like_address(a) {
            // `@` is part of the file name.
            return Ok(whole);
        }
        let parse = |x: &str| -> Result<Ipv4Addr, String> {
            if x.contains(':') {
                return Err(format!(
                    "{x}: IPv6 is not supported yet (lvsup clusters are IPv4 for now)"
                ));
            }
            x.parse()
                .map_err(|_| format!("\"{x}\" in \"{s}\" is not an IPv4 address"))
        };
        Ok(ConfArg {
            path: PathBuf::from(path),
            address: Some(parse(a)?),
            internal: i.map(parse).transpose()?,
        })
    }
}

/// `include` patterns resolved on the file system: relative to the including
/// file's directory, expanded with `glob` (sorted, as glob(3) does).
pub struct FsIncludes;

impl parse::Includes for FsIncludes {
    fn resolve(&mut self, from: &str, pattern: &str) -> Result<Vec<(String, String)>, String> {
        let base = Path::new(from).parent().unwrap_or(Path::new(""));
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        let paths = glob::glob(&full).map_err(|e| format!("include {pattern}: {e}"))?;
        let mut out = Vec::new();
        for p in paths {
            let p = p.map_err(|e| format!("include {pattern}: {e}"))?;
            if p.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("include {pattern}: cannot read {}: {e}", p.display()))?;
            out.push((p.display().to_string(), text));
        }
        Ok(out)
    }
}

/// Read every director's file (and its includes) and convert them.
pub fn import(confs: &[ConfArg], lossy: bool) -> Result<Imported, ImportError> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for c in confs {
        let file = c.path.display().to_string();
        let text = match std::fs::read_to_string(&c.path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("cannot read {file}: {e}"));
                continue;
            }
        };
        match parse::parse(&file, &text, &mut FsIncludes) {
            Ok(p) => inputs.push(DirectorInput {
                file,
                stmts: p.stmts,
                notes: p.notes,
                address: c.address,
                internal: c.internal,
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(ImportError {
            errors,
            unsupported: Vec::new(),
        });
    }
    convert(&inputs, lossy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_args_take_an_address_and_an_internal_address() {
        let a: ConfArg = "lvs1.conf@10.0.0.1,192.168.10.1".parse().expect("parses");
        assert_eq!(a.path, PathBuf::from("lvs1.conf"));
        assert_eq!(a.address, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a.internal, Some(Ipv4Addr::new(192, 168, 10, 1)));
        let b: ConfArg = "dir/a@b.conf".parse().expect("parses");
        assert_eq!(b.path, PathBuf::from("dir/a@b.conf"));
        assert_eq!(b.address, None);
        let e = "x.conf@fe80::1".parse::<ConfArg>().unwrap_err();
        assert!(e.contains("IPv6 is not supported yet"), "{e}");
        let e = "x.conf@10.0.0.300".parse::<ConfArg>().unwrap_err();
        assert!(e.contains("is not an IPv4 address"), "{e}");
    }
}
