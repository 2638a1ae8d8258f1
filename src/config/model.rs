//! The validated, typed model of a cluster: what every other module works from.
//! Defaults of the contract are resolved here (vrid from the name, priorities
//! from director order, health defaults); facts only a host can tell (which
//! interface holds the VIP) stay `None` until apply time.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub vip: Ipv4Addr,
    pub mode: Mode,
    /// Director interface for VRRP and the VIP; `None` = the interface whose
    /// subnet holds the VIP, found on each director at apply time.
    pub interface: Option<String>,
    pub vrid: u8,
    #[serde(serialize_with = "ser_duration")]
    pub advert_interval: Duration,
    pub preempt: bool,
    /// How long a Backup waits after its start (or return from fault) before
    /// preempting a lower-priority master (keepalived's `preempt_delay`).
    #[serde(serialize_with = "ser_duration")]
    pub preempt_delay: Duration,
    /// Hooks run on VRRP state changes.
    #[serde(skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
    /// VRRP adverts go unicast to the other directors' `address`es instead of
    /// the multicast group 224.0.0.18 (networks that drop multicast).
    pub vrrp_unicast: bool,
    /// Multicast mode: accept VRRP adverts from any source, not only from the
    /// other directors (keepalived's behaviour, for mixed clusters whose
    /// other routers are not lvsup directors). Default false.
    pub vrrp_accept_foreign: bool,
    /// The kernel's IPVS connection-sync daemon: master on the active
    /// director, backup on the others, on the VRRP interface, sync id = vrid.
    pub sync_daemon: bool,
    /// Prometheus metrics listener of every director's daemon; `None` = off.
    /// A director's own `metrics` key wins ([`ClusterSpec::metrics_for`]).
    pub metrics: Option<MetricsListen>,
    /// IPVS connection timeouts (`ipvsadm --set`) the directors' daemons set
    /// at start and reload; `None` (the default) leaves the kernel's values
    /// (tcp 900 s, tcpfin 120 s, udp 300 s), which suit most services; set
    /// them for long-idle TCP (databases, websockets: raise tcp) or chatty
    /// UDP (DNS: lower udp so the table does not fill up).
    pub ipvs_timeouts: Option<IpvsTimeouts>,
    /// `net.ipv4.vs.expire_nodest_conn` on the directors. Default true: a
    /// connection entry whose real server was deleted is dropped at the next
    /// packet, so the client gets a reset and reconnects to a live server,
    /// instead of being black-holed until the entry times out (15 min for an
    /// established TCP connection). Draining (weight 0 until the
    /// connections end) keeps a removed server's connections alive first.
    pub expire_nodest_conn: bool,
    /// `net.ipv4.vs.expire_quiescent_template` on the directors. Default
    /// true: persistence templates of a weight-0 (drained or down) real
    /// server expire, so returning clients of a persistent service go to
    /// another server instead of sticking to the quiesced one.
    pub expire_quiescent_template: bool,
    /// How long a real server removed from the file stays in IPVS at weight
    /// 0 (no new connections) while its connections finish; then, or as soon
    /// as none is left, the daemon deletes it. Default 5 min: longer than a
    /// web request or a file download usually takes, shorter than an
    /// operator waits for a change to finish. "0s" deletes at once.
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,
    pub ssh: SshSettings,
    pub services: Vec<Service>,
    pub directors: Vec<Director>,
    pub real_servers: Vec<RealServer>,
    pub nat: Option<Nat>,
}

/// `[cluster] ipvs_timeouts`: each `None` leaves the kernel's value alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsTimeouts {
    /// Established TCP connections (kernel default 900 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub tcp: Option<Duration>,
    /// TCP after a FIN (FIN_WAIT; kernel default 120 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub tcpfin: Option<Duration>,
    /// UDP "connections" (kernel default 300 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub udp: Option<Duration>,
}

impl IpvsTimeouts {
    /// Kernel defaults (`ipvsadm -L --timeout` on a fresh host).
    pub const KERNEL_DEFAULT: [(&'static str, u32); 3] =
        [("tcp", 900), ("tcpfin", 120), ("udp", 300)];
    /// Upper bound lvsup accepts: the kernel keeps timeouts in jiffies
    /// (int) and refuses more than INT_MAX / HZ seconds (24.8 days at HZ=1000).
    pub const MAX: Duration = Duration::from_secs(24 * 86_400);

    /// Whole seconds for `IPVS_CMD_SET_CONFIG`; 0 = leave unchanged.
    pub fn secs(&self) -> (u32, u32, u32) {
        let s =
            |d: Option<Duration>| d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        (s(self.tcp), s(self.tcpfin), s(self.udp))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dr,
    Tun,
    Nat,
}

impl Mode {
    pub const ALL: &'static [&'static str] = &["dr", "tun", "nat"];

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "dr" => Some(Mode::Dr),
            "tun" => Some(Mode::Tun),
            "nat" => Some(Mode::Nat),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::Nat => "nat",
        }
    }

