//! Warnings about a *valid* cluster: settings that are allowed but most
//! likely not what the operator meant (no failover, no traffic, a health
//! check much slower than the director failover...). `lvsup validate` prints
//! them; they never make a file invalid (`--deny-warnings` turns them into
//! errors for CI).
//!
//! [`check`] is a pure function of the [`ClusterSpec`]: it names the key each
//! warning is about; [`Warning::place`] then finds that key in the file's text
//! for a line and column, the way errors carry them (see [`super::diag`]).
//!
//! Every rule has a stable `code` (shown in `--json`) and its reasoning in the
//! doc comment of its function.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use super::diag::line_col;
use super::model::*;

/// One warning: what is probably wrong, about which key, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable identifier of the rule, e.g. `single-director`.
    pub code: &'static str,
    /// Dotted key path, e.g. `services[0].health.interval` (0-based index).
    pub key: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Byte range in the file of the key's value (or of the nearest enclosing
    /// table when the key is not written: a default).
    #[serde(skip)]
    pub span: Option<Range<usize>>,
    /// 1-based line and column of `span`'s start; 0 when not placed.
    pub line: usize,
    pub col: usize,
}

impl Warning {
    fn new(code: &'static str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Warning {
            code,
            key: key.into(),
            message: message.into(),
            hint: None,
            span: None,
            line: 0,
            col: 0,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Fill `span`, `line` and `col` from the file's text.
    pub fn place(&mut self, text: &str) {
        if let Some(span) = super::parse::key_span(text, &self.key) {
            let (l, c) = line_col(text, span.start);
            self.line = l;
            self.col = c;
            self.span = Some(span);
        }
    }

    /// `file:line:col: `key`: message (hint: ...)`, like an error's one-line form.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct D<'a>(&'a Warning, &'a str);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (w, file) = (self.0, self.1);
                if w.line > 0 {
                    write!(f, "{file}:{}:{}: ", w.line, w.col)?;
                } else {
                    write!(f, "{file}: ")?;
                }
                write!(f, "`{}`: {}", w.key, w.message)?;
                if let Some(h) = &w.hint {
                    write!(f, " (hint: {h})")?;
                }
                Ok(())
            }
        }
        D(self, file)
    }
}

/// Every warning about `spec`, in file order of their sections (cluster,
/// services, directors, real servers). Not placed: see [`Warning::place`].
pub fn check(spec: &ClusterSpec) -> Vec<Warning> {
    let mut w = Vec::new();
    sync_daemon_single_director(spec, &mut w);
    metrics_on_every_address(spec, &mut w);
    for (i, s) in spec.services.iter().enumerate() {
        let path = format!("services[{i}]");
        destination_scheduler(s, &path, &mut w);
        weights_ignored(spec, s, &path, &mut w);
        persistence_redundant(s, &path, &mut w);
        no_health_check(s, &path, &mut w);
        sorry_server_unchecked(s, &path, &mut w);
        slow_health_check(spec, s, &path, &mut w);
    }
    single_director(spec, &mut w);
    single_real_server(spec, &mut w);
    all_weights_zero(spec, &mut w);
    w
}

/// `single-director`: with one director there is no VRRP peer to take the
/// VIP over; when that host fails, the whole service is down. Fine for a
/// test bed, rarely what a load balancer in production is for.
fn single_director(spec: &ClusterSpec, w: &mut Vec<Warning>) {
    if spec.directors.len() == 1 {
        w.push(
            Warning::new(
                "single-director",
                "directors[0]",
                format!(
                    "a single director ({}): no failover, the VIP is down when it is",
                    spec.directors[0].name
                ),
            )
            .hint("add a second [[directors]]: VRRP then moves the VIP when one fails"),
        );
    }
}

/// `single-real-server`: the director's health check can only take the one
/// real server out, leaving the service with no destination: no redundancy
/// behind the VIP.
fn single_real_server(spec: &ClusterSpec, w: &mut Vec<Warning>) {
    if spec.real_servers.len() == 1 {
        w.push(
            Warning::new(
                "single-real-server",
                "real_servers[0]",
                format!(
                    "a single real server ({}): when it fails, no server is left behind the VIP",
                    spec.real_servers[0].name
                ),
            )
            .hint("add a second [[real_servers]]"),
        );
    }
}

