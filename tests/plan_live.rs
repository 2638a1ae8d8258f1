//! Golden plans (and the apply/destroy steps they lead to) on facts recorded
//! from real lab hosts: `tests/fixtures/facts/dr-*/HOST.facts` is exactly
//! what the facts script printed on that host (`LVSUP_FACTS_DUMP=DIR lvsup
//! plan ...`), for DR real servers fresh, converged by `lvsup apply`, and
//! after hand-made drift (sysctl file edited, VIP deleted from lo, a sysctl
//! reset, the unit disabled).
//!
//! The lab that recorded them ran on a kernel without ip_vs, so its directors
//! are recorded only as fresh hosts missing the module (the partial-failure
//! case). Directors with IPVS are those recordings plus the sections a
//! director with ip_vs prints (`director_with`), written out below so the
//! change is visible: modules available/loaded, lvsup's files, the unit,
//! `/proc/net/ip_vs` in the kernel's format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use lvsup::apply::destroy::destroy_steps;
use lvsup::apply::steps::{describe, steps_for};
use lvsup::apply::{host_facts, plan_from_facts};
use lvsup::config::{self, ClusterSpec};
use lvsup::desired::{DesiredCluster, desired_cluster};
use lvsup::observe::Facts;
use lvsup::plan::{HostError, Plan};

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn spec() -> ClusterSpec {
    let p = format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR"));
    config::load(Path::new(&p)).unwrap_or_else(|e| panic!("{e}"))
}

