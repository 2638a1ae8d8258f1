//! Every shell script lvsup runs on a host, rendered with representative
//! inputs (including values that need quoting: `it's`, spaces, `$HOME`):
//! golden snapshots, so a change to a script shows up as a reviewed diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use lvsup::apply::destroy::destroy_steps;
use lvsup::apply::lock;
use lvsup::apply::steps::{
    Step, StepAction, read_sysctls_script, steps_for, upload_script, write_file_script,
};
use lvsup::config::{self, ClusterSpec};
use lvsup::desired::{DesiredCluster, HostState, Role, desired_cluster};
use lvsup::plan::{self, UnitAction, UnitPlan};
use lvsup::remote::facts::{self, Facts, Iface, LiveService, managed_paths};

fn example(name: &str) -> (ClusterSpec, DesiredCluster) {
    let p = format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let spec = config::load(Path::new(&p)).unwrap_or_else(|e| panic!("{e}"));
    let d = desired_cluster(&spec).expect("render");
    (spec, d)
}

fn director(d: &DesiredCluster) -> &HostState {
    d.hosts
        .iter()
        .find(|h| matches!(h.role, Role::Director { master: true, .. }))
        .expect("a master director")
}

fn real_server(d: &DesiredCluster) -> &HostState {
    d.hosts
        .iter()
        .find(|h| h.role == Role::RealServer)
        .expect("a real server")
}

/// The steps as the runner sees them: what, then the script.
fn scripts(steps: &[Step]) -> String {
    let mut out = String::new();
    for st in steps {
        let _ = writeln!(out, "### {}", st.what);
        match &st.action {
            StepAction::Script { script } => out.push_str(script),
            StepAction::UploadBinary { path } => {
                let _ = writeln!(out, "(upload_script, data on stdin, to {path})");
            }
            StepAction::RecordSysctls { keys } => out.push_str(&read_sysctls_script(keys)),
        }
    }
    out
}

/// The apply steps of `want` on a fresh host (what an offline plan plans).
fn fresh_steps(spec: &ClusterSpec, d: &DesiredCluster, want: &HostState) -> Vec<Step> {
    let p = plan::offline(spec, d);
    let hp = p
        .hosts
        .iter()
        .find(|h| h.host == want.name)
        .expect("planned");
    steps_for(spec, want, hp, &Facts::default())
}

/// A host where everything lvsup puts there is present: both units, every
/// managed file, the binary, lvsup's IPVS services, the floating addresses,
/// recorded sysctls (one whose value needs quoting, one the host lacked).
fn everything_present(spec: &ClusterSpec, want: &HostState) -> Facts {
    let c = &spec.name;
    let mut f = Facts {
        binary_sha256: Some("0".repeat(64)),
        ..Facts::default()
    };
    for u in [
        lvsup::desired::director_unit(c),
        lvsup::desired::realserver_unit(c),
    ] {
        f.observed.units.insert(u, (true, true));
    }
    for p in managed_paths(c) {
        f.observed.files.insert(p, String::new());
    }
    f.ipvs = Some(
        spec.services
            .iter()
            .map(|s| LiveService {
                protocol: s.protocol.as_str().to_uppercase(),
                vip: spec.vip,
                port: s.port,
                scheduler: "rr".into(),
                persistence: None,
                destinations: Vec::new(),
            })
            .collect(),
    );
    f.interfaces = vec![Iface {
        name: "eth0".into(),
        up: true,
        addresses: want
            .addresses
            .iter()
            .map(|a| a.address)
            .chain(["192.168.0.191/24".parse().expect("net")])
            .collect(),
    }];
    let mut prev = BTreeMap::new();
    prev.insert("net.ipv4.conf.all.arp_ignore".to_string(), Some("0".into()));
    prev.insert("net.ipv4.odd".to_string(), Some("it's $HOME 1".into()));
    prev.insert("net.ipv4.vs.missing".to_string(), None);
    f.previous_sysctls = Some(prev);
    f
}