/// `all-weights-zero`: weight 0 quiesces a real server (IPVS sends it no new
/// connections). Every real server at 0 means every virtual service accepts
/// clients and forwards them nowhere. One quiesced server is maintenance;
/// all of them is almost certainly a mistake. The key is the first server's.
fn all_weights_zero(spec: &ClusterSpec, w: &mut Vec<Warning>) {
    if !spec.real_servers.is_empty()
        && spec
            .services
            .iter()
            .all(|s| spec.real_servers_of(s).all(|r| r.weight_for(s) == 0))
    {
        w.push(
            Warning::new(
                "all-weights-zero",
                "real_servers[0].weight",
                "every real server has weight 0 (quiesced): no service gets any new connection",
            )
            .hint("give at least one real server a weight above 0 (default 1)"),
        );
    }
}

/// `sync-daemon-single-director`: the IPVS connection-sync daemon copies
/// connections from the active director to the others so that they survive
/// a failover; with one director there is no one to sync with, and the
/// kernel threads only cost a multicast packet stream.
fn sync_daemon_single_director(spec: &ClusterSpec, w: &mut Vec<Warning>) {
    if spec.sync_daemon && spec.directors.len() == 1 {
        w.push(
            Warning::new(
                "sync-daemon-single-director",
                "cluster.sync_daemon",
                "sync_daemon = true with a single director: there is no other director to sync connections to",
            )
            .hint("add a second director, or leave sync_daemon out"),
        );
    }
}

/// `metrics-on-every-address`: a metrics listener on 0.0.0.0 (or `::`, which
/// takes IPv4 connections too) also listens on the VIP, which the active
/// director holds: IPVS forwards only the virtual services' ports, so any
/// client of the VIP reaches `VIP:PORT/metrics`. A warning, not an error:
/// the wildcard is written out in the file (a deliberate choice, e.g.
/// behind a firewall that drops the port on the VIP), and every `validate`
/// and `plan` shows it.
fn metrics_on_every_address(spec: &ClusterSpec, w: &mut Vec<Warning>) {
    let cluster = match spec.metrics {
        Some(MetricsListen::Address(a)) => Some(("cluster.metrics".to_string(), a)),
        _ => None,
    };
    let own = spec
        .directors
        .iter()
        .enumerate()
        .filter_map(|(i, d)| Some((format!("directors[{i}].metrics"), d.metrics?)));
    for (key, m) in cluster.into_iter().chain(own) {
        if !m.ip().is_unspecified() {
            continue;
        }
        w.push(
            Warning::new(
                "metrics-on-every-address",
                key,
                format!(
                    "metrics listens on every address, the VIP included: clients of {} can read {}:{}/metrics",
                    spec.vip,
                    spec.vip,
                    m.port()
                ),
            )
            .hint(format!(
                "\":{}\" listens on each director's own address; or 127.0.0.1:{} for a local agent",
                m.port(),
                m.port()
            )),
        );
    }
}

/// `destination-scheduler`: dh, lblc and lblcr choose the real server from
/// the packet's *destination* address; they are made for cache clusters
/// (many destinations behind one director). On a virtual service the
/// destination is always the VIP, so dh sends every connection to the same
/// real server, and lblc/lblcr do too until that server is overloaded.
fn destination_scheduler(s: &Service, path: &str, w: &mut Vec<Warning>) {
    let sc = s.scheduler.as_str();
    if matches!(sc, "dh" | "lblc" | "lblcr") {
        let what = if sc == "dh" {
            "every connection goes to the same real server"
        } else {
            "one real server takes every connection until it is overloaded"
        };
        w.push(
            Warning::new(
                "destination-scheduler",
                format!("{path}.scheduler"),
                format!(
                    "scheduler {sc} picks the real server by destination address, and every connection's destination is the VIP: {what}"
                ),
            )
            .hint("for client affinity use sh or mh (by source address), or persistence"),
        );
    }
}

/// `weights-ignored`: rr, lc and dh ignore weights except 0 (no new
/// connections); servers given different weights (1 and 3: "three times
/// the traffic") get the same share. Only flagged when the non-zero weights
/// differ; dh is already flagged by `destination-scheduler`.
fn weights_ignored(spec: &ClusterSpec, s: &Service, path: &str, w: &mut Vec<Warning>) {
    let sc = s.scheduler.as_str();
    if !matches!(sc, "rr" | "lc") {
        return;
    }
    let mut weights: Vec<u32> = spec
        .real_servers_of(s)
        .map(|r| r.weight_for(s))
        .filter(|&x| x > 0)
        .collect();
    weights.sort_unstable();
    weights.dedup();
    if weights.len() > 1 {
        let list: Vec<String> = weights.iter().map(u32::to_string).collect();
        let weighted = if sc == "rr" { "wrr" } else { "wlc" };
        w.push(
            Warning::new(
                "weights-ignored",
                format!("{path}.scheduler"),
                format!(
                    "scheduler {sc} ignores weights (only 0 stops new connections), but the real servers' weights differ ({})",
                    list.join(", ")
                ),
            )
            .hint(format!("use {weighted} to share connections by weight")),
        );
    }
}

