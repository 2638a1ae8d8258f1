//! `lvsup ipvs list`: the kernel's IPVS table as lvsup reads it (debugging aid).

use anyhow::Result;
use clap::Subcommand;

use super::{exit, print, print_json, runtime};

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
        print_json(&serde_json::json!({
            "version": info.version,
            "conn_tab_size": info.conn_tab_size,
            "services": table,
        }))?;
    } else {
        print(&crate::ipvs::render_ipvsadm_ln(&table, &info))?;
    }
    Ok(exit::OK)
}
