//! Fuzz targets, one per parser of untrusted input, each with its corpus
//! committed under `tests/fuzz/corpus/TARGET/` (seeds: kernel and keepalived
//! captures, the examples, recorded host facts).
//!
//! Why not cargo-fuzz: libFuzzer needs a nightly toolchain, which this
//! project's machines and CI do not have. Instead every target is a
//! deterministic, bounded mutation loop (xorshift; flips, interesting bytes,
//! cuts, duplications, splices between seeds, hostile numbers in text) that
//! runs in every `cargo test`; an input that panics fails the test and is
//! written to `target/fuzz-crashes/TARGET-HASH` to be added to the corpus
//! once fixed. Long runs: `LVSUP_FUZZ_SECS=600 cargo test --release --test
//! fuzz -- --test-threads=1` (each target runs that long, with a seed from
//! the clock unless `LVSUP_FUZZ_SEED` is set); docs/design/fuzzing.md records
//! how long each target has been fuzzed.

use std::net::Ipv4Addr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic and dependency-free (a crate for a dozen lines
/// is not worth it).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xfe, 0xff, b'\n', b'"', b'[', b'=', 0x1b];
const HOSTILE_TEXT: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "4294967296",
    "65536",
    "1e309",
    "nan",
    "\u{0}",
    "\u{1b}[2J",
    "$(reboot)",
    "[[",
    "\"\"\"",
    "include /dev/zero",
    "### file-sizes\n18446744073709551615 /x\n### file-contents\n",
];

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("corpus entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read seed"))
        })
        .collect();
    seeds.sort();
    // A target without seeds would fuzz nothing: fail, never pass quietly.
    assert!(
        seeds.len() >= 3,
        "corpus {target}: only {} seeds",
        seeds.len()
    );
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = input[a..b].to_vec();
                let at = rng.below(len);
                input.splice(at..at, chunk);
            }
            4 => {
                let s = HOSTILE_TEXT[rng.below(HOSTILE_TEXT.len())].as_bytes();
                let at = rng.below(len + 1);
                // replace a run of digits when there is one there, else insert
                let end = input[at..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| at + p);
                input.splice(at..end, s.iter().copied());
            }
            5 => {
                let (_, other) = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(128)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => input.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, (rng.next() & 0xff) as u8);
            }
        }
    }
}

/// Run `check` on every seed and on mutations of them: `iterations` in a
/// plain `cargo test`, or for LVSUP_FUZZ_SECS seconds. `check` says whether
/// the parser accepted the input; both outcomes must occur (a target whose
/// every mutation is rejected at the first byte tests nothing deep). Returns
/// the number of inputs tried.
fn fuzz(target: &str, iterations: usize, check: impl Fn(&[u8]) -> bool) -> usize {
    let seeds = corpus(target);
    let secs: Option<u64> = std::env::var("LVSUP_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let seed = std::env::var("LVSUP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(match secs {
            Some(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1),
            None => 0x5eed_f00d_cafe_0001 ^ target.len() as u64,
        });
    let mut rng = Rng(seed);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    let mut tried = 0usize;
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut run = |input: &[u8], tried: &mut usize| {
        *tried += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| check(input)));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => rejected += 1,
            Err(_) => {}
        }
        if outcome.is_err() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
            });
            let path = dir.join(format!("{target}-{hash:016x}"));
            let _ = std::fs::write(&path, input);
            panic!(
                "{target}: panicked on an input saved as {} (seed {seed})",
                path.display()
            );
        }
    };
    for (_, s) in &seeds {
        run(s, &mut tried);
    }
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if tried >= iterations => break,
            _ => {}
        }
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        mutate(&mut rng, &seeds, &mut input);
        run(&input, &mut tried);
    }
    if secs.is_some() {
        eprintln!("fuzz {target}: {tried} inputs ({accepted} accepted), seed {seed}");
    }
    assert!(
        accepted > 0 && rejected > 0,
        "{target}: {accepted} accepted, {rejected} rejected: the mutations do not reach both paths"
    );
    tried
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn vrrp_packets() {
    use lvsup::vrrp::packet;
    let n = fuzz("vrrp", 50_000, |b| {
        let strict = packet::decode_ipv4(b).is_ok();
        let any_ttl = packet::decode_ipv4_any_ttl(b).is_ok();
        if b.len() > 20 {
            let _ = packet::Advert::decode(
                Ipv4Addr::new(10, 0, 0, 1),
                packet::VRRP_MULTICAST_V4,
                &b[20..],
            );
        }
        strict || any_ttl
    });
    assert!(n >= 50_000);
}

#[test]
fn ipvs_netlink_messages() {
    use lvsup::ipvs::message::IpvsMessage;
    /// The id the captures were taken with (any id parses the same payload).
    const FAMILY_ID: u16 = 0x1a;
    use netlink_packet_core::ParseableParametrized;
    use netlink_packet_generic::GenlMessage;
    let n = fuzz("ipvs-netlink", 50_000, |b| {
        let _ = lvsup::ipvs::batch::parse_acks(b);
        GenlMessage::<IpvsMessage>::parse_with_param(b, FAMILY_ID).is_ok()
    });
    assert!(n >= 50_000);
}

#[test]
fn cluster_toml() {
    let n = fuzz("cluster-toml", 5_000, |b| {
        lvsup::config::parse_str("fuzz.toml", &text(b)).is_ok()
    });
    assert!(n >= 5_000);
}

