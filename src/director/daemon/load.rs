//! Reading `director.toml`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, anyhow};

use crate::contract::director_config::{DirectorConfig, check};
use crate::director::core::Loaded;

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`).
/// The daemon's memory comes in bursts: parsing director.toml, and each
/// reconcile's dump of the IPVS table, take many times what the daemon
/// keeps (at 1,000 × 10: 43 MB at the peak for 4 MB kept, heaptrack). glibc
/// keeps freed memory inside its heap for reuse and only shrinks it from
/// the top, so the daemon stayed at the peak's fragments (15 MB of
/// resident heap for 4 MB in use). One call, a walk over the free chunks
/// (1–2 ms at 1,000 × 10), after each burst and every
/// [`super::ADDRESS_CHECK`]: the checks' churn touches freed pages again,
/// some 20 kB a second at 10,000 checks a second. No-op on other C
/// libraries.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain libc call without arguments to keep alive.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Read, parse and check a director.toml. The parse's scratch memory (a
/// table of every key with its place in the file: ~30 MB at 10,000 real
/// servers) is given back to the kernel before returning ([`trim_heap`]).
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let loaded = parse_file(path);
    trim_heap();
    loaded
}

fn parse_file(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let cfg = DirectorConfig::parse(text).map_err(|e| {
        // One line (journald splits multi-line messages): message + position.
        let pos = e.span().map_or(String::new(), |sp| {
            let before = text.get(..sp.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        });
        anyhow!("{}{pos}: {}", path.display(), e.message().trim())
    })?;
    check(&cfg).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(Loaded {
        cfg: std::sync::Arc::new(cfg),
        sha256: crate::contract::sha256_hex(&bytes),
        loaded_at: SystemTime::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_a_broken_file_on_one_line() {
        let dir = std::env::temp_dir().join(format!("lvsup-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("director.toml");
        std::fs::write(&p, "cluster = \"web\"\nbogus = [\n").expect("write");
        let e = format!("{:#}", load(&p).expect_err("broken"));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
