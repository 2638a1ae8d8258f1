//! Every shell script lvsup runs on a host (templates/scripts/*.sh.j2),
//! rendered with representative inputs (including values that need
//! quoting: `it's`, spaces, `$HOME`): golden snapshots, so a change to a
//! script shows up as a reviewed diff, and `shellcheck -s sh` over all of
//! them. shellcheck (Debian's `shellcheck`) must be installed: without it
//! the check fails, unless LVSUP_NO_SHELLCHECK=1 says to leave it out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use lvsup::apply::destroy::destroy_steps;
use lvsup::apply::lock;
use lvsup::apply::steps::{
    Step, StepAction, batch_script, read_sysctls_script, steps_for, upload_script,
    write_file_script,
};
use lvsup::config::{self, ClusterSpec};
use lvsup::desired::{DesiredCluster, HostState, Role, desired_cluster};
use lvsup::observe::{self, Facts, Iface, LiveService, managed_paths};
use lvsup::plan::{self, UnitAction, UnitPlan};

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
            StepAction::RecordSysctls { keys, .. } => out.push_str(&read_sysctls_script(keys)),
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
/// The values destroy restores come from the facts where they show them: the
/// record is then a plain file write, batched with the other steps (no read
/// on the host); only keys the facts could not show (net.ipv4.vs.*, created
/// when this apply loads ip_vs) are read on the host, after the modules.
#[test]
fn sysctl_record_takes_the_facts_and_reads_only_what_they_lack() {
    let (spec, d) = example("dr");
    let p = plan::offline(&spec, &d);
    let steps_with = |want: &HostState, seen: &[(&str, &str)]| {
        let mut f = Facts::default();
        for (k, v) in seen {
            f.observed.sysctls.insert(k.to_string(), v.to_string());
        }
        let hp = p
            .hosts
            .iter()
            .find(|h| h.host == want.name)
            .expect("planned");
        steps_for(&spec, want, hp, &f)
    };
    let record = |steps: &[Step]| {
        steps
            .iter()
            .find(|s| s.what.starts_with("record current values"))
            .cloned()
            .expect("a record step")
    };

    let rs = real_server(&d);
    let keys: Vec<String> = rs.sysctls.iter().map(|s| s.key.clone()).collect();
    assert!(keys.len() >= 4, "{keys:?}");
    let seen: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "0")).collect();
    let st = record(&steps_with(rs, &seen));
    let StepAction::Script { script } = &st.action else {
        panic!("facts showed every key: a plain write, got {st:?}")
    };
    for k in &keys {
        assert!(
            script.contains(&format!("\"{k}\": \"0\"")),
            "{k} not recorded:\n{script}"
        );
    }
    // Facts without the values: read on the host, every key.
    let st = record(&steps_with(rs, &[]));
    assert!(
        matches!(&st.action, StepAction::RecordSysctls { keys: k, known } if *k == keys && known.is_empty()),
        "{st:?}"
    );

    // A director: the keys the facts show are known, the others read.
    let dir = director(&d);
    let dkeys: Vec<String> = dir.sysctls.iter().map(|s| s.key.clone()).collect();
    let (vs, plain): (Vec<String>, Vec<String>) = dkeys
        .iter()
        .cloned()
        .partition(|k| k.starts_with("net.ipv4.vs."));
    assert!(!vs.is_empty(), "{dkeys:?}");
    let seen: Vec<(&str, &str)> = plain.iter().map(|k| (k.as_str(), "1")).collect();
    let st = record(&steps_with(dir, &seen));
    match &st.action {
        StepAction::RecordSysctls { keys, known } => {
            assert_eq!(*keys, vs);
            assert_eq!(known.keys().cloned().collect::<Vec<_>>(), plain);
        }
        other => panic!("ip_vs keys must be read on the host: {other:?}"),
    }
}

