//! Host-side bindings generated from the `tessera:kernel` WIT package.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Exports are called on async stores so a long-running plugin yields to
    // the executor at every epoch tick instead of holding a worker thread.
    exports: { default: async },
    // Password hashing takes tens of milliseconds: it runs on a blocking
    // thread, so this import is async on the host side.
    // A site key that cannot be read or made fails `seal` loudly (a trap, so a
    // 500 and a log line) rather than handing back an unsealed value.
    imports: {
        "tessera:kernel/auth.verify-password": async,
        "tessera:kernel/auth.seal": trappable,
        // Backups, restores and updates do file and database work, and a
        // refused token change waits two seconds: off the async workers.
        "tessera:kernel/site-admin.write-logs-archive": async,
        "tessera:kernel/site-admin.write-debug-bundle": async,
        "tessera:kernel/site-admin.backup": async,
        "tessera:kernel/site-admin.restore": async,
        "tessera:kernel/site-admin.stage-update": async,
        "tessera:kernel/site-admin.apply-update": async,
        "tessera:kernel/site-admin.restart": async,
        "tessera:kernel/site-admin.api-token-refused": async,
    },
});

pub use self::tessera::kernel::types::Unsupported;
pub use exports::tessera::kernel::handler::{Request, Response};
