//! The shell commands verify's failovers run on hosts to disrupt them and
//! put them back (pure), rendered from `templates/scripts/verify-*.sh.j2`.
//! Each is one line: it is shown in messages and kept in the undo records
//! ([`super::undo`]), which a later run replays as they are. What verify
//! reads on hosts is [`crate::observe::live`].

use std::net::Ipv4Addr;

use minijinja::context;

use super::analysis::FailoverMode;
use crate::script;

fn systemctl(verb: &str, unit: &str) -> String {
    script::render_line(
        "verify-unit.sh.j2",
        context! { verb, unit, freeze => false },
    )
}

/// Exit 0 when `unit` runs.
pub fn is_active(unit: &str) -> String {
    systemctl("is-active --quiet", unit)
}

/// Stop `unit` (the planned-stop failover; the backup handing the VIP back).
pub fn stop(unit: &str) -> String {
    systemctl("stop", unit)
}

/// Start `unit` again.
pub fn start(unit: &str) -> String {
    systemctl("start", unit)
}

/// Freeze `unit`'s daemon (SIGSTOP to its main process); with `clock`, then
/// print the host's clock (ms since the epoch, [`super::facts::parse_epoch_ms`]).
fn freeze(unit: &str, clock: bool) -> String {
    script::render_line(
        "verify-unit.sh.j2",
        context! { unit, freeze => true, clock },
    )
}

/// How a failover mode makes the master fail and recover: (fail, recover)
/// commands for its daemon's unit. Crash: SIGSTOP to the daemon (the unit's
/// main process: it stops sending adverts but keeps its addresses, like a
/// hung host), sent by the shell's own `kill` so that the moment is known to
/// a few ms (`systemctl kill` takes a D-Bus round trip, up to a second under
/// emulation, while the master still advertises); SIGCONT to every process
/// of the unit to resume it.
pub fn failover_commands(mode: FailoverMode, unit: &str) -> (String, String) {
    match mode {
        FailoverMode::PlannedStop => (stop(unit), start(unit)),
        FailoverMode::Crash => (
            freeze(unit, false),
            systemctl("kill --signal=SIGCONT", unit),
        ),
    }
}

/// The fail command as the failover sends it. Crash: with the master's
/// clock right after the freeze (the takeover is measured against it); a
/// planned stop is timed by the probes alone and is sent as it is.
pub fn fail_command_sent(mode: FailoverMode, unit: &str) -> String {
    match mode {
        FailoverMode::Crash => freeze(unit, true),
        FailoverMode::PlannedStop => failover_commands(mode, unit).0,
    }
}

/// The daemon's status document (`lvsup director status --json`), where the
/// director has lvsup.
pub fn director_status() -> String {
    script::render_line("verify-director-status.sh.j2", context! {})
}

fn prohibit(op: &str, sources: &[Ipv4Addr]) -> String {
    let sources: Vec<String> = sources.iter().map(Ipv4Addr::to_string).collect();
    script::render_line("verify-prohibit.sh.j2", context! { op, sources })
}

/// The prohibit routes a real server has (`ip route show type prohibit`).
pub fn prohibit_list() -> String {
    prohibit("list", &[])
}

/// Make a real server fail its health checks: a prohibit route to each of
/// the directors' check `sources`.
pub fn prohibit_add(sources: &[Ipv4Addr]) -> String {
    prohibit("add", sources)
}

/// Remove those routes again. Idempotent (it may be replayed by a later
/// run, after a crash before the routes were added): it fails only when a
/// route stays.
pub fn prohibit_del(sources: &[Ipv4Addr]) -> String {
    prohibit("del", sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands as hosts get them (and as the undo records of earlier
    /// versions hold them): one line each, the words of before.
    #[test]
    fn commands_are_one_line_each() {
        let u = "lvsup-director-web.service";
        assert_eq!(is_active(u), format!("systemctl is-active --quiet {u}"));
        assert_eq!(
            failover_commands(FailoverMode::PlannedStop, u),
            (
                format!("systemctl stop {u}"),
                format!("systemctl start {u}")
            )
        );
        let (freeze, resume) = failover_commands(FailoverMode::Crash, u);
        assert_eq!(
            freeze,
            format!(
                "pid=$(systemctl show -p MainPID --value {u}) && [ \"${{pid:-0}}\" -gt 0 ] \
                 && kill -STOP \"$pid\""
            )
        );
        assert_eq!(resume, format!("systemctl kill --signal=SIGCONT {u}"));
        assert_eq!(
            fail_command_sent(FailoverMode::Crash, u),
            format!("{freeze} && date +%s%3N")
        );
        assert_eq!(
            fail_command_sent(FailoverMode::PlannedStop, u),
            format!("systemctl stop {u}")
        );
        let a = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        assert_eq!(
            prohibit_add(&a),
            "ip route add prohibit 10.0.0.1/32 && ip route add prohibit 10.0.0.2/32"
        );
        assert_eq!(
            prohibit_del(&a),
            "ip route del prohibit 10.0.0.1/32 2>/dev/null; \
             ip route del prohibit 10.0.0.2/32 2>/dev/null; \
             [ -z \"$(ip route show type prohibit exact 10.0.0.1/32; \
             ip route show type prohibit exact 10.0.0.2/32)\" ]"
        );
        assert_eq!(prohibit_list(), "ip route show type prohibit");
        assert_eq!(
            director_status(),
            "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH; lvsup director status --json"
        );
    }
}
