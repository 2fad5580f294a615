//! First boot from the serial console alone, on each architecture's image under QEMU: the wizard on a blank
//! flash (wrong answers asked again), its settings applied and surviving a reboot behind the
//! console password, and a factory reset (asked twice) that brings the wizard back; DHCP from
//! QEMU's server; the watchdog resetting a box whose services stopped answering.
//!
//! Needs both images (`make images`), qemu-system-x86 and qemu-system-arm. Timeouts are 5× the
//! slowest boot measured under load (TCG, no KVM). Not yet here: a DHCP lease change.

use qemu::{Arch, Machine};
use tests::appliance::{
    BOOT, COMMAND, PROMPT, qemu_lock_for, quit, setup_boot_on, test_boot_on, wait_for_banner,
};
use tests::per_arch;

const MENU: &str = "Choose 1-13: ";

/// Types `line` after `prompt` appeared; returns what came before the prompt.
fn answer(machine: &mut Machine, prompt: &str, line: &str) -> String {
    let c = machine.console().expect("console");
    let before = c
        .wait_for(prompt, COMMAND)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    c.send_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    before
}

per_arch!(the_wizard_sets_up_a_blank_box_that_keeps_its_settings_until_a_factory_reset);
fn the_wizard_sets_up_a_blank_box_that_keeps_its_settings_until_a_factory_reset(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = setup_boot_on(arch, tmp.path());

    // First boot: the wizard, with wrong answers asked again.
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let greeting = m
        .console()
        .unwrap()
        .wait_for("not set up yet", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(greeting.contains("appliance mode"), "{greeting}");
    answer(&mut m, "Console admin password", "short");
    answer(&mut m, "at least 8 characters\n", "s3cret-pass");
    answer(&mut m, "The same password again: ", "s3cret-pass");
    answer(&mut m, "Host name (fully qualified", "postern");
    let why = answer(&mut m, "Host name (fully qualified", "mx1.example.com");
    assert!(
        why.contains("\"postern\" is not a fully qualified host name"),
        "{why}"
    );
    answer(&mut m, "IPv4 network: dhcp or static [dhcp]: ", "static");
    // A /16 the defaults never use: the boot log shows it came from the flash.
    answer(&mut m, "IPv4 address/prefix", "10.0.2.15/16");
    answer(&mut m, "Default gateway", "192.0.2.1");
    let why = answer(&mut m, "Default gateway", "10.0.2.2");
    assert!(
        why.contains("gateway 192.0.2.1 is outside the network 10.0.0.0/16"),
        "{why}"
    );
    answer(&mut m, "DNS servers", "10.0.2.3");
    answer(
        &mut m,
        "IPv6: slaac (router advertisements), static or off [slaac]: ",
        "",
    );
    answer(&mut m, "NTP servers", "none");
    answer(&mut m, "LDAP server(s)", "none");
    answer(&mut m, "Relay host", "none");
    answer(&mut m, "Mail domains", "example.com");
    let summary = answer(&mut m, "Apply these settings?", "yes");
    assert!(
        summary.contains("static 10.0.2.15/16 gateway 10.0.2.2, DNS 10.0.2.3"),
        "{summary}"
    );
    let applied = m
        .console()
        .unwrap()
        .wait_for(MENU, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(applied.contains("Settings applied."), "{applied}");
    assert!(
        applied.contains("eth0 10.0.2.15/16 gateway 10.0.2.2"),
        "{applied}"
    );
    assert!(applied.contains("on mx1.example.com"), "{applied}");
    let (banner, stream) = wait_for_banner(smtp_port, COMMAND).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        banner.starts_with("220 mx1.example.com ESMTP"),
        "{banner:?}"
    );
    let _ = quit(stream);
    m.console().unwrap().send_line("12").unwrap();
    m.wait_exit(COMMAND).unwrap_or_else(|e| panic!("{e}"));
    drop(m);

    // Second boot: the settings from flash, the menu behind the password.
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let boot_log = m
        .console()
        .unwrap()
        .wait_for("Console password: ", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!boot_log.contains("not set up yet"), "{boot_log}");
    assert!(
        boot_log.contains("eth0 10.0.2.15/16 gateway 10.0.2.2"),
        "{boot_log}"
    );
    m.console().unwrap().send_line("wrong-pass").unwrap();
    let refused = answer(&mut m, "Console password: ", "s3cret-pass");
    assert!(refused.contains("Wrong password."), "{refused}");
    let menu = answer(&mut m, MENU, "1");
    assert!(menu.contains("on mx1.example.com"), "{menu}");
    let status = answer(&mut m, MENU, "11");
    assert!(status.contains("hostname: mx1.example.com"), "{status}");
    assert!(
        status.contains("network: static 10.0.2.15/16 gateway 10.0.2.2, DNS 10.0.2.3"),
        "{status}"
    );
    assert!(status.contains("eth0: link up"), "{status}");
    assert!(status.contains("address: 10.0.2.15/16"), "{status}");
    // QEMU's user network answers ARP for its router from 52:55 and the address.
    assert!(
        status.contains("gateway: 10.0.2.2 (answers ARP from 52:55:0a:00:02:02)"),
        "{status}"
    );
    assert!(!boot_log.contains("does not answer ARP"), "{boot_log}");
    assert!(status.contains("dns: 10.0.2.3"), "{status}");
    // Factory reset: asked twice.
    answer(&mut m, "Go on? [no]: ", "yes");
    answer(&mut m, "Type 'erase' to do it [no]: ", "erase");
    m.console()
        .unwrap()
        .wait_for("flash /dev/vda erased", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    m.wait_exit(COMMAND).unwrap_or_else(|e| panic!("{e}"));
    drop(m);

    // Third boot: a blank box again.
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let log = m
        .console()
        .unwrap()
        .wait_for("Console admin password", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("not set up yet"), "{log}");
}

per_arch!(the_wizard_takes_an_address_from_qemus_dhcp_server);
fn the_wizard_takes_an_address_from_qemus_dhcp_server(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = setup_boot_on(arch, tmp.path());
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    m.console()
        .unwrap()
        .wait_for("not set up yet", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    answer(&mut m, "Console admin password", "s3cret-pass");
    answer(&mut m, "The same password again: ", "s3cret-pass");
    answer(&mut m, "Host name (fully qualified", "mx2.example.com");
    answer(&mut m, "IPv4 network: dhcp or static [dhcp]: ", "");
    answer(&mut m, "DNS servers (none: the DHCP server's) [none]: ", "");
    answer(
        &mut m,
        "IPv6: slaac (router advertisements), static or off [slaac]: ",
        "",
    );
    answer(&mut m, "NTP servers", "");
    answer(&mut m, "LDAP server(s)", "");
    answer(&mut m, "Relay host", "");
    answer(&mut m, "Mail domains", "");
    let summary = answer(&mut m, "Apply these settings?", "yes");
    assert!(summary.contains("DHCP, DNS from DHCP"), "{summary}");
    let applied = m
        .console()
        .unwrap()
        .wait_for(MENU, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    // QEMU's user network: the first lease is 10.0.2.15, the server and router 10.0.2.2.
    assert!(
        applied.contains("eth0 10.0.2.15/24 gateway 10.0.2.2 (DHCP from 10.0.2.2"),
        "{applied}"
    );
    assert!(!applied.contains("does not answer ARP"), "{applied}");
    let (banner, stream) = wait_for_banner(smtp_port, COMMAND).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        banner.starts_with("220 mx2.example.com ESMTP"),
        "{banner:?}"
    );
    let _ = quit(stream);
    m.console().unwrap().send_line("13").unwrap();
    m.wait_exit(COMMAND).unwrap_or_else(|e| panic!("{e}"));
}

per_arch!(the_watchdog_resets_a_box_whose_services_stop_answering);
fn the_watchdog_resets_a_box_whose_services_stop_answering(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, _) = test_boot_on(arch, tmp.path());
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let c = m.console().unwrap();
    let log = c.wait_for(PROMPT, BOOT).unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("watchdog /dev/watchdog armed"), "{log}");
    // Petted while the services answer: still here well past the timeout.
    c.read_for(std::time::Duration::from_secs(30)).unwrap();
    c.send_line("status").unwrap();
    c.wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    c.send_line("debug-stall-services").unwrap();
    c.wait_for("no longer petted", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    // -no-reboot: the watchdog's reset ends QEMU.
    m.wait_exit(COMMAND * 2).unwrap_or_else(|e| panic!("{e}"));
    let transcript = m.console().unwrap().transcript().to_string();
    assert!(!transcript.contains("powering off"), "{transcript}");
    assert!(!transcript.contains("rebooting"), "{transcript}");
}