    /// IPVS forwarding method of the destinations in this mode.
    pub fn forward(self) -> Forward {
        match self {
            Mode::Dr => Forward::Route,
            Mode::Tun => Forward::Tunnel,
            Mode::Nat => Forward::Masq,
        }
    }

    /// Whether real servers may listen on a port other than the service's.
    pub fn can_remap_ports(self) -> bool {
        self == Mode::Nat
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Dr => "DR",
            Mode::Tun => "TUN",
            Mode::Nat => "NAT",
        })
    }
}

/// IPVS forwarding method, named as `ipvsadm -Ln` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// `-m`, masquerading (NAT)
    Masq,
    /// `-i`, IP-in-IP tunnelling
    Tunnel,
    /// `-g`, direct routing (gatewaying)
    Route,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forward::Masq => "Masq",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub const ALL: &'static [&'static str] = &["tcp", "udp"];

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// IPVS scheduler names exactly as ipvsadm spells them (kernel module `ip_vs_<name>`).
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// `[[services]] name`: default `"PORT/PROTO"` (`"80/tcp"`), or
    /// `"VIP:PORT/PROTO"` for a service with its own `vip`; a fwmark
    /// service: `"fwmark:N"` (`"VIP:fwmark:N"`). Unique; real servers'
    /// `services` and `weights` refer to it.
    pub name: String,
    /// The virtual address of this service: `[[services]] vip`, default
    /// the cluster's `vip`. Every distinct one floats with the VRRP master.
    pub vip: Ipv4Addr,
    /// The service port; 0 for a fwmark service (its ports are in `fwmark`).
    pub port: u16,
    pub protocol: Protocol,
    /// One of [`SCHEDULERS`].
    pub scheduler: String,
    /// Client affinity timeout (`ipvsadm -p`), whole seconds; `None` = off.
    #[serde(serialize_with = "ser_opt_duration")]
    pub persistence: Option<Duration>,
    /// Persistence granularity (`ipvsadm -M`) as a prefix length: clients
    /// of one such network stick to one real server. `None` = /32 (each
    /// client address on its own). Only with `persistence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<u8>,
    /// A firewall-mark service (`ipvsadm -f MARK`): the packets to the VIP
    /// on `ports` are marked by lvsup's nftables table on the directors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<Fwmark>,
    /// Put in IPVS while no real server of the service can take a new
    /// connection; removed as soon as one can (director policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    pub health: Health,
}

/// `[[services]] fwmark = N` with `ports = [...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fwmark {
    /// 1..=2^32-1.
    pub mark: u32,
    /// The destination ports marked (sorted, unique, at least one).
    pub ports: Vec<u16>,
}

/// `[[services]] sorry_server = "ADDR[:PORT]"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SorryServer {
    pub address: Ipv4Addr,
    /// `None`: the service's port (for a fwmark service: the packet's own
    /// destination port, IPVS port 0).
    pub port: Option<u16>,
}

impl SorryServer {
    /// `"10.0.0.9"` or `"10.0.0.9:8080"`: an IPv4 address with an optional
    /// port 1..=65535. The error says what is wrong, for the caller to word.
    pub fn parse(s: &str) -> Result<SorryServer, String> {
        let s = s.trim();
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            return Ok(SorryServer {
                address: a,
                port: None,
            });
        }
        if let Ok(sa) = s.parse::<std::net::SocketAddrV4>() {
            if sa.port() == 0 {
                return Err("port 0 is not a port: leave it out for the service's port".into());
            }
            return Ok(SorryServer {
                address: *sa.ip(),
                port: Some(sa.port()),
            });
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() || s.parse::<std::net::SocketAddrV6>().is_ok() {
            return Err("IPv6 is not supported yet: lvsup clusters are IPv4".into());
        }
        Err("not an IPv4 address with an optional port".into())
    }

    /// The port of the sorry destination for `service`.
    pub fn port_for(&self, service: &Service) -> u16 {
        self.port.unwrap_or(service.port)
    }
}

impl fmt::Display for SorryServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

/// `"255.255.255.0"` or `"/24"` → 24: a contiguous IPv4 netmask or a prefix
/// length 0..=32 after a slash. The error says what is wrong.
pub fn parse_netmask(s: &str) -> Result<u8, String> {
    let s = s.trim();
    if let Some(p) = s.strip_prefix('/') {
        return match p.parse::<u8>() {
            Ok(n) if n <= 32 => Ok(n),
            _ => Err("a prefix length is 0..=32 after the slash".into()),
        };
    }
    if s.contains(':') {
        return Err("IPv6 is not supported yet: lvsup clusters are IPv4".into());
    }
    let Ok(mask) = s.parse::<Ipv4Addr>() else {
        return Err("not a netmask: write \"255.255.255.0\" or \"/24\"".into());
    };
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err("its one bits are not contiguous".into());
    }
    Ok(ones as u8)
}

