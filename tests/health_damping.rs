//! Rise/fall damping: the first result decides, then `fall` failures take a
//! server down and `rise` successes bring it back.

use std::time::Duration;

use lvsup::director::config::HealthConfig;
use lvsup::health::damping::{Damper, Health, Transition, all_known};

fn t(from: Health, to: Health) -> Option<Transition> {
    Some(Transition { from, to })
}

#[test]
fn starts_unknown() {
    let d = Damper::new(2, 3);
    assert_eq!(d.state, Health::Unknown);
    assert!(!d.is_known());
    assert!(!d.is_up());
}

#[test]
fn first_success_is_up_at_once() {
    // A new server gets traffic after it answered once, not before, and not `rise` checks later.
    let mut d = Damper::new(3, 3);
    assert_eq!(d.observe(true), t(Health::Unknown, Health::Up));
    assert!(d.is_known() && d.is_up());
}

#[test]
fn first_failure_is_down_at_once() {
    // An unchecked server is not forgiven `fall` failures.
    let mut d = Damper::new(3, 3);
    assert_eq!(d.observe(false), t(Health::Unknown, Health::Down));
    assert!(d.is_known() && !d.is_up());
}

#[test]
fn up_goes_down_after_fall_consecutive_failures() {
    let mut d = Damper::new(2, 3);
    d.observe(true);
    assert_eq!(d.observe(false), None);
    assert_eq!(d.observe(false), None);
    assert_eq!(d.observe(false), t(Health::Up, Health::Down));
}

#[test]
fn a_success_resets_the_failure_streak() {
    let mut d = Damper::new(2, 3);
    d.observe(true);
    for _ in 0..10 {
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(true), None);
    }
    assert_eq!(d.state, Health::Up);
}

#[test]
fn down_comes_up_after_rise_consecutive_successes() {
    let mut d = Damper::new(2, 3);
    d.observe(false);
    assert_eq!(d.observe(true), None);
    assert_eq!(d.observe(true), t(Health::Down, Health::Up));
}

#[test]
fn a_failure_resets_the_success_streak() {
    let mut d = Damper::new(3, 1);
    d.observe(false);
    assert_eq!(d.observe(true), None);
    assert_eq!(d.observe(true), None);
    assert_eq!(d.observe(false), None);
    assert_eq!(d.streak, 0);
    assert_eq!(d.observe(true), None);
    assert_eq!(d.observe(true), None);
    assert_eq!(d.observe(true), t(Health::Down, Health::Up));
}

#[test]
fn rise_and_fall_of_one_flip_every_change() {
    let mut d = Damper::new(1, 1);
    assert_eq!(d.observe(true), t(Health::Unknown, Health::Up));
    assert_eq!(d.observe(false), t(Health::Up, Health::Down));
    assert_eq!(d.observe(true), t(Health::Down, Health::Up));
}

#[test]
fn zero_rise_or_fall_means_one() {
    let mut d = Damper::new(0, 0);
    assert_eq!((d.rise, d.fall), (1, 1));
    d.observe(true);
    assert_eq!(d.observe(false), t(Health::Up, Health::Down));
}

#[test]
fn from_config() {
    let h = HealthConfig {
        check: "tcp".into(),
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        fall: 3,
        rise: 2,
        port: None,
        path: None,
        expect_status: None,
        expect_body: None,
        expect_digest: None,
        tls_verify: None,
        sni: None,
        script: None,
    };
    let d = h.damper();
    assert_eq!((d.rise, d.fall, d.state), (2, 3, Health::Unknown));
}

#[test]
fn health_known_when_every_server_has_answered() {
    let mut ds = vec![Damper::new(2, 3), Damper::new(2, 3)];
    assert!(!all_known(&ds));
    ds[0].observe(true);
    assert!(!all_known(&ds));
    ds[1].observe(false);
    assert!(all_known(&ds), "known includes known-down");
    assert!(all_known(&Vec::<Damper>::new()));
}

#[test]
fn transitions_only_on_flips_over_a_long_sequence() {
    // Against a straightforward re-statement of the rule.
    let mut d = Damper::new(2, 3);
    let mut x = 0x9e37_79b9u32;
    let mut state = Health::Unknown;
    let (mut oks, mut fails) = (0, 0);
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let ok = x % 3 != 0;
        if ok {
            oks += 1;
            fails = 0;
        } else {
            fails += 1;
            oks = 0;
        }
        let want = match state {
            Health::Unknown => Some(if ok { Health::Up } else { Health::Down }),
            Health::Up if fails >= 3 => Some(Health::Down),
            Health::Down if oks >= 2 => Some(Health::Up),
            _ => None,
        };
        let got = d.observe(ok);
        match want {
            Some(to) => {
                assert_eq!(got, t(state, to));
                state = to;
                oks = 0;
                fails = 0;
            }
            None => assert_eq!(got, None),
        }
    }
}