/// `persistence-redundant`: sh and mh already send a client address to the
/// same real server (by hashing it); persistence does the same with a
/// connection template per client, so turning both on only costs memory
/// and hides the scheduler's choice.
fn persistence_redundant(s: &Service, path: &str, w: &mut Vec<Warning>) {
    if s.persistence.is_some() && matches!(s.scheduler.as_str(), "sh" | "mh") {
        w.push(
            Warning::new(
                "persistence-redundant",
                format!("{path}.persistence"),
                format!(
                    "persistence with scheduler {}: it already sends each client address to the same real server",
                    s.scheduler
                ),
            )
            .hint("leave persistence out, or use a scheduler such as wlc or wrr with it"),
        );
    }
}

/// `no-health-check`: check = "none" on a TCP service (it is the default only
/// for UDP, where no generic check exists): a real server that stops
/// answering keeps its share of new connections until someone changes its
/// weight by hand.
fn no_health_check(s: &Service, path: &str, w: &mut Vec<Warning>) {
    if s.protocol == Protocol::Tcp && s.health.check == Check::None {
        w.push(
            Warning::new(
                "no-health-check",
                format!("{path}.health.check"),
                "no health check: a real server that stops answering keeps getting new connections",
            )
            .hint("check = \"tcp\" (connect) or \"http\""),
        );
    }
}

/// `sorry-server-unchecked`: a sorry server on a service without a health
/// check comes in only when every real server is drained or at weight 0:
/// nothing ever takes a dead one down.
fn sorry_server_unchecked(s: &Service, path: &str, w: &mut Vec<Warning>) {
    if s.sorry_server.is_some() && s.health.check == Check::None {
        w.push(
            Warning::new(
                "sorry-server-unchecked",
                format!("{path}.sorry_server"),
                "sorry_server on a service without a health check: it is used only while every real server is drained or at weight 0, never because they are down",
            )
            .hint("set [services.health] check (tcp or http)"),
        );
    }
}

/// How many times longer than a director failover a dead real server may go
/// unnoticed before `slow-health-check` warns. See [`slow_health_check`].
pub const SLOW_HEALTH_FACTOR: u32 = 5;

/// `slow-health-check`: the health check is the real servers' failover, VRRP
/// the directors'; both protect the same clients, and an operator tunes them
/// together.
///
/// * A dead real server is taken out after up to `fall × interval + timeout`:
///   it dies just after a passing check, the next `fall` checks fail, the
///   last one after its timeout (lvsup's defaults: 3 × 2s + 1s = 7s).
/// * A dead master director is replaced after the backup's
///   Master_Down_Interval, `3 × advert_interval + Skew_Time` (RFC 5798 §6.1;
///   the backup is the director with the second-highest priority): 3.45s
///   with the defaults.
///
/// A real-server failure hits only that server's share of the clients, so
/// its detection may well be slower (the defaults: 2×). Beyond
/// [`SLOW_HEALTH_FACTOR`] times, the two were not tuned together — the
/// keepalived tutorial's `delay_loop 6` / 3 retries / 3s timeout (21s) next
/// to `advert_int 1` (3.6s), or an advert interval cut to 100 ms with the
/// health defaults — and clients sent to a dead server get errors for many
/// times what a director failure costs them. Not checked with one director
/// (no failover: `single-director` says so) or without a health check.
fn slow_health_check(spec: &ClusterSpec, s: &Service, path: &str, w: &mut Vec<Warning>) {
    if s.health.check == Check::None {
        return;
    }
    let Some(backup) = spec.directors_by_priority().get(1).map(|d| d.priority) else {
        return;
    };
    let h = &s.health;
    let detect = h.interval * h.fall + h.timeout;
    let failover = master_down_interval(backup, spec.advert_interval);
    if detect > failover * SLOW_HEALTH_FACTOR {
        let ratio = detect.as_secs_f64() / failover.as_secs_f64();
        w.push(
            Warning::new(
                "slow-health-check",
                format!("{path}.health.interval"),
                format!(
                    "a dead real server goes unnoticed for up to {} (fall {} × interval {} + timeout {}), {ratio:.1} times the {} a director failover takes (3 × advert_interval {} + skew)",
                    secs(detect),
                    h.fall,
                    secs(h.interval),
                    secs(h.timeout),
                    secs(failover),
                    secs(spec.advert_interval),
                ),
            )
            .hint(format!(
                "lower health.interval or health.fall until detection is within {}× the failover, or raise cluster.advert_interval",
                SLOW_HEALTH_FACTOR
            )),
        );
    }
}

