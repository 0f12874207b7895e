//! `wrun network ...`: docker's network verbs over the front end's bridge networks (crate
//! wrun-front, module network): create, ls, inspect, rm, prune.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use wrun_front::container::Containers;
use wrun_front::network::{CreateOptions, Network, Networks};

#[derive(Args, Debug)]
pub struct NetworkArgs {
    /// The data root of images, containers and networks [default: $WRUN_DATA_ROOT, else /var/lib/wrun].
    #[arg(long, global = true)]
    pub data_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a bridge network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Print networks as JSON, with the containers on them.
    Inspect(NamesArgs),
    /// Remove networks no container uses.
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove every user network no container uses.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Only "bridge".
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// The IPv4 subnet (default: a free /24 of 10.91.0.0/16).
    #[arg(long)]
    pub subnet: Option<String>,
    /// The bridge's address (default: the subnet's first).
    #[arg(long)]
    pub gateway: Option<String>,
    /// No route out and no masquerade: containers reach only each other.
    #[arg(long)]
    pub internal: bool,
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[arg(short, long)]
    pub quiet: bool,
    /// `json`: a JSON object per line.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask (accepted: wrun never asks).
    #[arg(short, long)]
    pub force: bool,
}

/// The names of the containers (of this data root) made on network `n`.
fn users(cs: &Containers, n: &Network) -> anyhow::Result<Vec<String>> {
    Ok(cs
        .list()?
        .into_iter()
        .filter(|r| r.network.as_deref() == Some(&n.name))
        .map(|r| r.name)
        .collect())
}

fn remove(nets: &Networks, cs: &Containers, n: &Network) -> anyhow::Result<()> {
    let u = users(cs, n)?;
    if !u.is_empty() {
        anyhow::bail!(
            "network {}: in use by container{} {}; remove {} first",
            n.name,
            if u.len() > 1 { "s" } else { "" },
            u.join(", "),
            if u.len() > 1 { "them" } else { "it" }
        );
    }
    nets.remove(n)?;
    Ok(())
}

pub fn run(a: &NetworkArgs) -> anyhow::Result<i32> {
    let root = super::system::data_root(&a.data_root)?;
    let nets = Networks::open(&root)?;
    let mut out = std::io::stdout().lock();
    match &a.command {
        NetworkCommand::Create(c) => {
            wrun_front::network::check_rootless(&c.name)?;
            if c.driver != "bridge" {
                anyhow::bail!("--driver {:?}: only \"bridge\" networks", c.driver);
            }
            let n = nets.create(
                &c.name,
                &CreateOptions {
                    subnet: c.subnet.clone(),
                    gateway: c.gateway.clone(),
                    internal: c.internal,
                    labels: c.label.clone(),
                },
            )?;
            writeln!(out, "{}", n.id)?;
        }
        NetworkCommand::Ls(l) => {
            let all = nets.list()?;
            if l.quiet {
                for n in &all {
                    writeln!(out, "{}", &n.id[..12])?;
                }
            } else if l.format.as_deref() == Some("json") {
                for n in &all {
                    writeln!(out, "{}", serde_json::to_string(n)?)?;
                }
            } else if let Some(f) = &l.format {
                anyhow::bail!("--format {f:?}: only \"json\"");
            } else {
                writeln!(
                    out,
                    "{:<14}{:<20}{:<10}{:<18}BRIDGE",
                    "NETWORK ID", "NAME", "DRIVER", "SUBNET"
                )?;
                for n in &all {
                    writeln!(
                        out,
                        "{:<14}{:<20}{:<10}{:<18}{}",
                        &n.id[..12],
                        n.name,
                        n.driver,
                        n.subnet,
                        n.bridge
                    )?;
                }
            }
        }
        NetworkCommand::Inspect(i) => {
            let cs = Containers::open(&root)?;
            let mut v = Vec::new();
            for name in &i.names {
                let n = nets.find(name)?;
                let mut j = serde_json::to_value(&n)?;
                j["containers"] = serde_json::json!(users(&cs, &n)?);
                v.push(j);
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        NetworkCommand::Rm(r) => {
            let cs = Containers::open(&root)?;
            let mut failed = false;
            for name in &r.names {
                match nets
                    .find(name)
                    .map_err(anyhow::Error::from)
                    .and_then(|n| remove(&nets, &cs, &n))
                {
                    Ok(()) => writeln!(out, "{name}")?,
                    Err(e) => {
                        eprintln!("wrun: error: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(i32::from(failed));
        }
        NetworkCommand::Prune(_) => {
            let cs = Containers::open(&root)?;
            for n in nets.list()?.iter().filter(|n| n.name != wrun_front::network::DEFAULT) {
                if users(&cs, n)?.is_empty() {
                    nets.remove(n)?;
                    writeln!(out, "{}", n.name)?;
                }
            }
        }
    }
    Ok(0)
}
