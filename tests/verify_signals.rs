//! `lvsup verify` stopped by SIGTERM (a CI cancel, `kill`) or SIGHUP (a
//! closed terminal, a dropped ssh session) in the middle of its director
//! failover: like Ctrl-C, it waits for the command in flight, puts the
//! master's daemon back, removes the undo record it wrote on the host and
//! reports `interrupted` (issue 14). Its own test binary: the signals go to
//! this whole process, so no other verify may run in it. A small fake
//! cluster (loopback only): the directors' addresses and daemons, the undo
//! records; everything else fails fast.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvsup::config::{self, ClusterSpec};
use lvsup::observe::{self, live};
use lvsup::verify::exec::{ExecError, ExecOutput, HostExec};
use lvsup::verify::{self, Options, commands, undo};

#[derive(Default)]
struct State {
    /// lvs191's daemon is stopped (lvs192 then holds the VIP).
    master_stopped: bool,
    records: BTreeMap<String, String>,
    log: Vec<String>,
}

struct Fake {
    spec: ClusterSpec,
    st: Arc<Mutex<State>>,
}

fn out(code: i32, stdout: &str) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        stdout: stdout.into(),
        stderr: String::new(),
        code: Some(code),
    })
}

/// The fake matches verify's commands as lvsup renders them.
impl HostExec for Fake {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError> {
        let unit = verify::director_unit(&self.spec.name);
        if cmd == commands::stop(&unit) {
            // a stop takes a while: the signal arrives while it runs
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut st = self.st.lock().expect("state");
        st.log.push(format!("{host}: {cmd}"));
        // the paths of verify's records need no quoting: `'PATH'`
        let path = cmd.rsplit_once(' ').map(|x| x.1.trim_matches('\''));
        let record = cmd
            .split_once("printf '%s\\n' '")
            .and_then(|(_, r)| r.split_once("' > "))
            .and_then(|(body, _)| undo::Record::parse(body, &self.spec.name).ok());
        if let (Some(path), Some(rec)) = (path, &record)
            && cmd == undo::write_command(rec, path)
        {
            st.records.insert(path.into(), host.into());
            return out(0, "");
        }
        if let Some(path) = path
            && cmd == undo::remove_command(path)
        {
            st.records.remove(path);
            return out(0, "");
        }
        if cmd == observe::verify_undo_list_command(&self.spec.name) {
            return out(0, "");
        }
        let holder = if st.master_stopped {
            "lvs192"
        } else {
            "lvs191"
        };
        match cmd {
            c if c == live::addresses_command() => {
                let vip = if host == holder {
                    format!(
                        r#",{{"family":"inet","local":"{}","prefixlen":32}}"#,
                        self.spec.vip
                    )
                } else {
                    String::new()
                };
                out(
                    0,
                    &format!(
                        r#"[{{"ifname":"eth0","addr_info":[{{"family":"inet","local":"10.0.0.1","prefixlen":24}}{vip}]}}]"#
                    ),
                )
            }
            c if c == commands::is_active(&unit) => {
                out(i32::from(host == "lvs191" && st.master_stopped), "")
            }
            c if c == commands::stop(&unit) && host == "lvs191" => {
                st.master_stopped = true;
                out(0, "")
            }
            c if c == commands::start(&unit) && host == "lvs191" => {
                st.master_stopped = false;
                out(0, "")
            }
            _ => out(127, ""),
        }
    }
}

fn spec() -> ClusterSpec {
    let path = format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example");
    let mut spec = config::parse_str(&path, &text).expect("valid");
    spec.vip = std::net::Ipv4Addr::LOCALHOST;
    // the services' VIP (each service has its own, the cluster's by default)
    for s in &mut spec.services {
        s.vip = spec.vip;
    }
    // a closed port: the probes fail at once
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    spec.services[0].port = l.local_addr().expect("addr").port();
    spec.advert_interval = Duration::from_millis(100);
    spec
}

/// Run verify; once lvs191's daemon is being stopped, send `signal` to this
/// process. The report and the fake's state after.
fn interrupted_by(signal: &str) -> (verify::report::Report, Arc<Mutex<State>>) {
    let spec = spec();
    let st = Arc::new(Mutex::new(State::default()));
    let fake = Fake {
        spec: spec.clone(),
        st: st.clone(),
    };
    let watcher = {
        let st = st.clone();
        let signal = signal.to_string();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            while Instant::now() < end {
                let stopping = st
                    .lock()
                    .expect("state")
                    .log
                    .iter()
                    .any(|l| l.starts_with("lvs191: systemctl stop"));
                if stopping {
                    let ok = Command::new("kill")
                        .args([&format!("-{signal}"), &std::process::id().to_string()])
                        .status()
                        .expect("kill")
                        .success();
                    return ok;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let opts = Options {
        user: "ci".into(),
        machine: "runner".into(),
        ..Options::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = verify::run(&spec, Arc::new(fake), &opts, rt).expect("verify runs");
    assert!(
        watcher.join().expect("watcher"),
        "the master was never stopped"
    );
    (r, st)
}

#[test]
fn sigterm_and_sighup_put_the_cluster_back_like_ctrl_c() {
    for signal in ["TERM", "HUP"] {
        let (r, st) = interrupted_by(signal);
        let text = r.render_text();
        assert!(r.interrupted, "SIG{signal}: {text}");
        assert!(!r.passed, "SIG{signal}: {text}");
        assert!(r.undo_failures.is_empty(), "SIG{signal}: {text}");
        assert!(
            text.contains("interrupted: the cluster was put back as verify found it"),
            "{text}"
        );
        let st = st.lock().expect("state");
        assert!(!st.master_stopped, "SIG{signal}: {:#?}", st.log);
        assert!(st.records.is_empty(), "SIG{signal}: {:?}", st.records);
        // the record was written before the stop, the start came after it
        let at = |p: &str| st.log.iter().position(|l| l.starts_with(p));
        let write = at("lvs191: umask 077").expect("record written");
        let stop = at("lvs191: systemctl stop").expect("stopped");
        let start = at("lvs191: systemctl start").expect("started");
        assert!(write < stop && stop < start, "{:#?}", st.log);
        // the real-server failover never began
        assert!(
            !st.log.iter().any(|l| l.contains("ip route add prohibit")),
            "{:#?}",
            st.log
        );
    }
}