/// The facts script run for real (this machine's `sh`, `/proc`, `ip`):
/// its sysctl section reports each key's value as `/proc/sys` has it, and a
/// key the kernel does not have is left out.
#[test]
fn facts_script_reads_sysctls_as_proc_has_them() {
    let (spec, d) = example("dr");
    let want = real_server(&d);
    let script = observe::script(&spec, want);
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh");
    let f = observe::parse(&spec, want, &out.stdout, "")
        .unwrap_or_else(|e| panic!("{e}:\n{}", String::from_utf8_lossy(&out.stdout)));
    assert!(!want.sysctls.is_empty());
    for s in &want.sysctls {
        let path = format!("/proc/sys/{}", s.key.replace('.', "/"));
        let expected = std::fs::read_to_string(&path)
            .ok()
            .map(|v| v.trim().to_string());
        assert_eq!(
            f.observed.sysctls.get(&s.key).cloned(),
            expected,
            "{} ({path})",
            s.key
        );
    }
    // A key this kernel lacks is absent, not empty.
    let mut spec2 = spec.clone();
    spec2.name = "other".into();
    let text = script.replace(
        "'/proc/sys/net/ipv4/conf/all/arp_ignore'",
        "'/proc/sys/net/ipv4/no_such_key'",
    );
    assert_ne!(text, script, "the script names the arp_ignore path");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&text)
        .output()
        .expect("sh");
    let f = observe::parse(&spec, want, &out.stdout, "").expect("parse");
    assert_eq!(f.observed.sysctls.get("net.ipv4.conf.all.arp_ignore"), None);
}

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
                protocol: if s.fwmark.is_some() {
                    "FWM".into()
                } else {
                    s.protocol.as_str().to_uppercase()
                },
                vip: if s.fwmark.is_some() {
                    std::net::Ipv4Addr::UNSPECIFIED
                } else {
                    spec.vip
                },
                port: s.port,
                fwmark: s.fwmark.as_ref().map(|f| f.mark),
                scheduler: "rr".into(),
                persistence: None,
                netmask: None,
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
        "web",
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
        ("fwmark", "director"),
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
        ("fwmark", "director"),
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
        ("fwmark", "director"),
    ] {
        let (spec, d) = example(name);
        let want = if role == "director" {
            director(&d)
        } else {
            real_server(&d)
        };
        insta::assert_snapshot!(format!("facts_{name}_{role}"), observe::script(&spec, want));
    }
}

/// A director whose cluster dropped its fwmark services: apply removes the
/// rules file and lvsup's nftables table (plan shows it as a file removal).
#[test]
fn apply_steps_fwmark_services_gone() {
    let (spec, d) = example("dr");
    let want = director(&d);
    let mut obs = lvsup::plan::Observed::default();
    for f in &want.files {
        obs.files.insert(f.path.clone(), f.content.clone());
    }
    obs.files.insert(
        lvsup::desired::fwmark_rules_path(&spec.name),
        "table ip lvsup_web {}\n".into(),
    );
    let hp = plan::diff_host(&spec.name, want, &obs);
    let removal: Vec<&str> = hp
        .changes
        .iter()
        .filter(|c| c.action == plan::Action::Delete)
        .map(|c| c.summary.as_str())
        .collect();
    assert_eq!(
        removal,
        [
            "remove file /etc/lvsup/web/fwmark.nft and nftables table ip lvsup_web (no fwmark service left)"
        ]
    );
    let steps = steps_for(&spec, want, &hp, &Facts::default());
    let out: Vec<Step> = steps
        .into_iter()
        .filter(|s| s.what.contains("nftables"))
        .collect();
    insta::assert_snapshot!(scripts(&out));
}

#[test]
fn lock_script_and_argv() {
    let o = lock::owner("o'brien", "lap top", 4242, "apply", "2026-12-01T16:42:35Z");
    let argv = lock::argv("web", 30, &o);
    insta::assert_snapshot!("lock_argv", argv.join("\n---\n"));
    insta::assert_snapshot!("lock_script", lock::script());
}

