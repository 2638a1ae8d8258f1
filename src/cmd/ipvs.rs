//! `lvsup ipvs list`: the kernel's IPVS table as lvsup reads it (debugging aid).

use anyhow::Result;
use clap::Subcommand;

use super::{exit, json_string, print, runtime};
use crate::contract::ipvs_list::IpvsList;

#[derive(Debug, Subcommand)]
pub enum IpvsCommand {
    /// Print the table in the `ipvsadm -Ln` layout (or as JSON)
    List {
        /// Print JSON instead
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: IpvsCommand) -> Result<u8> {
    let IpvsCommand::List { json } = cmd;
    let (table, info) = runtime()?.block_on(async {
        let mut c = crate::ipvs::IpvsClient::connect().await?;
        let info = c.info().await?;
        let table = c.services().await?;
        Ok::<_, crate::ipvs::IpvsError>((table, info))
    })?;
    if json {
        print(
            &(json_document(&IpvsList {
                version: info.version,
                conn_tab_size: info.conn_tab_size,
                services: table,
            })? + "\n"),
        )?;
    } else {
        print(&crate::ipvs::render_ipvsadm_ln(&table, &info))?;
    }
    Ok(exit::OK)
}

/// The `--json` document ([`IpvsList`] with `format_version` first).
fn json_document(list: &IpvsList) -> Result<String> {
    Ok(json_string(&list.to_json()?)?)
}

#[cfg(test)]
mod tests {
    use crate::contract::ipvs_list::tests::{FIXTURE, sample};

    /// What `lvsup ipvs list --json` prints is the captured document, byte
    /// for byte (key spelling and order pinned).
    #[test]
    fn prints_the_captured_document() {
        let text = super::json_document(&sample()).expect("json") + "\n";
        assert_eq!(text, FIXTURE);
        assert!(FIXTURE.starts_with("{\n  \"format_version\": 1,\n"));
    }
}