#[test]
fn director_toml() {
    let n = fuzz("director-toml", 5_000, |b| {
        lvsup::director::config::DirectorConfig::parse(&text(b)).is_ok()
    });
    assert!(n >= 5_000);
}

#[test]
fn keepalived_conf() {
    use lvsup::import::keepalived::parse::{Includes, parse};
    /// Includes resolve to nothing: the fuzzer targets the parser, not the disk.
    struct NoIncludes;
    impl Includes for NoIncludes {
        fn resolve(&mut self, _: &str, _: &str) -> Result<Vec<(String, String)>, String> {
            Ok(vec![])
        }
    }
    let n = fuzz("keepalived-conf", 5_000, |b| {
        if let Ok(p) = parse("fuzz.conf", &text(b), &mut NoIncludes) {
            let input = lvsup::import::keepalived::DirectorInput {
                file: "fuzz.conf".into(),
                stmts: p.stmts,
                notes: p.notes,
                address: Some(Ipv4Addr::new(192, 0, 2, 1)),
                internal: None,
            };
            let _ = lvsup::import::keepalived::convert(&[input], true);
            true
        } else {
            false
        }
    });
    assert!(n >= 5_000);
}

#[test]
fn host_facts() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dr.toml");
    let spec = lvsup::config::load(&file).expect("examples/dr.toml");
    let desired = lvsup::desired::desired_cluster(&spec).expect("render");
    let n = fuzz("facts", 3_000, |b| {
        let _ = lvsup::observe::parse_proc_ip_vs(&text(b));
        desired
            .hosts
            .iter()
            .map(|h| lvsup::observe::parse(&spec, h, b, "0").is_ok())
            .fold(false, |a, ok| a | ok)
    });
    assert!(n >= 3_000);
}

#[test]
fn verify_facts() {
    use lvsup::observe::live::*;
    use lvsup::verify::facts::*;
    let n = fuzz("verify-facts", 5_000, |b| {
        let t = text(b);
        let _ = parse_sysctls(&t);
        let _ = parse_conn_ports(&t);
        let _ = parse_master_since_ms(&t);
        let rs = parse_rs_facts("node1", &t);
        // every reader of what verify's commands print on a host
        [
            parse_addresses(&t).is_ok(),
            parse_default_gateway(&t).is_ok_and(|g| g.is_some()),
            rs.error.is_none(),
            parse_table_output(&t).is_ok(),
            parse_vrrp_state(&t).is_some(),
            parse_epoch_ms(&t).is_some(),
        ]
        .contains(&true)
    });
    assert!(n >= 5_000);
}

#[test]
fn verify_undo_records() {
    use lvsup::verify::undo::{Record, parse_listing};
    let n = fuzz("verify-undo", 5_000, |b| {
        let t = text(b);
        let record = Record::parse(&t, "web").is_ok();
        let listed = parse_listing(&t, "web").iter().any(|l| l.record.is_ok());
        record || listed
    });
    assert!(n >= 5_000);
}

#[test]
fn lock_owner() {
    use lvsup::apply::lock::{Owner, parse_answer};
    let n = fuzz("lock-owner", 5_000, |b| {
        let t = text(b);
        // an owner file reads back whatever it holds (lenient, never fails)
        let o = Owner::parse(&t);
        let _ = o.render();
        let _ = o.to_string();
        parse_answer(&t).is_some()
    });
    assert!(n >= 5_000);
}

#[test]
fn http_status_line() {
    use lvsup::director::probe::parse_status_line;
    let n = fuzz("http-status", 50_000, |b| {
        matches!(parse_status_line(b), Ok(Some(_)))
    });
    assert!(n >= 50_000);
}

#[test]
fn metrics_request() {
    use lvsup::director::metrics::request_path;
    let n = fuzz("metrics-request", 50_000, |b| request_path(b).is_some());
    assert!(n >= 50_000);
}

/// Another cluster's files on a shared host, as the facts send them
/// (plan::shared): the input as each of them, then the conflicts with the
/// DR example's director and real server.
#[test]
fn other_clusters() {
    use lvsup::plan::shared::{conflicts, others};
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dr.toml");
    let spec = lvsup::config::load(&file).expect("examples/dr.toml");
    let desired = lvsup::desired::desired_cluster(&spec).expect("render");
    let n = fuzz("other-clusters", 5_000, |b| {
        let t = text(b);
        let files: std::collections::BTreeMap<String, String> = [
            "/etc/sysctl.d/90-lvsup-api.conf",
            "/var/lib/lvsup/api/previous-sysctl.json",
            "/etc/lvsup/api/director.toml",
            "/etc/systemd/system/lvsup-realserver-api.service",
        ]
        .into_iter()
        .map(|p| (p.to_string(), t.clone()))
        .collect();
        let o = others("web", &files);
        for h in &desired.hosts {
            let _ = conflicts(&spec, h, &o, &|_| Some("eth0".into()));
        }
        o.iter().any(|o| {
            o.director.as_ref().is_some_and(|d| d.vip.is_some())
                || !o.sysctls.is_empty()
                || !o.previous.is_empty()
                || !o.realserver_vips.is_empty()
        })
    });
    assert!(n >= 5_000);
}

/// The harness itself can fail: a parser that panics on some input is
/// reported with the input saved.
#[test]
#[should_panic(expected = "panicked on an input saved as")]
fn a_panicking_parser_is_caught() {
    fuzz("vrrp", 1_000, |b| {
        assert!(b.len() != 35, "planted bug");
        b.len() > 30
    });
}
