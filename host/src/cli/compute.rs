//! Operator commands over the compute inventory: `tessera node list`,
//! `tessera image list|import`, `tessera vm list`, `tessera package add|list|remove`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::identity::{StoreArgs, print_list};
use crate::primitives::hypervisor::{Hypervisor, NewImage, NewPackage, VmFilter, VmState};

#[derive(Subcommand)]
pub enum NodeCommand {
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ImageCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Register an image file (its size is taken from the file).
    Import {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "linux")]
        os: String,
        #[arg(long, default_value = "zvol")]
        image_type: String,
        /// Visible to every account (otherwise only to --owner).
        #[arg(long)]
        public: bool,
        #[arg(long)]
        owner: Option<String>,
    },
}

/// Named VM sizes, which plugins offer as their families' sizes (CloudAPI packages).
#[derive(Subcommand)]
pub enum PackageCommand {
    /// Define a size.
    Add {
        name: String,
        /// RAM in MiB.
        #[arg(long)]
        memory: u64,
        /// Boot disk in MiB.
        #[arg(long)]
        disk: u64,
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Swap in MiB.
        #[arg(long)]
        swap: Option<u64>,
        /// Most light-weight processes.
        #[arg(long)]
        lwps: Option<u64>,
        /// Make it the site's default size.
        #[arg(long)]
        default: bool,
        /// The package's version (CloudAPI `version`).
        #[arg(long)]
        version: Option<String>,
        /// A group of packages it belongs to (CloudAPI `group`).
        #[arg(long)]
        group: Option<String>,
        /// What it is for (CloudAPI `description`).
        #[arg(long)]
        description: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a size (by name or id); VMs made with it keep their size.
    Remove { package: String },
}

#[derive(Subcommand)]
pub enum VmCommand {
    List {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        state: Option<VmState>,
        #[arg(long)]
        json: bool,
    },
}

fn open(store: &StoreArgs) -> anyhow::Result<Hypervisor> {
    let (site, db) = store.open_db()?;
    Ok(Hypervisor::open(db, &site.hypervisor, &site.data_dir)?)
}

pub fn node(command: NodeCommand, store: &StoreArgs) -> anyhow::Result<()> {
    let NodeCommand::List { json } = command;
    let nodes = open(store)?.list_nodes()?;
    print_list(
        json,
        &nodes,
        |n| json!({"id": n.id, "name": n.name, "cpus": n.cpus, "ram_mib": n.ram_mib, "disk_mib": n.disk_mib, "state": n.state}),
        |n| {
            format!(
                "{:<16} {:>4} cpus {:>8} MiB ram {:>9} MiB disk  {}",
                n.name, n.cpus, n.ram_mib, n.disk_mib, n.state
            )
        },
    );
    Ok(())
}

pub fn image(command: ImageCommand, store: &StoreArgs) -> anyhow::Result<()> {
    let hypervisor = open(store)?;
    match command {
        ImageCommand::List { json } => {
            let images = hypervisor.list_images()?;
            print_list(
                json,
                &images,
                |i| {
                    json!({"id": i.id, "name": i.name, "version": i.version, "os": i.os, "type": i.image_type,
                           "size_mib": i.size_mib, "state": i.state, "owner": i.owner, "public": i.public})
                },
                |i| {
                    format!(
                        "{} {:<20} {:<10} {:<8} {:>7} MiB {}",
                        i.id, i.name, i.version, i.os, i.size_mib, i.state
                    )
                },
            );
        }
        ImageCommand::Import {
            file,
            name,
            version,
            os,
            image_type,
            public,
            owner,
        } => {
            let size = std::fs::metadata(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            let image = hypervisor.import_image_file(
                &NewImage {
                    name,
                    version,
                    os,
                    image_type,
                    size_mib: size.div_ceil(1024 * 1024).max(1),
                    owner,
                    public,
                    extra: String::new(),
                },
                &file,
            )?;
            println!("imported {} {}@{}", image.id, image.name, image.version);
        }
    }
    Ok(())
}

pub fn vm(command: VmCommand, store: &StoreArgs) -> anyhow::Result<()> {
    let VmCommand::List { owner, state, json } = command;
    let filter = VmFilter {
        owner,
        state,
        ..VmFilter::default()
    };
    let page = open(store)?.list_vms(&filter)?;
    print_list(
        json,
        &page.vms,
        |v| {
            json!({"id": v.id, "name": v.name, "owner": v.owner, "state": v.state.as_str(), "node": v.node,
                   "image": v.image, "cpus": v.cpus, "ram_mib": v.ram_mib, "disk_mib": v.disk_mib, "ips": v.ips,
                   "creator": v.creator, "created": v.created})
        },
        |v| {
            format!(
                "{} {:<20} {:<12} {:<12} {}",
                v.id,
                v.name,
                v.owner,
                v.state.as_str(),
                v.ips.join(",")
            )
        },
    );
    Ok(())
}

pub fn package(command: PackageCommand, store: &StoreArgs) -> anyhow::Result<()> {
    let hypervisor = open(store)?;
    match command {
        PackageCommand::Add {
            name,
            memory,
            disk,
            vcpus,
            swap,
            lwps,
            default,
            version,
            group,
            description,
        } => {
            let package = hypervisor.add_package(&NewPackage {
                name,
                cpus: vcpus,
                ram_mib: memory,
                disk_mib: disk,
                swap_mib: swap,
                lwps,
                is_default: default,
                version,
                group,
                description,
            })?;
            println!("added package {} {}", package.id, package.name);
        }
        PackageCommand::List { json } => {
            let packages = hypervisor.list_packages()?;
            print_list(
                json,
                &packages,
                |p| {
                    json!({"id": p.id, "name": p.name, "vcpus": p.cpus, "memory": p.ram_mib, "disk": p.disk_mib,
                           "swap": p.swap_mib, "lwps": p.lwps, "default": p.is_default,
                           "version": p.version, "group": p.group, "description": p.description})
                },
                |p| {
                    format!(
                        "{} {:<20} {:>3} vcpus {:>8} MiB ram {:>9} MiB disk{}",
                        p.id,
                        p.name,
                        p.cpus,
                        p.ram_mib,
                        p.disk_mib,
                        if p.is_default { "  (default)" } else { "" }
                    )
                },
            );
        }
        PackageCommand::Remove { package } => {
            hypervisor.remove_package(&package)?;
            println!("removed package {package}");
        }
    }
    Ok(())
}