fn recorded(set: &str, host: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/facts/{set}/{host}.facts",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// How a director's facts differ from a recorded fresh director.
#[derive(Clone, Copy, PartialEq)]
enum Director {
    /// ip_vs available (not loaded), nothing of lvsup's.
    Fresh,
    /// What apply leaves: files, binary, modules, sysctls, unit, IPVS table.
    Converged,
    /// Converged, then `ipvsadm -d -t VIP:80 -r node2`, `ipvsadm -e ... -w 5`
    /// for node1, `ipvsadm -A -t VIP:443` (not lvsup's), and the director
    /// config edited by hand (a real server's weight: a reload applies it).
    Drifted,
    /// Converged, then `sync_daemon = true` added to director.toml's
    /// `[vrrp]` by hand (cluster.toml says nothing of it).
    VrrpEdited,
    /// Converged, then director.toml broken by hand (does not parse).
    Garbled,
}

fn director_with(d: &DesiredCluster, host: &str, how: Director) -> String {
    let base = recorded("dr-fresh", host);
    let mut s = base
        .strip_suffix("### end\n")
        .expect("end marker")
        .to_string();
    let want = d.hosts.iter().find(|h| h.name == host).expect("host");
    if how == Director::Fresh {
        s.push_str("### modules\nip_vs available\nip_vs_rr available\n### end\n");
        return s;
    }
    s.push_str("### sysctl\n");
    for k in &want.sysctls {
        let _ = writeln!(s, "{}={}", k.key, k.value);
    }
    s.push_str("### modules\nip_vs loaded\nip_vs_rr loaded\n");
    let mut sizes = String::from("### file-sizes\n");
    let mut contents = String::from("### file-contents\n");
    for f in &want.files {
        let mut content = f.content.clone();
        if how == Director::Drifted && f.path.ends_with("director.toml") {
            content = content.replacen("weight = 100", "weight = 7", 1);
        }
        if how == Director::Garbled && f.path.ends_with("director.toml") {
            content.push_str("bogus = [\n");
        }
        if how == Director::VrrpEdited && f.path.ends_with("director.toml") {
            content = content.replace("\npeers = ", "\nsync_daemon = true\npeers = ");
        }
        let _ = writeln!(sizes, "{} {}", content.len(), f.path);
        contents.push_str(&content);
    }
    s.push_str(&sizes);
    s.push_str(&contents);
    s.push('\n');
    let _ = write!(
        s,
        "### binary\n{SHA}\n### units\n\
         Id=lvsup-director-web.service\nActiveState=active\nUnitFileState=enabled\n\n\
         Id=lvsup-realserver-web.service\nActiveState=inactive\nUnitFileState=\n"
    );
    s.push_str(
        "### ipvs\nIP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
         TCP  C0A80064:0050 rr \n",
    );
    if how == Director::Drifted {
        s.push_str("  -> C0A800AB:0050      Route   5      0          0         \n");
        s.push_str("TCP  C0A80064:01BB rr \n  -> C0A800AB:01BB      Route   1      0          0         \n");
    } else {
        s.push_str("  -> C0A800AC:0050      Route   100    3          12        \n");
        s.push_str("  -> C0A800AB:0050      Route   100    2          9         \n");
    }
    s.push_str("### end\n");
    s
}

fn facts(
    spec: &ClusterSpec,
    d: &DesiredCluster,
    host: &str,
    text: &str,
) -> Result<Facts, HostError> {
    let want = d.hosts.iter().find(|h| h.name == host).expect("host");
    host_facts(spec, want, text.as_bytes(), SHA, None, true)
}

fn unreachable(host: &str) -> Result<Facts, HostError> {
    Err(HostError {
        host: host.into(),
        step: "connect".into(),
        message: format!(
            "{host}: cannot connect over SSH: failed to connect to the remote host: \
             connect to host 192.168.0.192 port 22: No route to host"
        ),
    })
}

/// The plan, then every planned host's apply steps: one golden text.
fn golden(
    spec: &ClusterSpec,
    d: &DesiredCluster,
    hosts: &[(&str, Result<Facts, HostError>)],
) -> (Plan, String) {
    let refs: Vec<(&str, &Result<Facts, HostError>)> = hosts.iter().map(|(n, f)| (*n, f)).collect();
    let plan = plan_from_facts(spec, d, &refs);
    let mut out = plan.render_text();
    out.push_str("\n--- apply steps ---\n");
    let by_name: BTreeMap<&str, &Result<Facts, HostError>> = refs.iter().copied().collect();
    for hp in &plan.hosts {
        let want = d.hosts.iter().find(|h| h.name == hp.host).expect("host");
        let Some(Ok(f)) = by_name.get(hp.host.as_str()) else {
            continue;
        };
        let steps = steps_for(spec, want, hp, f);
        let _ = writeln!(out, "{}:", hp.host);
        out.push_str(if steps.is_empty() { "(nothing)\n" } else { "" });
        out.push_str(&describe(&steps));
    }
    (plan, out)
}

#[test]
fn fresh_hosts() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let hosts = vec![
        (
            "node1",
            facts(&spec, &d, "node1", &recorded("dr-fresh", "node1")),
        ),
        (
            "node2",
            facts(&spec, &d, "node2", &recorded("dr-fresh", "node2")),
        ),
        (
            "lvs192",
            facts(
                &spec,
                &d,
                "lvs192",
                &director_with(&d, "lvs192", Director::Fresh),
            ),
        ),
        (
            "lvs191",
            facts(
                &spec,
                &d,
                "lvs191",
                &director_with(&d, "lvs191", Director::Fresh),
            ),
        ),
    ];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(plan.errors.is_empty(), "{text}");
    assert!(plan.hosts.iter().all(|h| !h.changes.is_empty()));
    // New units that are started next: `enable --now` loads them, no
    // separate daemon-reload (apply::steps).
    assert!(
        text.contains("enable and start lvsup-director-web"),
        "{text}"
    );
    assert!(!text.contains("daemon-reload"), "{text}");
    insta::assert_snapshot!(text);
}

/// A unit file edited by hand on a host where the unit runs: systemd holds
/// the old definition, so apply reloads the manager before it restarts the
/// unit (the reload a fresh host skips: `fresh_hosts`).
#[test]
fn an_edited_unit_file_is_reloaded_before_the_restart() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let converged = recorded("dr-converged", "node1");
    // Same length: the facts header gives the file's size in bytes.
    let edited = converged.replacen("real server setup", "REAL SERVER SETUP", 1);
    assert_ne!(edited, converged);
    let hosts = vec![("node1", facts(&spec, &d, "node1", &edited))];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(plan.errors.is_empty(), "{text}");
    let steps = text.split("--- apply steps ---").nth(1).unwrap_or_default();
    let reload = steps.find("systemctl daemon-reload");
    let restart = steps.find("restart lvsup-realserver-web.service");
    assert!(
        matches!((reload, restart), (Some(a), Some(b)) if a < b),
        "{text}"
    );
}