/// RFC 5798 §6.1 Master_Down_Interval in the protocol's centiseconds, as
/// `vrrp::machine::master_down_interval` computes it (the daemon's timer).
/// Written out here because `config` is the leaf every other module reads:
/// it does not depend on the VRRP code. A unit test keeps the two equal.
fn master_down_interval(priority: u8, advert: Duration) -> Duration {
    let cs = u32::try_from(advert.as_millis() / 10).unwrap_or(u32::MAX);
    let skew = (256 - u32::from(priority)) * cs / 256;
    Duration::from_millis(u64::from(3 * cs + skew) * 10)
}

/// `3.6s`, `21s`, `350ms`: short and exact enough for a message.
fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.2}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    /// Two directors, two real servers, defaults: no warning.
    const BASE: &str = r#"
[cluster]
name = "web"
vip = "192.0.2.100"
mode = "dr"

[[services]]
port = 80
scheduler = "wrr"

[[directors]]
name = "d1"
address = "192.0.2.11"

[[directors]]
name = "d2"
address = "192.0.2.12"

[[real_servers]]
name = "r1"
address = "192.0.2.21"

[[real_servers]]
name = "r2"
address = "192.0.2.22"
"#;

    /// Warnings of `text`, placed.
    fn warnings(text: &str) -> Vec<Warning> {
        let spec = match parse_str("t.toml", text) {
            Ok(s) => s,
            Err(e) => panic!("test file does not validate: {e}"),
        };
        let mut w = check(&spec);
        for x in &mut w {
            x.place(text);
        }
        w
    }

    fn codes(text: &str) -> Vec<&'static str> {
        warnings(text).iter().map(|w| w.code).collect()
    }

    /// The one warning of `text`, which must have `code`.
    fn only(text: &str, code: &str) -> Warning {
        let w = warnings(text);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].code, code);
        w[0].clone()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        let at = text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        line_col(text, at).0
    }

    #[test]
    fn the_base_file_and_the_defaults_do_not_warn() {
        assert_eq!(codes(BASE), Vec::<&str>::new());
    }

    #[test]
    fn single_director() {
        let text = BASE.replace("[[directors]]\nname = \"d2\"", "[[other]]\nname = \"d2\"");
        let text = text.replace("[[other]]\nname = \"d2\"\naddress = \"192.0.2.12\"\n", "");
        let w = only(&text, "single-director");
        assert_eq!(w.key, "directors[0]");
        assert!(w.message.contains("d1"), "{}", w.message);
        assert_eq!(w.line, line_of(&text, "name = \"d1\"") - 1, "{w:?}");
    }

    #[test]
    fn single_real_server() {
        let text = BASE.replace(
            "[[real_servers]]\nname = \"r2\"\naddress = \"192.0.2.22\"\n",
            "",
        );
        let w = only(&text, "single-real-server");
        assert_eq!(w.key, "real_servers[0]");
        assert!(w.message.contains("r1"), "{}", w.message);
    }

    #[test]
    fn all_weights_zero() {
        let one = BASE.replace(
            "address = \"192.0.2.21\"",
            "address = \"192.0.2.21\"\nweight = 0",
        );
        assert_eq!(
            codes(&one),
            Vec::<&str>::new(),
            "one quiesced server is maintenance"
        );
        let all = one.replace(
            "address = \"192.0.2.22\"",
            "address = \"192.0.2.22\"\nweight = 0",
        );
        let w = only(&all, "all-weights-zero");
        assert_eq!(w.key, "real_servers[0].weight");
        assert_eq!(w.line, line_of(&all, "weight = 0"));
        assert_eq!(w.col, 10);
    }

    #[test]
    fn sync_daemon_with_a_single_director() {
        let two = BASE.replace("mode = \"dr\"", "mode = \"dr\"\nsync_daemon = true");
        assert_eq!(codes(&two), Vec::<&str>::new());
        let one = two.replace(
            "[[directors]]\nname = \"d2\"\naddress = \"192.0.2.12\"\n",
            "",
        );
        let w = warnings(&one);
        let c: Vec<_> = w.iter().map(|w| w.code).collect();
        assert_eq!(c, ["sync-daemon-single-director", "single-director"]);
        assert_eq!(w[0].key, "cluster.sync_daemon");
        assert_eq!(w[0].line, line_of(&one, "sync_daemon"));
    }

    #[test]
    fn metrics_on_every_address() {
        let local = BASE.replace(
            "mode = \"dr\"",
            "mode = \"dr\"\nmetrics = \"127.0.0.1:9100\"",
        );
        assert_eq!(codes(&local), Vec::<&str>::new());
        let all = BASE.replace("mode = \"dr\"", "mode = \"dr\"\nmetrics = \"0.0.0.0:9100\"");
        let w = only(&all, "metrics-on-every-address");
        assert!(w.message.contains("192.0.2.100:9100"), "{}", w.message);
        // ":PORT" (each director's own address) is the remedy: no warning;
        // a director's own 0.0.0.0 is warned about under its key.
        let own = BASE.replace("mode = \"dr\"", "mode = \"dr\"\nmetrics = \":9100\"");
        assert_eq!(codes(&own), Vec::<&str>::new());
        let one = BASE.replacen(
            "name = \"d1\"",
            "name = \"d1\"\nmetrics = \"0.0.0.0:9300\"",
            1,
        );
        let w = only(&one, "metrics-on-every-address");
        assert_eq!(w.key, "directors[0].metrics");
        assert_eq!(w.line, line_of(&one, "metrics ="));
        // `::` accepts IPv4 connections too: the VIP answers as well
        let six = BASE.replace("mode = \"dr\"", "mode = \"dr\"\nmetrics = \"[::]:9100\"");
        let w = only(&six, "metrics-on-every-address");
        assert_eq!(w.key, "cluster.metrics");
    }

    #[test]
    fn destination_schedulers() {
        for sc in ["dh", "lblc", "lblcr"] {
            let text = BASE.replace("\"wrr\"", &format!("\"{sc}\""));
            let w = only(&text, "destination-scheduler");
            assert_eq!(w.key, "services[0].scheduler");
            assert_eq!(w.line, line_of(&text, "scheduler ="));
        }
        for sc in ["sh", "mh", "wlc", "rr"] {
            let text = BASE.replace("\"wrr\"", &format!("\"{sc}\""));
            assert_eq!(codes(&text), Vec::<&str>::new(), "{sc}");
        }
    }

    #[test]
    fn weights_ignored_by_rr_and_lc() {
        let weighted = BASE.replace(
            "address = \"192.0.2.21\"",
            "address = \"192.0.2.21\"\nweight = 3",
        );
        assert_eq!(codes(&weighted), Vec::<&str>::new(), "wrr honours weights");
        for sc in ["rr", "lc"] {
            let text = weighted.replace("\"wrr\"", &format!("\"{sc}\""));
            let w = only(&text, "weights-ignored");
            assert!(w.message.contains("(1, 3)"), "{}", w.message);
        }
        // Equal weights, or weight 0 next to others (quiesced): nothing ignored.
        let same = BASE.replace("\"wrr\"", "\"rr\"").replace(
            "address = \"192.0.2.21\"",
            "address = \"192.0.2.21\"\nweight = 0",
        );
        assert_eq!(codes(&same), Vec::<&str>::new());
    }

    #[test]
    fn persistence_with_source_hashing() {
        let p = BASE.replace(
            "scheduler = \"wrr\"",
            "scheduler = \"wrr\"\npersistence = \"50s\"",
        );
        assert_eq!(codes(&p), Vec::<&str>::new());
        for sc in ["sh", "mh"] {
            let text = p.replace("\"wrr\"", &format!("\"{sc}\""));
            let w = only(&text, "persistence-redundant");
            assert_eq!(w.key, "services[0].persistence");
            assert_eq!(w.line, line_of(&text, "persistence ="));
        }
    }

    #[test]
    fn no_health_check_on_tcp_only() {
        let none = with_health("check = \"none\"", "");
        let w = only(&none, "no-health-check");
        assert_eq!(w.key, "services[0].health.check");
        assert_eq!(w.line, line_of(&none, "check = "));
        let udp = none.replace("port = 80\n", "port = 53\nprotocol = \"udp\"\n");
        assert_eq!(codes(&udp), Vec::<&str>::new(), "UDP has no generic check");
    }

    #[test]
    fn sorry_server_without_a_health_check() {
        let none = with_health("check = \"none\"", "")
            .replace("port = 80\n", "port = 80\nsorry_server = \"192.0.2.99\"\n");
        let w: Vec<Warning> = warnings(&none)
            .into_iter()
            .filter(|w| w.code == "sorry-server-unchecked")
            .collect();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].key, "services[0].sorry_server");
        assert_eq!(w[0].line, line_of(&none, "sorry_server = "));
        let checked = BASE.replace("port = 80\n", "port = 80\nsorry_server = \"192.0.2.99\"\n");
        assert_eq!(codes(&checked), Vec::<&str>::new());
    }

    fn with_health(health: &str, cluster_extra: &str) -> String {
        BASE.replace(
            "scheduler = \"wrr\"\n",
            &format!("scheduler = \"wrr\"\n[services.health]\n{health}\n"),
        )
        .replace("mode = \"dr\"", &format!("mode = \"dr\"\n{cluster_extra}"))
    }

    #[test]
    fn slow_health_check() {
        // The keepalived tutorial: 3 × 6s + 3s = 21s against 3 × 1s + skew.
        let text = with_health(
            "interval = \"6s\"\ntimeout = \"3s\"\nfall = 3",
            "advert_interval = \"1s\"",
        );
        let w = only(&text, "slow-health-check");
        assert_eq!(w.key, "services[0].health.interval");
        assert_eq!(w.line, line_of(&text, "interval = \"6s\""));
        // Backup d2 has priority 140: skew (256-140)·100/256 = 45 cs.
        assert!(w.message.contains("up to 21s"), "{}", w.message);
        assert!(w.message.contains("the 3.45s a director"), "{}", w.message);
        // Faster checks: 3 × 2s + 1s = 7s, 2× the failover.
        let ok = with_health("interval = \"2s\"", "advert_interval = \"1s\"");
        assert_eq!(codes(&ok), Vec::<&str>::new());
        // The defaults next to a 100 ms advert interval: 7s against 0.34s.
        let fast = BASE.replace(
            "mode = \"dr\"",
            "mode = \"dr\"\nadvert_interval = \"100ms\"",
        );
        let w = only(&fast, "slow-health-check");
        // Not written: the warning points at the service.
        assert_eq!(w.line, line_of(&fast, "[[services]]"), "{w:?}");
        // No check, nothing to be slow.
        let none = with_health("check = \"none\"", "advert_interval = \"100ms\"");
        assert_eq!(codes(&none), ["no-health-check"]);
    }

    #[test]
    fn master_down_interval_is_the_daemons() {
        for (prio, ms) in [
            (100u8, 1000u64),
            (140, 1000),
            (254, 500),
            (1, 40_000),
            (150, 10),
        ] {
            let ours = master_down_interval(prio, Duration::from_millis(ms));
            let cs = u16::try_from(ms / 10).expect("cs");
            let theirs = crate::vrrp::machine::master_down_interval(prio, cs);
            assert_eq!(
                ours,
                Duration::from_millis(u64::from(theirs) * 10),
                "{prio} {ms}"
            );
        }
    }

    #[test]
    fn unplaced_and_placed_display() {
        let text = BASE.replace("\"wrr\"", "\"dh\"");
        let spec = parse_str("t.toml", &text).expect("valid");
        let mut w = check(&spec).remove(0);
        assert_eq!(
            w.display_in("t.toml").to_string().split(": ").next(),
            Some("t.toml")
        );
        w.place(&text);
        let line = line_of(&text, "scheduler =");
        assert!(
            w.display_in("t.toml").to_string().starts_with(&format!(
                "t.toml:{line}:13: `services[0].scheduler`: scheduler dh"
            )),
            "{}",
            w.display_in("t.toml")
        );
    }

    #[test]
    fn durations_in_messages() {
        assert_eq!(secs(Duration::from_millis(3450)), "3.45s");
        assert_eq!(secs(Duration::from_millis(3600)), "3.6s");
        assert_eq!(secs(Duration::from_secs(21)), "21s");
        assert_eq!(secs(Duration::from_millis(340)), "340ms");
    }
}
