//! What a director's daemon and clock print during the failovers (pure):
//! its state and last transition to Master from `lvsup director status
//! --json` (through [`crate::contract::status::Status`]), and the clock
//! stamp `date +%s%3N`. What verify observes of the cluster otherwise
//! (addresses, real servers, the IPVS table) is [`crate::observe::live`].

/// `vrrp.state` of `lvsup director status --json` ("Initialize" | "Backup" |
/// "Master"); None when the output is not that JSON.
///
/// Read through the daemon's own type ([`crate::contract::status::Status`]),
/// so a renamed field cannot go unnoticed here; a daemon of another lvsup
/// version reads too (unknown fields are ignored, later ones are optional).
pub fn parse_vrrp_state(json: &str) -> Option<String> {
    serde_json::from_str::<crate::contract::status::Status>(json.trim())
        .ok()
        .map(|st| st.vrrp.state)
}

/// When the daemon of `lvsup director status --json` last became Master
/// (its last transition to Master, in ms since the Unix epoch, its own
/// clock); None when the output is not that JSON or it never did.
pub fn parse_master_since_ms(json: &str) -> Option<u64> {
    let st = serde_json::from_str::<crate::contract::status::Status>(json.trim()).ok()?;
    let t = st
        .vrrp
        .transitions
        .iter()
        .rev()
        // Notes are recorded as Master → Master: not a transition.
        .find(|t| t.to.eq_ignore_ascii_case("master") && !t.from.eq_ignore_ascii_case("master"))?;
    let at = humantime::parse_rfc3339(&t.at).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

/// The last line of output ending in `date +%s%3N`: ms since the Unix epoch.
pub fn parse_epoch_ms(out: &str) -> Option<u64> {
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_since_is_the_last_real_transition_to_master() {
        let fixture = include_str!("../../tests/fixtures/contract/director-status.json");
        // 2026-11-21T07:00:03.400Z
        assert_eq!(parse_master_since_ms(fixture), Some(1_795_244_403_400));
        let mut v: serde_json::Value = serde_json::from_str(fixture).expect("fixture");
        let tr = &mut v["vrrp"]["transitions"];
        let note = serde_json::json!({"at": "2026-11-21T08:00:00.000Z", "from": "Master",
            "to": "Master", "reason": "a note"});
        tr.as_array_mut().expect("array").push(note);
        assert_eq!(
            parse_master_since_ms(&v.to_string()),
            Some(1_795_244_403_400)
        );
        v["vrrp"]["transitions"] = serde_json::json!([]);
        assert_eq!(parse_master_since_ms(&v.to_string()), None);
        assert_eq!(parse_master_since_ms("not json"), None);
        assert_eq!(
            parse_epoch_ms("something\n1700000000123\n"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_epoch_ms(""), None);
    }
}