#[test]
fn write_file_quotes_path_and_content() {
    insta::assert_snapshot!(write_file_script(
        "/etc/lvsup/it's here/x y.conf",
        0o640,
        "key = \"it's\"\n$HOME `id` \\n '' end\n"
    ));
}

#[test]
fn upload_checks_size_and_hash() {
    insta::assert_snapshot!(upload_script(
        "/usr/local/bin/it's lvsup",
        12345,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    ));
}

#[test]
fn read_sysctls_quotes_keys() {
    insta::assert_snapshot!(read_sysctls_script(&[
        "net.ipv4.ip_forward".into(),
        "it's odd".into()
    ]));
}

#[test]
fn apply_steps_fresh_hosts() {
    for (name, role) in [
        ("dr", "director"),
        ("dr", "realserver"),
        ("nat", "director"),
        ("nat", "realserver"),
        ("tun", "realserver"),
    ] {
        let (spec, d) = example(name);
        let want = if role == "director" {
            director(&d)
        } else {
            real_server(&d)
        };
        let out = scripts(&fresh_steps(&spec, &d, want));
        insta::assert_snapshot!(format!("apply_steps_{name}_{role}"), out);
    }
}

#[test]
fn apply_steps_enable_restart_reload() {
    let (spec, d) = example("dr");
    let want = director(&d);
    let mut p = plan::offline(&spec, &d);
    let hp = p
        .hosts
        .iter_mut()
        .find(|h| h.host == want.name)
        .expect("planned");
    let unit = |name: String, enable, action, why: &str| UnitPlan {
        unit: name,
        enable,
        action,
        why: why.into(),
        vip_handover: false,
    };
    hp.units = vec![
        unit(
            lvsup::desired::director_unit(&spec.name),
            true,
            Some(UnitAction::Restart),
            "vrrp changed",
        ),
        unit(
            lvsup::desired::realserver_unit(&spec.name),
            false,
            Some(UnitAction::Reload),
            "config changed",
        ),
        unit("only-enable.service".into(), true, None, ""),
    ];
    let steps = steps_for(&spec, want, hp, &Facts::default());
    let units: Vec<Step> = steps
        .into_iter()
        .filter(|s| {
            s.what.starts_with("enable")
                || (s.what.starts_with("re") && s.what.contains(".service"))
        })
        .collect();
    insta::assert_snapshot!(scripts(&units));
}

#[test]
fn destroy_steps_everything_present() {
    for (name, role) in [
        ("dr", "director"),
        ("dr", "realserver"),
        ("nat", "director"),
    ] {
        let (spec, d) = example(name);
        let want = if role == "director" {
            director(&d)
        } else {
            real_server(&d)
        };
        let f = everything_present(&spec, want);
        let out = scripts(&destroy_steps(&spec, want, &f));
        insta::assert_snapshot!(format!("destroy_steps_{name}_{role}"), out);
    }
}

#[test]
fn facts_scripts() {
    for (name, role) in [
        ("dr", "director"),
        ("dr", "realserver"),
        ("nat", "director"),
        ("tun", "realserver"),
    ] {
        let (spec, d) = example(name);
        let want = if role == "director" {
            director(&d)
        } else {
            real_server(&d)
        };
        insta::assert_snapshot!(format!("facts_{name}_{role}"), facts::script(&spec, want));
    }
}

#[test]
fn lock_script_and_argv() {
    let o = lock::owner("o'brien", "lap top", 4242, "apply", "2026-12-01T16:42:35Z");
    let argv = lock::argv("web", 30, &o);
    insta::assert_snapshot!("lock_argv", argv.join("\n---\n"));
    insta::assert_snapshot!("lock_script", lock::script());
}

/// The NAT real server's unit: its ExecStartPre/ExecStopPost `/bin/sh -c`
/// lines are scripts too (the default route via the directors).
#[test]
fn nat_real_server_unit() {
    let (_, d) = example("nat");
    let want = real_server(&d);
    let unit = want
        .files
        .iter()
        .find(|f| f.path.ends_with(".service"))
        .expect("unit file");
    insta::assert_snapshot!(unit.content.clone());
}
