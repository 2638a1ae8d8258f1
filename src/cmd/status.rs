//! `lvsup status`: the live cluster in one view (colored on a terminal:
//! master green, unreachable directors and real servers down red, unknown
//! state or health yellow).

use anyhow::Result;
use clap::Args;

use super::{
    FileArg, LiveArgs, Stream, Tone, color, exit, live_options, paint, print, print_json, runtime,
};
use crate::apply::status::{collect, render};
use crate::config;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Print JSON instead
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: StatusArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let s = collect(&spec, file, &opts).await?;
        if a.json {
            print_json(&s)?;
        } else {
            print(&paint(&render(&s), color(Stream::Stdout), status_tone))?;
        }
        let ok = s.directors.iter().all(|d| d.reachable);
        Ok(if ok { exit::OK } else { exit::ERROR })
    })
}

/// The color of a line of `status` (see the module comment).
pub fn status_tone(line: &str) -> Option<Tone> {
    if let Some(dest) = line.strip_prefix("  -> ") {
        // destination, forward, weight, active, inactive, health, name
        return match dest.split_whitespace().nth(5) {
            Some("down") => Some(Tone::Remove),
            Some("unknown") => Some(Tone::Change),
            _ => None,
        };
    }
    if line.starts_with("Status:") {
        return Some(Tone::Bold);
    }
    if !line.starts_with("  ") {
        return None;
    }
    let state = line.split_whitespace().nth(1).unwrap_or_default();
    match state {
        "MASTER" => Some(Tone::Add),
        "UNREACHABLE" => Some(Tone::Remove),
        "state" => Some(Tone::Change),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Tone, status_tone};

    #[test]
    fn status_lines_get_colors() {
        assert_eq!(
            status_tone(
                "  lvs1           MASTER since 2026-01-01T00:00:00Z   holds the VIP on eth0"
            ),
            Some(Tone::Add)
        );
        assert_eq!(
            status_tone("  lvs2           UNREACHABLE"),
            Some(Tone::Remove)
        );
        assert_eq!(status_tone("  lvs2           BACKUP   does not hold"), None);
        assert_eq!(
            status_tone("  -> 10.0.0.2:80   Route   0      0          0         down    node2"),
            Some(Tone::Remove)
        );
        assert_eq!(
            status_tone("  -> 10.0.0.1:80   Route   100    0          0         up      node1"),
            None
        );
        assert_eq!(status_tone("Status: master lvs1"), Some(Tone::Bold));
    }
}