impl Service {
    /// `TCP 192.168.0.100:80` on the service's own VIP; a fwmark service:
    /// `FWM 5 (TCP 192.168.0.100:80,443)`.
    pub fn label(&self) -> String {
        match &self.fwmark {
            Some(f) => format!(
                "FWM {} ({} {}:{})",
                f.mark,
                self.protocol,
                self.vip,
                f.ports_text()
            ),
            None => format!("{} {}:{}", self.protocol, self.vip, self.port),
        }
    }

    /// The default name of a service: `"80/tcp"` on the cluster's VIP,
    /// `"192.168.0.101:80/tcp"` on a VIP of its own; a fwmark service
    /// (`fwmark`: its mark) `"fwmark:5"`, `"192.168.0.101:fwmark:5"`.
    pub fn default_name(
        vip: Option<Ipv4Addr>,
        port: u16,
        protocol: Protocol,
        fwmark: Option<u32>,
    ) -> String {
        let what = match fwmark {
            Some(m) => format!("fwmark:{m}"),
            None => format!("{port}/{}", protocol.as_str()),
        };
        match vip {
            Some(v) => format!("{v}:{what}"),
            None => what,
        }
    }

    /// The destination ports the service takes: `port`, or a fwmark's `ports`.
    pub fn ports(&self) -> Vec<u16> {
        match &self.fwmark {
            Some(f) => f.ports.clone(),
            None => vec![self.port],
        }
    }
}

impl Fwmark {
    /// `80,443`
    pub fn ports_text(&self) -> String {
        let v: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        v.join(",")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub check: Check,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    /// Checked port; `None` = the real server's port.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Check {
    Tcp,
    Http(HttpCheck),
    /// HTTP over TLS (rustls).
    Https {
        #[serde(flatten)]
        http: HttpCheck,
        /// Check the certificate chain (system trust store) and that it
        /// names `sni`; `false` accepts any certificate (keepalived's
        /// SSL_GET, which does not verify).
        tls_verify: bool,
        /// Server name sent (SNI) and verified; `None` = the real server's
        /// address (then the certificate must name that IP address).
        #[serde(skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
    /// Run a program (keepalived's MISC_CHECK): exit 0 = up.
    Script {
        argv: Vec<String>,
    },
    None,
}

/// What an `http`/`https` check asks and expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpCheck {
    pub path: String,
    pub expect_status: u16,
    /// The body must contain this text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// MD5 of the whole body, 32 lower-case hex digits (keepalived's `digest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_digest: Option<String>,
}

impl Check {
    pub const ALL: &'static [&'static str] = &["tcp", "http", "https", "script", "none"];

    pub fn name(&self) -> &'static str {
        match self {
            Check::Tcp => "tcp",
            Check::Http(_) => "http",
            Check::Https { .. } => "https",
            Check::Script { .. } => "script",
            Check::None => "none",
        }
    }

    /// The HTTP part of an `http` or `https` check.
    pub fn http(&self) -> Option<&HttpCheck> {
        match self {
            Check::Http(h) | Check::Https { http: h, .. } => Some(h),
            _ => None,
        }
    }
}

/// How much of an HTTP answer's body a check reads (`expect_body`,
/// `expect_digest`): 1 MiB. A longer body fails the check (a health page is
/// small; reading without bound would let one real server fill the daemon's
/// memory).
pub const MAX_BODY: usize = 1 << 20;

/// Upper bound of `[cluster] preempt_delay` (keepalived's: 1000 s).
pub const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);

