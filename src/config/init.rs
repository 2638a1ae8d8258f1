//! `lvsup init`: an annotated `cluster.toml` for one forwarding mode, from
//! `templates/init/cluster.toml.j2` (compiled in). Every key of the contract
//! is there with a sentence saying what it is, its default and its allowed
//! values; optional keys are commented out. Addresses are documentation
//! placeholders (RFC 5737) so the file validates as it is.

use std::io::Write;
use std::path::Path;

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use super::model::Mode;

const TEMPLATE: &str = include_str!("../../templates/init/cluster.toml.j2");

#[derive(Serialize)]
struct Host {
    name: &'static str,
    address: String,
    priority: u8,
    internal: &'static str,
}

/// The annotated file for `mode`.
pub fn render(mode: Mode) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // `{% if %}` lines leave no blank line behind (jinja's trim/lstrip).
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    // Real servers on the VIP's subnet (DR), on another one (TUN: they may
    // even be at another site; NAT: the internal subnet).
    let (title, rs_net) = match mode {
        Mode::Dr => ("direct routing (LVS/DR)", "192.0.2"),
        Mode::Tun => ("IP tunnelling (LVS/TUN)", "198.51.100"),
        Mode::Nat => ("network address translation (LVS/NAT)", "198.51.100"),
    };
    let directors = [
        Host {
            name: "lvs1",
            address: "192.0.2.11/24".into(),
            priority: 150,
            internal: "198.51.100.251/24",
        },
        Host {
            name: "lvs2",
            address: "192.0.2.12/24".into(),
            priority: 140,
            internal: "198.51.100.252/24",
        },
    ];
    let real_servers = ["node1", "node2"].iter().zip(21..).map(|(name, n)| Host {
        name,
        address: format!("{rs_net}.{n}/24"),
        priority: 0,
        internal: "",
    });
    let real_servers: Vec<Host> = real_servers.collect();
    env.render_str(
        TEMPLATE,
        context! {
            mode => mode.as_str(),
            title,
            directors => Value::from(Serde(&directors)),
            real_servers => Value::from(Serde(&real_servers)),
        },
    )
}

/// Write `text` to a new file at `path`; an existing file is never touched.
pub fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists; lvsup does not overwrite it (remove it, or pass another -o)",
                    path.display()
                )
            } else {
                anyhow::anyhow!("cannot create {}: {e}", path.display())
            }
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::{self, fields};

    const MODES: [Mode; 3] = [Mode::Dr, Mode::Tun, Mode::Nat];

    fn text(mode: Mode) -> String {
        match render(mode) {
            Ok(t) => t,
            Err(e) => panic!("render {mode:?}: {e:#}"),
        }
    }

    #[test]
    fn every_mode_validates_without_warnings() {
        for mode in MODES {
            let t = text(mode);
            let checked = match crate::config::check_str("init.toml", &t) {
                Ok(c) => c,
                Err(e) => panic!("{mode:?}:\n{e}\n{t}"),
            };
            assert_eq!(checked.spec.mode, mode);
            assert_eq!(checked.warnings, vec![], "{mode:?}");
        }
    }

    /// Every key of the schema is in the file, set or commented out, with
    /// a comment line above it. NAT-only keys appear in the NAT file only.
    #[test]
    fn every_key_is_there_and_explained() {
        let sections: [(&str, &[&str]); 7] = [
            ("cluster", fields::<raw::RawCluster>()),
            ("ssh", fields::<raw::RawSsh>()),
            ("services", fields::<raw::RawService>()),
            ("services.health", fields::<raw::RawHealth>()),
            ("directors", fields::<raw::RawDirector>()),
            ("real_servers", fields::<raw::RawRealServer>()),
            ("nat", fields::<raw::RawNat>()),
        ];
        // `key = ` or `# key = ` at the start of a line.
        let key_of = |l: &str| -> Option<String> {
            let l = l.strip_prefix("# ").unwrap_or(l);
            let (k, _) = l.split_once(" = ")?;
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
                .then(|| k.to_string())
        };
        for mode in MODES {
            let t = text(mode);
            let lines: Vec<&str> = t.lines().collect();
            for (section, keys) in sections {
                // The lines of the section's first table, header excluded.
                let header =
                    |l: &&str| *l == format!("[{section}]") || *l == format!("[[{section}]]");
                let body: Vec<&str> = lines
                    .iter()
                    .skip_while(|l| !header(l))
                    .skip(1)
                    .take_while(|l| !l.starts_with('['))
                    .copied()
                    .collect();
                for key in keys.iter().filter(|k| **k != "health") {
                    let nat_only = matches!(
                        (section, *key),
                        ("nat", _) | ("directors", "internal_address") | ("real_servers", "port")
                    );
                    let at = body.iter().position(|l| key_of(l).as_deref() == Some(key));
                    if nat_only && mode != Mode::Nat {
                        assert!(at.is_none(), "{mode:?}: {section}.{key} is NAT only");
                        continue;
                    }
                    let Some(at) = at else {
                        panic!("{mode:?}: {section}.{key} missing");
                    };
                    assert!(
                        at > 0 && body[at - 1].starts_with("# ") && key_of(body[at - 1]).is_none(),
                        "{mode:?}: {section}.{key} has no comment above it"
                    );
                }
            }
        }
    }

    #[test]
    fn placeholders_are_documentation_addresses() {
        for mode in MODES {
            let spec = match crate::config::parse_str("init.toml", &text(mode)) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            let doc = |a: std::net::Ipv4Addr| {
                let o = a.octets();
                matches!(
                    (o[0], o[1], o[2]),
                    (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
                )
            };
            assert!(doc(spec.vip));
            for a in spec
                .directors
                .iter()
                .map(|d| d.address.addr())
                .chain(spec.real_servers.iter().map(|r| r.address.addr()))
            {
                assert!(doc(a), "{mode:?}: {a}");
            }
            assert!(text(mode).contains("replace"));
        }
    }

    #[test]
    fn write_new_refuses_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("cluster.toml");
        write_new(&p, "first").expect("new file");
        let e = write_new(&p, "second").expect_err("exists").to_string();
        assert!(e.contains("cluster.toml already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).ok().as_deref(), Some("first"));
    }
}
