//! Metrics listeners: `[cluster] metrics` and `[[directors]] metrics`.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::check::V;
use crate::config::model::MetricsListen;

/// A metrics listener `"ADDRESS:PORT"` (`key` names it in errors).
pub(super) fn metrics_addr(
    v: &mut V<'_>,
    key: &str,
    m: &Spanned<String>,
) -> Option<std::net::SocketAddr> {
    match m.get_ref().parse::<std::net::SocketAddr>() {
        Ok(a) => metrics_port(v, key, m, &a.port().to_string()).map(|_| a),
        Err(_) => {
            v.err(
                key,
                m.span(),
                format!(
                    "metrics must be ADDRESS:PORT or :PORT, got \"{}\"",
                    m.get_ref()
                ),
            )
            .hint = Some(
                "e.g. \"127.0.0.1:9100\" (a local agent), \":9100\" (each director's own \
                 address) or a management address; leave it out for no metrics listener"
                    .into(),
            );
            None
        }
    }
}

/// The port of a metrics listener: 1024..=65535.
pub(super) fn metrics_port(
    v: &mut V<'_>,
    key: &str,
    m: &Spanned<String>,
    port: &str,
) -> Option<u16> {
    match port.parse::<u16>() {
        Ok(p) if p >= 1024 => Some(p),
        Ok(p) => {
            v.err(key, m.span(), format!("metrics port {p} is below 1024"))
                .hint = Some(
                "the director unit keeps only CAP_NET_ADMIN and CAP_NET_RAW, so it \
                 cannot bind a privileged port: use e.g. 9100"
                    .into(),
            );
            None
        }
        Err(_) => {
            v.err(
                key,
                m.span(),
                format!(
                    "metrics must be ADDRESS:PORT or :PORT, got \"{}\"",
                    m.get_ref()
                ),
            )
            .hint = Some("e.g. \":9100\" or \"127.0.0.1:9100\"".into());
            None
        }
    }
}

/// `[cluster] metrics`: `":PORT"` on each director's own address, or one
/// `"ADDRESS:PORT"` that is not the VIP.
pub(super) fn cluster_metrics(
    v: &mut V<'_>,
    m: &Spanned<String>,
    vip: Option<Ipv4Addr>,
) -> Option<MetricsListen> {
    if let Some(port) = m.get_ref().strip_prefix(':') {
        return metrics_port(v, "cluster.metrics", m, port).map(MetricsListen::OwnAddress);
    }
    let a = metrics_addr(v, "cluster.metrics", m)?;
    if let Some(vip) = vip
        && a.ip() == std::net::IpAddr::V4(vip)
    {
        v.err("cluster.metrics", m.span(), format!("metrics must not listen on the VIP {vip}: every client of the cluster could read it"))
            .hint = Some("\":9100\" listens on each director's own address".into());
        return None;
    }
    Some(MetricsListen::Address(a))
}

/// `[[directors]] metrics`: `"ADDRESS:PORT"`, not the VIP.
pub(super) fn director_metrics(
    v: &mut V<'_>,
    key: &str,
    m: &Spanned<String>,
    vip: Option<Ipv4Addr>,
) -> Option<std::net::SocketAddr> {
    let a = metrics_addr(v, key, m)?;
    if let Some(vip) = vip
        && a.ip() == std::net::IpAddr::V4(vip)
    {
        v.err(key, m.span(), format!("metrics must not listen on the VIP {vip}: every client of the cluster could read it"))
            .hint = Some("use the director's own address, 127.0.0.1, or a management address".into());
        return None;
    }
    Some(a)
}

/// No metrics listener on the VIP of a service (`[[services]] vip`): it
/// floats with the cluster's VIP, so every client of that service could
/// read the metrics, as on the cluster's VIP (refused above).
pub(super) fn not_on_service_vips(
    v: &mut V<'_>,
    raw: &crate::config::raw::RawFile,
    services: &[crate::config::model::Service],
    cluster_vip: Option<Ipv4Addr>,
) {
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| c.value.as_ref())
        .and_then(|c| c.metrics.as_ref())
        .map(|m| ("cluster.metrics".to_string(), m));
    let directors = raw
        .directors
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, d)| {
            Some((
                format!("directors[{i}].metrics"),
                d.value.as_ref()?.metrics.as_ref()?,
            ))
        });
    for (key, m) in cluster.into_iter().chain(directors) {
        // unreadable ones are reported already; ":PORT" is each director's own address
        let Ok(a) = m.get_ref().parse::<std::net::SocketAddr>() else {
            continue;
        };
        let Some(s) = services
            .iter()
            .find(|s| Some(s.vip) != cluster_vip && a.ip() == std::net::IpAddr::V4(s.vip))
        else {
            continue;
        };
        v.err(
            &key,
            m.span(),
            format!(
                "metrics must not listen on the VIP {} of service \"{}\": every client of the cluster could read it",
                s.vip, s.name
            ),
        )
        .hint = Some(
            "\":9100\" listens on each director's own address; or 127.0.0.1 or a management address"
                .into(),
        );
    }
}
