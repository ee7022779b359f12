//! `faultline hosts …`: the inventory helpers (`vagrant`) and the local SSH lab (`lab`).

use super::cli::HostsCommand;
use anyhow::Context;
use std::process::ExitCode;

pub fn run(cmd: HostsCommand) -> ExitCode {
    let result = match cmd {
        HostsCommand::Vagrant {
            ssh_config,
            address,
        } => vagrant(ssh_config.as_deref(), &address),
        HostsCommand::Lab { nodes, dir, subnet } => lab(nodes, &dir, &subnet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn vagrant(ssh_config: Option<&std::path::Path>, address: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = match ssh_config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => crate::hosts::vagrant::vagrant_ssh_config()?,
    };
    let hosts = crate::hosts::vagrant::parse_ssh_config(&text)?;
    let addrs = crate::hosts::vagrant::parse_addresses(address)?;
    print!("{}", crate::hosts::vagrant::inventory(&hosts, &addrs)?);
    Ok(())
}

fn lab(nodes: u32, dir: &std::path::Path, subnet: &str) -> anyhow::Result<()> {
    if !(1..=29).contains(&nodes) {
        anyhow::bail!("--nodes must be between 1 and 29");
    }
    let subnet = crate::spec::plan::parse_subnet(subnet)?;
    // The lab's namespaces live on this subnet as a run's would: the same overlap rule.
    crate::spec::subnet::check_free(subnet).context("--subnet")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::hosts::lab::serve(dir, nodes, subnet))
}
