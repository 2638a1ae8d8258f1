//! The typed contracts between the operator's `lvsup` (plan, apply, status,
//! verify over SSH) and what runs on a director: one serde type per
//! document, used by the side that writes it and by every side that reads
//! it, so a renamed field fails to compile or fails a test instead of going
//! unnoticed in an untyped `serde_json::Value`. Pure: no I/O.
//!
//! - [`status`]: the daemon's status (`lvsup director status --json`, the
//!   control socket), read back by `lvsup status`, facts gathering and
//!   `lvsup verify`;
//! - [`ipvs_list`]: `lvsup ipvs list --json`, read back by facts gathering
//!   (persistence in seconds) and `lvsup verify` (the table and counters);
//! - [`director_config`]: the director's config file, `director.toml`:
//!   `desired` builds and renders it, the daemon reads it, `plan` compares
//!   the host's file with the one it wants (reload or restart). Unlike the
//!   two documents above it is strict (`deny_unknown_fields`): the daemon
//!   refuses a file it does not fully understand;
//! - [`sha256_hex`]: how a file's digest is spelled (the daemon's
//!   `config.sha256`, the binary and plan digests `apply` compares).
//!
//! Reading rules of the JSON documents: no `deny_unknown_fields` (a newer daemon may add fields),
//! and fields added after a document's first version are `Option` or
//! `#[serde(default)]` (an older daemon does not send them). Printed JSON
//! carries `"format_version"` first (`cmd::json_string`); readers ignore it.

pub mod director_config;
pub mod ipvs_list;
pub mod status;

use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes` as lower-case hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_hex_is_what_sha256sum_prints() {
        // printf abc | sha256sum
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