/// The lab's container launcher (run locally, by `lvsup lab up`).
#[test]
fn lab_launcher() {
    let args: Vec<String> = [
        "systemd-nspawn",
        "-D",
        "/var/lib/lvsup-lab/it's here/root",
        "-M",
        "lvs1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let with = lvsup::lab::launcher_script(&args, &["/sys/fs/cgroup/lvsup-lab/lvs1".into()]);
    let without = lvsup::lab::launcher_script(&args, &[]);
    insta::assert_snapshot!(format!("{with}\n---\n{without}"));
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

/// Two VIPs (examples/two-vips.toml): the DR real server's unit puts every
/// VIP of the cluster on `lo` (and takes each off at stop), whichever
/// services it serves; the director.toml names the service with its own VIP
/// and lists only the real servers of each service, at their weight there.
#[test]
fn two_vips_real_server_unit_and_director_toml() {
    let (_, d) = example("two-vips");
    let node2 = d.hosts.iter().find(|h| h.name == "node2").expect("node2");
    let unit = node2
        .files
        .iter()
        .find(|f| f.path.ends_with(".service"))
        .expect("unit file");
    insta::assert_snapshot!("two_vips_real_server_unit", unit.content.clone());
    let toml = director(&d)
        .files
        .iter()
        .find(|f| f.path.ends_with("director.toml"))
        .expect("director.toml");
    insta::assert_snapshot!("two_vips_director_toml", toml.content.clone());
}

/// What `lvsup verify` runs on hosts, each command through the function
/// that renders it: (template, command). The undo record carries values
/// that need quoting.
fn verify_commands() -> Vec<(&'static str, String)> {
    use lvsup::observe::live;
    use lvsup::verify::analysis::FailoverMode;
    use lvsup::verify::{commands, undo};
    let unit = lvsup::layout::director_unit("web");
    let (freeze, resume) = commands::failover_commands(FailoverMode::Crash, &unit);
    let sources: Vec<std::net::Ipv4Addr> = vec![
        "192.168.0.191".parse().expect("addr"),
        "10.0.0.2".parse().expect("addr"),
    ];
    let path = undo::path("web", "1796152192-4242-3");
    let rec = undo::Record {
        version: undo::VERSION,
        cluster: "web".into(),
        host: "node1".into(),
        what: "it's $HOME `id` stopped".into(),
        undo: commands::start(&unit),
        at: 1_796_152_192,
        user: "o'brien".into(),
        machine: "lap top".into(),
        pid: 4242,
    };
    vec![
        ("verify-addresses.sh.j2", live::addresses_command()),
        ("verify-realserver.sh.j2", live::rs_facts_command()),
        ("verify-ipvs-table.sh.j2", live::table_command()),
        (
            "verify-conn-ports.sh.j2",
            live::conn_ports_command("udp", "192.168.0.100:53".parse().expect("addr")),
        ),
        ("verify-unit.sh.j2", commands::is_active(&unit)),
        ("verify-unit.sh.j2", commands::stop(&unit)),
        ("verify-unit.sh.j2", commands::start(&unit)),
        ("verify-unit.sh.j2", freeze),
        (
            "verify-unit.sh.j2",
            commands::fail_command_sent(FailoverMode::Crash, &unit),
        ),
        ("verify-unit.sh.j2", resume),
        ("verify-director-status.sh.j2", commands::director_status()),
        ("verify-prohibit.sh.j2", commands::prohibit_list()),
        ("verify-prohibit.sh.j2", commands::prohibit_add(&sources)),
        ("verify-prohibit.sh.j2", commands::prohibit_del(&sources)),
        ("verify-undo-write.sh.j2", undo::write_command(&rec, &path)),
        ("verify-undo-remove.sh.j2", undo::remove_command(&path)),
        (
            "verify-undo-replay.sh.j2",
            undo::replay_command(&rec.undo, &path),
        ),
        (
            "verify-undo-list.sh.j2",
            observe::verify_undo_list_command("web"),
        ),
    ]
}

#[test]
fn verify_commands_golden() {
    let mut out = String::new();
    for (name, cmd) in verify_commands() {
        let _ = writeln!(out, "### {name}\n{}", cmd.trim_end());
    }
    insta::assert_snapshot!(out);
}

/// Every template rendered through the code that uses it: (template, script).
fn rendered() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, s: String| out.push((name.to_string(), s));
    for (name, cmd) in verify_commands() {
        add(name, format!("{cmd}\n"));
    }
    add(
        "write-file.sh.j2",
        write_file_script("/etc/it's here/x y.conf", 0o640, "a 'b' $HOME\n"),
    );
    add(
        "upload.sh.j2",
        upload_script("web", "/usr/local/bin/it's lvsup", 12345, &"0".repeat(64)),
    );
    let mut steps: Vec<Step> = Vec::new();
    for (name, role) in [
        ("dr", "director"),
        ("dr", "realserver"),
        ("nat", "director"),
        ("nat", "realserver"),
        ("tun", "realserver"),
        ("minimal", "director"),
        ("fwmark", "director"),
    ] {
        let (spec, d) = example(name);
        let want = if role == "director" {
            director(&d)
        } else {
            real_server(&d)
        };
        steps.extend(fresh_steps(&spec, &d, want));
        let f = everything_present(&spec, want);
        steps.extend(destroy_steps(&spec, want, &f));
        add("facts.sh.j2", observe::script(&spec, want));
        // The NAT real server's unit lines, as its `/bin/sh -c` gets them.
        for file in &want.files {
            for l in file.content.lines() {
                let Some((key, cmd)) = l
                    .split_once("=/bin/sh -c '")
                    .or_else(|| l.split_once("=-/bin/sh -c '"))
                else {
                    continue;
                };
                let body = cmd
                    .strip_suffix('\'')
                    .expect("closing quote")
                    .replace("$$", "$");
                match key {
                    "ExecStart" => add("nat-route-up.sh.j2", body),
                    "ExecStop" => add("nat-route-down.sh.j2", body),
                    // lvsup-realserver.service.j2's own sysctl line (not a
                    // template of templates/scripts, checked all the same)
                    _ => add("lvsup-realserver.service.j2", body),
                }
            }
        }
    }
    // A unit file that was on the host before with another content: the
    // step list gets its daemon-reload (a fresh host's does not).
    {
        let (spec, d) = example("dr");
        let want = real_server(&d);
        let p = plan::offline(&spec, &d);
        let hp = p
            .hosts
            .iter()
            .find(|h| h.host == want.name)
            .expect("planned");
        let mut f = Facts::default();
        for u in &want.units {
            f.observed
                .files
                .insert(lvsup::desired::unit_path(&u.name), "old\n".into());
        }
        let reload: Vec<Step> = steps_for(&spec, want, hp, &f)
            .into_iter()
            .filter(|s| s.what == "systemctl daemon-reload")
            .collect();
        assert_eq!(reload.len(), 1, "an existing unit file changed: one reload");
        steps.extend(reload);
    }
    for st in steps {
        let name = match &st.action {
            StepAction::UploadBinary { .. } => continue,
            StepAction::RecordSysctls { keys, .. } => {
                add("read-sysctls.sh.j2", read_sysctls_script(keys));
                continue;
            }
            StepAction::Script { .. } => {
                let w = st.what.as_str();
                if w.starts_with("write ") {
                    "write-file.sh.j2"
                } else if w.starts_with("load kernel modules") {
                    "modprobe.sh.j2"
                } else if w.starts_with("apply sysctls") {
                    "apply-sysctls.sh.j2"
                } else if w == "systemctl daemon-reload" {
                    "daemon-reload.sh.j2"
                } else if w.starts_with("enable")
                    || w.starts_with("restart ")
                    || w.starts_with("reload ")
                {
                    "unit.sh.j2"
                } else if w.starts_with("stop and disable") {
                    "stop-unit.sh.j2"
                } else if w.starts_with("remove lvsup's IPVS services") {
                    "remove-ipvs.sh.j2"
                } else if w.starts_with("release floating addresses") {
                    "release-addresses.sh.j2"
                } else if w.starts_with("remove nftables table") {
                    "remove-fwmark.sh.j2"
                } else if w.starts_with("remove /usr/local/bin/lvsup") {
                    "remove-binary.sh.j2"
                } else if w.starts_with("remove ") {
                    "remove-files.sh.j2"
                } else if w.starts_with("restore ") {
                    "restore-sysctls.sh.j2"
                } else {
                    panic!("which template renders the step {w:?}?")
                }
            }
        };
        if let StepAction::Script { script } = st.action {
            add(name, script);
        }
    }
    // Two fresh-host steps in one batch, as apply sends them.
    let a = write_file_script("/etc/it's here/x y.conf", 0o640, "a 'b' $HOME\n");
    add(
        "batch.sh.j2",
        batch_script(&[(3, a.as_str()), (4, "systemctl daemon-reload\n")]),
    );
    add("lock.sh.j2", lock::script());
    let args: Vec<String> = vec!["systemd-nspawn".into(), "-D".into(), "/it's here".into()];
    let v1: Vec<std::path::PathBuf> = ["systemd", "unified"]
        .map(|h| format!("/sys/fs/cgroup/{h}/lvsup-lab/a b").into())
        .to_vec();
    for cg in [vec!["/sys/fs/cgroup/lvsup-lab/a b".into()], v1, Vec::new()] {
        add("lab-launch.sh.j2", lvsup::lab::launcher_script(&args, &cg));
    }
    out
}

/// Findings shellcheck may keep quiet about, per template, each with why.
/// (One-line scripts cannot carry a `# shellcheck disable=` comment.)
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "nat-route-down.sh.j2",
        "SC2086",
        "`ip route replace $r`: $r is a whole recorded route (`default via 10.0.0.1 dev eth0 ...`), split into words on purpose",
    ),
    (
        "verify-undo-write.sh.j2",
        "SC2016",
        "the record is data, quoted: a $ in it stays a $ (one line: the fakes of tests/verify_*.rs read it back)",
    ),
];

