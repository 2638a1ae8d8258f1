//! `[nat]`: only with mode = "nat", and then required.

use std::ops::Range;

use super::addresses::AddrUse;
use super::check::V;
use crate::config::model::{Mode, Nat};
use crate::config::raw::{Elem, RawFile};

/// `[nat]`, with the span of its gateway; the gateway joins `addrs`.
pub(super) fn nat(
    v: &mut V<'_>,
    raw: &RawFile,
    mode: Option<&(Mode, Range<usize>)>,
    addrs: &mut Vec<AddrUse>,
) -> Option<(Nat, Range<usize>)> {
    let mode_v = mode.map(|(m, _)| *m);
    let mut nat = None;
    match (&raw.nat, mode_v) {
        (Some(e), Some(m)) if m != Mode::Nat => {
            v.err(
                "nat",
                e.span.clone(),
                format!(
                    "a [nat] section is only valid with mode = \"nat\" (mode is \"{}\")",
                    m.as_str()
                ),
            )
            .hint = Some("remove [nat], or set mode = \"nat\"".into());
        }
        (None, Some(Mode::Nat)) => {
            let span = mode.map(|(_, s)| s.clone()).unwrap_or_default();
            v.err("nat", span, "mode = \"nat\" needs a [nat] section".into())
                .hint = Some("add [nat] with gateway = \"<floating internal address the real servers route through>\"".into());
        }
        (
            Some(Elem {
                span,
                value: Some(n),
            }),
            _,
        ) => {
            let gateway = v
                .required("nat", "gateway", &n.gateway, span)
                .and_then(|g| v.ipv4_net("nat.gateway", g).map(|net| (net, g.span())));
            let internal_interface = n
                .internal_interface
                .as_ref()
                .and_then(|i| v.ifname("nat.internal_interface", i));
            if let Some((g, gspan)) = gateway {
                addrs.push(AddrUse {
                    addr: g.addr(),
                    key: "nat.gateway".into(),
                    span: gspan.clone(),
                });
                nat = Some((
                    Nat {
                        gateway: g,
                        internal_interface,
                    },
                    gspan,
                ));
            }
        }
        _ => {}
    }
    nat
}
