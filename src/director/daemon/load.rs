//! Reading `director.toml`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, anyhow};

use crate::contract::director_config::{DirectorConfig, check};
use crate::director::core::Loaded;

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`)
/// after the work that leaves the most behind: reading director.toml at
/// start (at 1,000 × 10, 43 MB at the peak for 4 MB kept, heaptrack) and
/// every reconcile that read the kernel's whole table (at start, every 30 s,
/// on a reload: the kernel's table with every destination's counters, the
/// desired one and the operations). glibc keeps freed memory inside its heap
/// for reuse; given back, the resident heap stays nearer what the daemon
/// uses (at 1,000 × 10 under the lab VM, Pss read every 5 s comes back to
/// ~21.5 MB after each periodic reconcile, run (i) in docs/benchmarks.md;
/// the single readings that compared (h) and (g), 24.9 against 29.6 MB,
/// depended on where in that cycle they fell). The call
/// holds the allocator while it walks the free chunks, one `madvise` per
/// free run of pages: 3–14 ms each at that size, even under the VM's
/// emulation (measured 2026-12-03: the earlier suspicion that trims stalled
/// the thread for seconds, run (e), does not hold). Logged at debug, at
/// info over 100 ms. No-op on other C libraries. `after`: what it follows,
/// for the log.
pub fn trim_heap(after: &str) {
    let t = std::time::Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain libc call without arguments to keep alive.
    unsafe {
        libc::malloc_trim(0);
    }
    let took_ms = t.elapsed().as_secs_f64() * 1e3;
    if took_ms > 100.0 {
        tracing::info!(after, took_ms, "heap trimmed (slow)");
    } else {
        tracing::debug!(after, took_ms, "heap trimmed");
    }
}

/// [`DirectorConfig::parse`], then a copy of the result made once the
/// parse's scratch is free and consolidated, the parsed one dropped: what
/// the daemon keeps lies together in the heap.
///
/// The parse builds a tree of the whole document (at 1,000 × 10, 1.2 MB of
/// TOML: 42 MB at the peak, heaptrack) and allocates the config (~4 MB)
/// among it: once the tree was freed, the config's pieces kept pages of
/// the heap resident that held little else, and no trim could give those
/// back (natively at that size: 22.7 MB anonymous after the start's trim,
/// for 9.6 MB of live heap). After [`trim_heap`] has merged the tree's
/// free chunks, the copy is carved from them in order; the scattered
/// original then goes back with the trim that follows the load. (Parsing
/// on a thread of its own, in a glibc arena of its own, was tried: that
/// arena's free top is never given back by `malloc_trim`, 10.5 MB stayed.)
/// Elsewhere than glibc it is one copy more of a few megabytes.
fn parse_compact(text: &str) -> Result<DirectorConfig, toml::de::Error> {
    let parsed = DirectorConfig::parse(text)?;
    trim_heap("parse");
    Ok(parsed.clone())
}

/// Read, parse and check a director.toml.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let cfg = parse_compact(text).map_err(|e| {
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
