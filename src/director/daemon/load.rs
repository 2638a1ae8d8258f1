//! Reading `director.toml`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, anyhow};

use crate::contract::director_config::{DirectorConfig, check};
use crate::director::core::Loaded;

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`),
/// once, at start, after reading director.toml and before VRRP begins.
/// Parsing takes many times what the daemon keeps (at 1,000 × 10: 43 MB at
/// the peak, heaptrack), and glibc keeps freed memory inside its heap for
/// reuse; given back, the daemon's resident heap stays near what it uses.
/// Not after a reload or periodically: the call holds the allocator while
/// it walks every free chunk, one `madvise` per free run of pages. Tried
/// every 30 s and after each reconcile that read the table (2026-12-03),
/// the daemon's one thread went silent for ~6 s before handling a SIGHUP
/// and at shutdown under the lab VM's emulation (2–5 s without); a trim
/// of a fragmented heap there is the suspect, not proven. A stall that long
/// misses VRRP adverts, so the daemon does not risk it while it may be
/// master. No-op on other C libraries.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain libc call without arguments to keep alive.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Read, parse and check a director.toml.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
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