#[test]
fn every_template_is_rendered_and_passes_shellcheck() {
    // Every template of templates/scripts/ is rendered here (and compiled in).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/scripts");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("templates/scripts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let all = rendered();
    let mut checked: Vec<String> = all
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.ends_with(".sh.j2"))
        .collect();
    checked.sort();
    checked.dedup();
    assert_eq!(
        on_disk, checked,
        "templates/scripts/ and the scripts rendered by tests/scripts.rs differ: \
         render a new template in `rendered()`"
    );
    let compiled: Vec<&str> = lvsup::script::TEMPLATES.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        on_disk, compiled,
        "src/script.rs TEMPLATES and templates/scripts/ differ"
    );

    if std::env::var("LVSUP_NO_SHELLCHECK").as_deref() == Ok("1") {
        eprintln!("LVSUP_NO_SHELLCHECK=1: shellcheck left out");
        return;
    }
    // One shellcheck run over every rendering: one process start, not thirty.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (i, (name, script)) in all.iter().enumerate() {
        let mut text = String::new();
        for (_, code, _) in ALLOWED.iter().filter(|(n, _, _)| n == name) {
            let _ = writeln!(text, "# shellcheck disable={code}");
        }
        text.push_str(script);
        let p = tmp.path().join(format!("{i:02}-{name}.sh"));
        std::fs::write(&p, text).expect("write");
        files.push(p);
    }
    let out = match Command::new("shellcheck")
        .args(["-s", "sh", "-f", "gcc"])
        .args(&files)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run shellcheck ({e}): install it (Debian: apt-get install shellcheck), \
             or set LVSUP_NO_SHELLCHECK=1 to leave this check out"
        ),
    };
    assert!(
        out.status.success(),
        "shellcheck found problems in rendered scripts ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
