//! The site's compute inventory (needs the `hypervisor` grant): nodes,
//! images, networks and VMs; state changes return the id of the kernel job
//! that completes them.

pub use crate::bindings::tessera::kernel::hypervisor::*;
