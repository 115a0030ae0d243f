//! The hypervisor primitive: the site's compute inventory. Declared in WIT;
//! this kernel version answers `unsupported` until the backends land.

mod wit;
