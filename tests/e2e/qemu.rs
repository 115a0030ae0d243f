//! The `qemu` hypervisor backend with a real `qemu-system-x86_64` (software
//! emulation): a boot image the test builds — one boot sector that prints to
//! the serial port — imported with the CLI, booted, stopped, started and
//! deleted through a plugin. Skipped, with a message, where QEMU is missing;
//! `.ci/run` installs it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, client, hello_vm_act, json, run_cli, test_site, wait_hello_vm};

const BANNER: &str = "TESSERA BOOT OK";

pub fn qemu_present() -> bool {
    let found = ["qemu-system-x86_64", "qemu-img"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        eprintln!(
            "skipped: qemu-system-x86_64 or qemu-img is missing (apt-get install qemu-system-x86 qemu-utils)"
        );
    }
    found
}

/// A 1 MiB raw disk whose boot sector writes `BANNER` to COM1 and halts.
fn boot_image(path: &Path) {
    let code: [u8; 22] = [
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0xFC, // cld
        0xBE, 0x16, 0x7C, // mov si, 0x7c16 (the message)
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
        0xAC, // next: lodsb
        0x08, 0xC0, // or al, al
        0x74, 0x03, // jz done
        0xEE, // out dx, al
        0xEB, 0xF8, // jmp next
        0xF4, // done: hlt
        0xEB, 0xFD, // jmp done
    ];
    let mut sector = code.to_vec();
    sector.extend_from_slice(BANNER.as_bytes());
    sector.extend_from_slice(b"\r\n\0");
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xAA]);
    sector.resize(1024 * 1024, 0);
    std::fs::write(path, sector).unwrap();
}

fn qemu_site() -> String {
    test_site().replace(
        "[hypervisor.sim]\ntransition_delay_ms = 0",
        "[hypervisor]\nbackend = \"qemu\"\n[hypervisor.qemu]\nshutdown_timeout_ms = 300\nboot_timeout_ms = 60000",
    )
}

fn wait_state(server: &Server, id: &str, state: &str) -> Value {
    wait_hello_vm(server, id, state, Duration::from_secs(90))
}

fn act(server: &Server, id: &str, action: &str) {
    assert_eq!(hello_vm_act(server, id, action).status(), 202, "{action}");
}

/// The VM's QEMU process, if one is alive (zombies do not count).
fn qemu_alive(vm_dir: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(vm_dir.join("qemu.pid")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
}

fn wait_banner(serial: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(serial).unwrap_or_default();
        if text.contains(BANNER) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no boot banner in {}: {text:?}",
            serial.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Builds the boot image and imports it with the CLI as the public image
/// `tiny-boot` version 1.
pub fn import_boot_image(server: &Server) {
    let image = server.dir.join("boot.img");
    boot_image(&image);
    let (config, data) = (server.dir.join("site.toml"), server.data_dir());
    let (code, out, err) = run_cli(&[
        "image",
        "import",
        image.to_str().unwrap(),
        "--name",
        "tiny-boot",
        "--version",
        "1",
        "--os",
        "other",
        "--public",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "import: {out} {err}");
    assert!(out.contains("imported"), "{out}");
}

#[test]
fn a_real_vm_boots_stops_starts_and_is_deleted() {
    if !qemu_present() {
        return;
    }
    let server = Server::with_site(&qemu_site());
    import_boot_image(&server);
    let data = server.data_dir();

    let created = client()
        .post(server.url("/hello/vms"))
        .json(&json!({"name": "tiny", "image": "tiny-boot", "cpus": 1, "ram_mib": 64, "disk_mib": 16}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 202);
    let id = json(created)["id"].as_str().unwrap().to_string();
    let vm_dir = data.join("qemu").join("vms").join(&id);

    wait_state(&server, &id, "running");
    assert!(qemu_alive(&vm_dir), "a running VM has its process");
    assert!(vm_dir.join("disk.qcow2").exists(), "the overlay disk");
    wait_banner(&vm_dir.join("serial.log"));

    act(&server, &id, "stop");
    wait_state(&server, &id, "stopped");
    assert!(!qemu_alive(&vm_dir), "a stopped VM has no process");

    std::fs::remove_file(vm_dir.join("serial.log")).unwrap();
    act(&server, &id, "start");
    wait_state(&server, &id, "running");
    assert!(qemu_alive(&vm_dir));
    wait_banner(&vm_dir.join("serial.log"));

    // The process dies behind the kernel's back (a guest power-off, an OOM
    // kill): within a few seconds the record says stopped, and it starts again.
    let pid = std::fs::read_to_string(vm_dir.join("qemu.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_state(&server, &id, "stopped");
    act(&server, &id, "start");
    wait_state(&server, &id, "running");
    assert!(qemu_alive(&vm_dir));

    act(&server, &id, "delete");
    wait_state(&server, &id, "deleted");
    assert!(!vm_dir.exists(), "a deleted VM leaves no files");
}

#[test]
fn a_file_qemu_cannot_read_is_refused_and_leaves_no_image() {
    if !qemu_present() {
        return;
    }
    let server = Server::with_site(&qemu_site());
    let missing = server.dir.join("nothing.img");
    let (config, data) = (server.dir.join("site.toml"), server.data_dir());
    let (code, _, err) = run_cli(&[
        "image",
        "import",
        missing.to_str().unwrap(),
        "--name",
        "ghost",
        "--version",
        "1",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    let (_, list, _) = run_cli(&[
        "image",
        "list",
        "--json",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!list.contains("ghost"), "{list}");
}