/// `[cluster] notify`: programs (argv lists) run on VRRP state changes.
/// The same shape in director.toml (`[notify]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.master.is_none()
            && self.backup.is_none()
            && self.fault.is_none()
            && self.stop.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Director {
    /// This director's metrics listener (`[[directors]] metrics`), over the
    /// cluster's.
    pub metrics: Option<std::net::SocketAddr>,
    pub name: String,
    /// Management address (SSH) and VRRP source, with its prefix (default /24).
    pub address: Ipv4Net,
    /// VRRP priority 1..=254; default 150 for the first, 10 less for each next.
    pub priority: u8,
    pub ssh_host: Option<String>,
    /// NAT only: the director's own address on the real servers' subnet.
    pub internal_address: Option<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealServer {
    pub name: String,
    pub address: Ipv4Net,
    /// IPVS weight 0..=65535; 0 = quiesced (no new connections).
    pub weight: u32,
    /// NAT only: the port the real server listens on (port remapping).
    pub port: Option<u16>,
    pub ssh_host: Option<String>,
    /// Drained: kept in IPVS at weight 0 (no new connections, existing ones
    /// finish), whatever its health and weight. Default false.
    pub drain: bool,
    /// `[[real_servers]] services`: the names of the services this real
    /// server is a destination of; `None` (the default) = every service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// `[[real_servers]] weights = { NAME = W }`: per-service weights over
    /// `weight`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
}

impl RealServer {
    /// The port this real server listens on for `service`.
    pub fn port_for(&self, service: &Service) -> u16 {
        self.port.unwrap_or(service.port)
    }

    /// Whether this real server is a destination of `service`.
    pub fn serves(&self, service: &Service) -> bool {
        self.services
            .as_ref()
            .is_none_or(|names| names.contains(&service.name))
    }

    /// The IPVS weight of this real server in `service`: its `weights`
    /// entry for the service, else `weight`.
    pub fn weight_for(&self, service: &Service) -> u32 {
        self.weights
            .get(&service.name)
            .copied()
            .unwrap_or(self.weight)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nat {
    /// Floating internal address the real servers route through.
    pub gateway: Ipv4Net,
    /// `None` = the director interface on the real servers' subnet (found at apply).
    pub internal_interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<String>,
    /// Like `ssh -F`; relative paths are resolved against the cluster file's directory.
    pub config: Option<String>,
    pub become_sudo: bool,
    pub host_key_checking: HostKeyChecking,
    /// Keep each host's SSH master connection this long after a run, for the
    /// next run to reuse (`ControlPersist`); `None`: closed at the end of each
    /// run (`"0s"`, the default).
    pub control_persist: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    #[default]
    Strict,
    AcceptNew,
}

impl ClusterSpec {
    /// "web: DR, 1 service, 2 directors, 2 real servers" ("site: DR, 2 VIPs,
    /// 3 services, …" when services have VIPs of their own)
    pub fn summary(&self) -> String {
        fn n(count: usize, what: &str) -> String {
            format!("{count} {what}{}", if count == 1 { "" } else { "s" })
        }
        let vips = self.vips().len();
        format!(
            "{}: {}, {}{}, {}, {}",
            self.name,
            self.mode,
            if vips > 1 {
                format!("{vips} VIPs, ")
            } else {
                String::new()
            },
            n(self.services.len(), "service"),
            n(self.directors.len(), "director"),
            n(self.real_servers.len(), "real server")
        )
    }

    /// Every VIP of the cluster, each once: `[cluster] vip` first, then the
    /// services' own VIPs in file order. The VRRP master holds them all.
    pub fn vips(&self) -> Vec<Ipv4Addr> {
        let mut v = vec![self.vip];
        for s in &self.services {
            if !v.contains(&s.vip) {
                v.push(s.vip);
            }
        }
        v
    }

    /// The real servers that are destinations of `service`.
    pub fn real_servers_of<'a>(
        &'a self,
        service: &'a Service,
    ) -> impl Iterator<Item = &'a RealServer> + 'a {
        self.real_servers.iter().filter(move |r| r.serves(service))
    }

    /// Directors ordered by priority, highest first: the first is the intended master.
    pub fn directors_by_priority(&self) -> Vec<&Director> {
        let mut d: Vec<&Director> = self.directors.iter().collect();
        d.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        d
    }

    /// Kernel modules a director needs: ip_vs and one per scheduler in use.
    pub fn director_modules(&self) -> Vec<String> {
        let mut m = vec!["ip_vs".to_string()];
        for s in &self.services {
            let name = format!("ip_vs_{}", s.scheduler);
            if !m.contains(&name) {
                m.push(name);
            }
        }
        m[1..].sort();
        m
    }
}

/// Default of `[cluster] drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound of `[cluster] drain_timeout`.
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// `"100ms"`, `"2s"`, `"2m"`: the form used in files lvsup writes and in its output.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_the_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(6)), "6s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}

/// Where the directors' metrics listeners bind (`[cluster] metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetricsListen {
    /// `"ADDRESS:PORT"`: the same address on every director.
    Address(std::net::SocketAddr),
    /// `":PORT"`: each director's own `address` (never the VIP), so a remote
    /// scraper reaches every director without a listener on 0.0.0.0.
    OwnAddress(u16),
}

impl ClusterSpec {
    /// The metrics listener of director `d`: its own `metrics` key, else the
    /// cluster's (`":PORT"` resolved to `d`'s address); `None` = off.
    pub fn metrics_for(&self, d: &Director) -> Option<std::net::SocketAddr> {
        d.metrics.or(match self.metrics? {
            MetricsListen::Address(a) => Some(a),
            MetricsListen::OwnAddress(port) => {
                Some(std::net::SocketAddr::from((d.address.addr(), port)))
            }
        })
    }
}