#[test]
fn converged_hosts_plan_no_changes_and_apply_no_steps() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let hosts = vec![
        (
            "node1",
            facts(&spec, &d, "node1", &recorded("dr-converged", "node1")),
        ),
        (
            "node2",
            facts(&spec, &d, "node2", &recorded("dr-converged", "node2")),
        ),
        (
            "lvs192",
            facts(
                &spec,
                &d,
                "lvs192",
                &director_with(&d, "lvs192", Director::Converged),
            ),
        ),
        (
            "lvs191",
            facts(
                &spec,
                &d,
                "lvs191",
                &director_with(&d, "lvs191", Director::Converged),
            ),
        ),
    ];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(!plan.has_changes(), "{text}");
    assert!(plan.errors.is_empty(), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn drift_by_hand() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let hosts = vec![
        (
            "node1",
            facts(&spec, &d, "node1", &recorded("dr-drift", "node1")),
        ),
        (
            "node2",
            facts(&spec, &d, "node2", &recorded("dr-drift", "node2")),
        ),
        (
            "lvs192",
            facts(
                &spec,
                &d,
                "lvs192",
                &director_with(&d, "lvs192", Director::Converged),
            ),
        ),
        (
            "lvs191",
            facts(
                &spec,
                &d,
                "lvs191",
                &director_with(&d, "lvs191", Director::Drifted),
            ),
        ),
    ];
    let (plan, text) = golden(&spec, &d, &hosts);
    // the director whose config changed is reloaded (SIGHUP), not restarted
    assert!(
        text.contains("reload lvsup-director-web.service (config changed"),
        "{text}"
    );
    assert!(!text.contains("restart lvsup-director-web"), "{text}");
    // ... and the plan says so before anyone confirms: text and JSON
    let shown = plan.render_text();
    assert!(
        shown.contains(
            "  > reload lvsup-director-web.service (SIGHUP, no VIP movement): config changed\n"
        ),
        "{shown}"
    );
    let json = serde_json::to_value(&plan).expect("json");
    let lvs191 = json["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "lvs191"))
        .expect("lvs191 in the plan");
    assert_eq!(lvs191["units"][0]["action"], "reload", "{lvs191}");
    assert_eq!(lvs191["units"][0]["vip_handover"], false, "{lvs191}");
    assert!(plan.has_changes());
    insta::assert_snapshot!(text);
}

// A hand edit of what the daemon only reads at start ([vrrp]): a SIGHUP would
// be refused and leave the file's change out of force, so apply restarts the
// daemon (graceful handover) instead of reloading it.
#[test]
fn vrrp_change_in_director_config_restarts_the_daemon() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let hosts = vec![(
        "lvs191",
        facts(
            &spec,
            &d,
            "lvs191",
            &director_with(&d, "lvs191", Director::VrrpEdited),
        ),
    )];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(plan.has_changes(), "{text}");
    assert!(text.contains("-sync_daemon = true"), "{text}");
    assert!(
        text.contains(
            "restart lvsup-director-web.service ([vrrp] changed in its config: a reload cannot apply that)"
        ),
        "{text}"
    );
    assert!(!text.contains("reload lvsup-director-web"), "{text}");
    let shown = plan.render_text();
    assert!(
        shown.contains(
            "  > restart lvsup-director-web.service (VIP handover if this director holds the VIP): [vrrp] changed in its config: a reload cannot apply that\n"
        ),
        "{shown}"
    );
    let json = serde_json::to_value(&plan).expect("json");
    let unit = &json["hosts"][0]["units"][0];
    assert_eq!(unit["action"], "restart", "{unit}");
    assert_eq!(unit["vip_handover"], true, "{unit}");
    assert!(
        unit["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("[vrrp] changed")),
        "{unit}"
    );

    // A file that does not parse: what the daemon runs is unknown, restart.
    let hosts = vec![(
        "lvs191",
        facts(
            &spec,
            &d,
            "lvs191",
            &director_with(&d, "lvs191", Director::Garbled),
        ),
    )];
    let (_, text) = golden(&spec, &d, &hosts);
    assert!(
        text.contains("restart lvsup-director-web.service (its old config does not parse"),
        "{text}"
    );
}

#[test]
fn partial_failure_unreachable_and_missing_ip_vs() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let hosts = vec![
        (
            "node1",
            facts(&spec, &d, "node1", &recorded("dr-converged", "node1")),
        ),
        (
            "node2",
            facts(&spec, &d, "node2", &recorded("dr-fresh", "node2")),
        ),
        ("lvs192", unreachable("lvs192")),
        // recorded on a kernel without ip_vs
        (
            "lvs191",
            facts(&spec, &d, "lvs191", &recorded("dr-fresh", "lvs191")),
        ),
    ];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert_eq!(plan.errors.len(), 2, "{text}");
    assert_eq!(plan.errors[1].step, "check prerequisites");
    assert!(plan.errors[1].message.contains("ip_vs"), "{text}");
    insta::assert_snapshot!(text);
    let json = serde_json::to_value(&plan).expect("json");
    assert_eq!(json["errors"][0]["host"], "lvs192");
}

