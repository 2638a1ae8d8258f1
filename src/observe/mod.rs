//! Observing a host: everything `plan`, `apply`, `status` and `destroy`
//! need to know about it, gathered in ONE round trip — the facts script
//! (templates/scripts/facts.sh.j2) on stdin, printing `### section` blocks —
//! and parsed by [`parse`]. Pure: `remote` is the transport that carries
//! the script and brings the output back.

pub mod live;
pub mod parse;

pub use parse::*;

use minijinja::context;

use crate::config::ClusterSpec;
use crate::desired::{self, HostState, Role};
use crate::script;

pub use crate::layout::previous_sysctl_path;

/// Every file lvsup may have put on a host of `cluster`, whatever its role.
pub fn managed_paths(cluster: &str) -> Vec<String> {
    vec![
        desired::director_config_path(cluster),
        crate::layout::fwmark_rules_path(cluster),
        desired::unit_path(&desired::director_unit(cluster)),
        desired::unit_path(&desired::realserver_unit(cluster)),
        desired::sysctl_path(cluster),
        desired::modules_path(cluster),
        previous_sysctl_path(cluster),
        desired::previous_route_path(cluster),
    ]
}

/// The facts script for one host of `spec` (templates/scripts/facts.sh.j2).
pub fn script(spec: &ClusterSpec, want: &HostState) -> String {
    let cluster = &spec.name;
    let keys: Vec<String> = want.sysctls.iter().map(|s| s.key.clone()).collect();
    let units = vec![
        desired::director_unit(cluster),
        desired::realserver_unit(cluster),
    ];
    script::render(
        "facts.sh.j2",
        context! {
            keys,
            // only the host's own: a `modprobe -n` each where not loaded
            modules => &want.modules,
            files => managed_paths(cluster),
            units,
            bin => desired::BINARY_PATH,
            nft => crate::layout::NFT_PATH,
            director => matches!(want.role, Role::Director { .. }),
            config => desired::director_config_path(cluster),
            own => crate::plan::shared::own_files(cluster),
            any => crate::plan::shared::own_files(crate::layout::ANY_CLUSTER),
            verify_undo_list => verify_undo_list_command(cluster),
        },
    )
}

/// The command listing the undo records an interrupted `lvsup verify` left
/// for `cluster` (templates/scripts/verify-undo-list.sh.j2): one line per
/// record, `PATH<TAB>CONTENT`, at most
/// [`crate::layout::VERIFY_UNDO_MAX_BYTES`] + 1 bytes of each (more is
/// refused as too large). The facts carry it; verify runs it alone; both
/// read it with `crate::verify::undo::parse_listing`.
pub fn verify_undo_list_command(cluster: &str) -> String {
    script::render_line(
        "verify-undo-list.sh.j2",
        context! {
            dir => crate::layout::verify_undo_dir(cluster),
            max => crate::layout::VERIFY_UNDO_MAX_BYTES + 1,
        },
    )
}
