//! Reading `director.toml`.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, anyhow};

use crate::contract::director_config::{DirectorConfig, check};
use crate::director::core::Loaded;

/// Read, parse and check a director.toml.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        String::from_utf8(bytes.clone()).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let cfg = DirectorConfig::parse(&text).map_err(|e| {
        // One line (journald splits multi-line messages): message + position.
        let pos = e.span().map_or(String::new(), |sp| {
            let before = text.get(..sp.start).unwrap_or(&text);
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