#[test]
fn destroy_steps_from_converged_and_fresh_hosts() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let mut out = String::new();
    for (host, text) in [
        ("node1", recorded("dr-converged", "node1")),
        ("lvs191", director_with(&d, "lvs191", Director::Drifted)),
        ("node2", recorded("dr-fresh", "node2")),
    ] {
        let want = d.hosts.iter().find(|h| h.name == host).expect("host");
        let f = host_facts(&spec, want, text.as_bytes(), SHA, None, false).expect("facts");
        let steps = destroy_steps(&spec, want, &f);
        let _ = writeln!(out, "{host}:");
        out.push_str(if steps.is_empty() { "(nothing)\n" } else { "" });
        out.push_str(&describe(&steps));
    }
    // only lvsup's IPVS service (port 80) is removed, never the foreign 443
    assert!(out.contains("1 of them; others untouched"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn facts_of_a_recorded_real_server() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let f = facts(&spec, &d, "node1", &recorded("dr-converged", "node1")).expect("facts");
    assert_eq!(f.arch, "x86_64");
    assert_eq!(f.glibc.as_deref(), Some("2.36"));
    assert!(f.systemd);
    assert!(
        f.observed
            .addresses
            .contains(&("lo".to_string(), "192.168.0.100/32".to_string()))
    );
    assert_eq!(
        f.observed.units.get("lvsup-realserver-web.service"),
        Some(&(true, true))
    );
    assert!(!f.observed.units.contains_key("lvsup-director-web.service"));
    let prev = f.previous_sysctls.expect("previous values");
    assert_eq!(
        prev.get("net.ipv4.conf.all.arp_ignore"),
        Some(&Some("0".to_string()))
    );
}

/// The daemon's status as a director prints it (`lvsup director status
/// --json`: the captured schema-1 document), with this test's state, timeouts
/// and real servers.
fn daemon_json(state: &str, node2_health: &str) -> String {
    use lvsup::contract::status::{Status, TimeoutsStatus, TransitionRecord};
    let mut st: Status =
        serde_json::from_str(include_str!("fixtures/contract/director-status.json"))
            .expect("captured status");
    st.vrrp.state = state.into();
    st.vrrp.transitions = vec![TransitionRecord {
        at: "2026-11-21T07:00:03.612Z".into(),
        from: "Backup".into(),
        to: state.into(),
        reason: "master down timer".into(),
    }];
    st.ipvs.timeouts = Some(TimeoutsStatus {
        tcp: 3600,
        tcpfin: 120,
        udp: 300,
    });
    let svc = &mut st.services[0];
    svc.draining.clear();
    let mut node1 = svc.real_servers[0].clone();
    node1.name = "node1".into();
    node1.address = "192.168.0.171".parse().expect("ip");
    node1.health = "up".into();
    (node1.weight, node1.effective_weight) = (100, 100);
    let mut node2 = node1.clone();
    node2.name = "node2".into();
    node2.address = "192.168.0.172".parse().expect("ip");
    node2.health = node2_health.into();
    node2.effective_weight = 0;
    svc.real_servers = vec![node1, node2];
    let json = serde_json::to_string(&st).expect("json");
    // as printed: format_version first
    json.replacen('{', "{\"format_version\":1,", 1)
}

#[test]
fn status_master_since_health_weights_connections() {
    use lvsup::apply::status::{build, render};
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let with_daemon = |host: &str, state: &str| {
        let t = director_with(&d, host, Director::Converged);
        let t = t.strip_suffix("### end\n").expect("end").to_string();
        format!("{t}### daemon\n{}\n### end\n", daemon_json(state, "down"))
    };
    let f191 = facts(&spec, &d, "lvs191", &with_daemon("lvs191", "Master"));
    let f192 = unreachable("lvs192");
    let w191 = d.hosts.iter().find(|h| h.name == "lvs191").expect("host");
    let w192 = d.hosts.iter().find(|h| h.name == "lvs192").expect("host");
    let s = build(&spec, &[(w192, &f192), (w191, &f191)]);
    assert_eq!(s.master.as_deref(), Some("lvs191"));
    let text = render(&s);
    assert!(
        text.contains("MASTER since 2026-11-21T07:00:03.612Z"),
        "{text}"
    );
    // The master daemon's IPVS timeouts (ipvsadm -L --timeout).
    assert!(
        text.contains("Timeouts: tcp 3600s, tcpfin 120s, udp 300s"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

/// Regression (found in the VM e2e): with a real server down, the daemon
/// sets its kernel weight to 0; plan called that drift and apply sent SIGHUP.
/// Health-driven weights are the daemon's doing: a note, not a change.
#[test]
fn weight_zero_of_an_unhealthy_real_server_is_not_drift() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let t = director_with(&d, "lvs191", Director::Converged).replace(
        "-> C0A800AC:0050      Route   100",
        "-> C0A800AC:0050      Route   0  ",
    );
    let t = t.strip_suffix("### end\n").expect("end").to_string();
    let t = format!(
        "{t}### daemon\n{}\n### end\n",
        daemon_json("Master", "down")
    );
    let hosts = vec![("lvs191", facts(&spec, &d, "lvs191", &t))];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(!plan.has_changes(), "{text}");
    assert!(
        text.contains(
            "192.168.0.172:80 (node2) is at weight 0 in the kernel because its health is down"
        ),
        "{text}"
    );
    // without the daemon's word, weight 0 is drift
    let t = director_with(&d, "lvs191", Director::Converged).replace(
        "-> C0A800AC:0050      Route   100",
        "-> C0A800AC:0050      Route   0  ",
    );
    let hosts = vec![("lvs191", facts(&spec, &d, "lvs191", &t))];
    let (plan, text) = golden(&spec, &d, &hosts);
    assert!(plan.has_changes(), "{text}");
}

/// A converged real server on which a `lvsup verify` was killed mid-check:
/// its prohibit routes and undo record are there. The plan shows the record
/// as drift (first, as apply undoes it before anything else), in text and
/// JSON, and plans nothing else; a garbled record is drift too, said so.
#[test]
fn an_interrupted_verify_is_drift_in_the_plan() {
    let spec = spec();
    let d = desired_cluster(&spec).expect("render");
    let rec = lvsup::verify::undo::Record {
        version: 1,
        cluster: "web".into(),
        host: "node1".into(),
        what: "node1 failing its health checks (ip route add prohibit 192.168.0.191/32)".into(),
        undo: "ip route del prohibit 192.168.0.191/32".into(),
        at: 1_796_152_192,
        user: "alice".into(),
        machine: "laptop".into(),
        pid: 4242,
    };
    let dir = lvsup::layout::verify_undo_dir("web");
    let node1 = recorded("dr-converged", "node1")
        .strip_suffix("### end\n")
        .expect("end")
        .to_string()
        + &format!(
            "### verify-undo\n{dir}/1796152192-4242-3\t{}\n{dir}/x\t\u{1b}[2Jjunk\n### end\n",
            rec.render()
        );
    let hosts = vec![("node1", facts(&spec, &d, "node1", &node1))];
    let (plan, all) = golden(&spec, &d, &hosts);
    let text = plan.render_text();
    assert!(plan.has_changes(), "{text}");
    let h = &plan.hosts[0];
    assert_eq!(h.changes.len(), 2, "{text}");
    assert!(
        text.contains(
            "  ~ interrupted verify left node1 failing its health checks (ip route add prohibit 192.168.0.191/32) \
             (from 2026-12-01T19:09:52Z by alice@laptop (pid 4242); apply or verify will undo it)"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  ~ interrupted verify left an unreadable undo record {dir}/x: not an undo record"
        )),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("0 to create, 2 to update"), "{text}");
    let json = serde_json::to_value(&plan).expect("json");
    assert_eq!(json["hosts"][0]["changes"][0]["kind"], "interrupted_verify");
    assert_eq!(
        json["hosts"][0]["changes"][0]["record"],
        format!("{dir}/1796152192-4242-3")
    );
    // apply has no step for it: gather undid it before the plan was made
    assert!(all.ends_with("node1:\n(nothing)\n"), "{all}");
}
