//! First boot from the serial console alone, on each architecture's image under QEMU: the wizard on a blank
//! flash (wrong answers asked again), its settings applied and surviving a reboot behind the
//! console password, and a factory reset (asked twice) that brings the wizard back; DHCP from
//! QEMU's server; a DHCP lease change applied live and a lease running out, with the test's own
//! DHCP server on a UDP link (`tests::dhcp_server`); the clock set from an SNTP server the wizard
//! was given (`tests::sntp_server`, on the host); the watchdog resetting a box whose services
//! stopped answering.
//!
//! Needs both images (`make images`), qemu-system-x86 and qemu-system-arm. Timeouts are 5× the
//! slowest boot measured under load (TCG, no KVM).

use std::net::Ipv4Addr;
use std::time::Duration;

use qemu::{Arch, Machine};
use tests::appliance::{
    BOOT, COMMAND, PROMPT, qemu_lock_for, quit, setup_boot_on, test_boot_on, wait_for_banner,
};
use tests::dhcp_server::{
    Advert, Answer, DhcpServer, MessageType, Offer, SERVER_IP, SERVER_MAC, show,
};
use tests::per_arch;
use tests::sntp_server;

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

per_arch!(the_wizard_takes_an_address_from_qemus_dhcp_server_and_the_time_from_sntp);
fn the_wizard_takes_an_address_from_qemus_dhcp_server_and_the_time_from_sntp(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    // Ten days ahead of the host, on the host's 127.0.0.1:123: the guest's 10.0.2.2.
    sntp_server::start();
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
    answer(&mut m, "NTP servers", "10.0.2.2");
    answer(&mut m, "LDAP server(s)", "");
    answer(&mut m, "Relay host", "");
    answer(&mut m, "Mail domains", "");
    let summary = answer(&mut m, "Apply these settings?", "yes");
    assert!(summary.contains("DHCP, DNS from DHCP"), "{summary}");
    assert!(summary.contains("10.0.2.2"), "{summary}");
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

    // The clock is stepped from the NTP server the wizard was given, as the services start.
    seen_on_console(&mut m, "clock set from 10.0.2.2 (10.0.2.2), it was +");
    let status = status_screen(&mut m);
    let line = status
        .lines()
        .find(|l| l.contains("clock: set by SNTP from 10.0.2.2 (10.0.2.2)"))
        .unwrap_or_else(|| panic!("{status}"));
    let off: f64 = line
        .rsplit("it was ")
        .next()
        .and_then(|l| l.trim_end_matches(" s off").trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // The guest's clock started from the host's (QEMU's RTC): it was about ten days behind.
    let ahead = sntp_server::AHEAD.as_secs_f64();
    assert!((off - ahead).abs() < 120.0, "{line}");
    assert!(sntp_server::answered() >= 1);
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

/// A lease of the test's DHCP server: 20 s (the box keeps a lease at least 60 s), renewed at 10 s.
fn lease(address: u8, router: Ipv4Addr, dns: u8) -> Offer {
    Offer {
        address: Ipv4Addr::new(192, 168, 77, address),
        prefix_len: 24,
        router,
        dns: vec![Ipv4Addr::new(192, 168, 77, dns)],
        lease_secs: 20,
        renew_secs: Some(10),
        rebind_secs: None,
    }
}

/// Waits until the console has printed `line` since the boot: it may have come while an earlier
/// wait read up to a later prompt, so the whole transcript is searched.
fn seen_on_console(machine: &mut Machine, line: &str) {
    let c = machine.console().expect("console");
    let deadline = std::time::Instant::now() + COMMAND;
    while !c.transcript().contains(line) && std::time::Instant::now() < deadline {
        let _ = c.read_for(Duration::from_millis(200));
    }
    assert!(
        c.transcript().contains(line),
        "{line:?} in\n{}",
        c.transcript()
    );
}

/// Shows the status screen from the main menu; returns it.
fn status_screen(machine: &mut Machine) -> String {
    let c = machine.console().expect("console");
    c.send_line("1").unwrap_or_else(|e| panic!("1: {e}"));
    c.wait_for(MENU, COMMAND)
        .unwrap_or_else(|e| panic!("status screen: {e}"))
}

per_arch!(a_dhcp_lease_change_reaches_the_running_box_and_a_lost_lease_drops_its_address);
fn a_dhcp_lease_change_reaches_the_running_box_and_a_lost_lease_drops_its_address(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (mut opts, _) = setup_boot_on(arch, tmp.path());
    let first = lease(50, SERVER_IP, 53);
    let server = DhcpServer::start(first.clone()).unwrap_or_else(|e| panic!("DHCP server: {e}"));
    // And the link's IPv6 router: a SLAAC prefix and a DNS server (RFC 8106).
    server.set_advert(Advert {
        prefix: "2001:db8:77::".parse().unwrap(),
        dns: "2001:db8:77::53".parse().unwrap(),
        dns_lifetime_secs: 3600,
    });
    opts.network = server.network();
    let mut m = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    m.console()
        .unwrap()
        .wait_for("not set up yet", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    answer(&mut m, "Console admin password", "s3cret-pass");
    answer(&mut m, "The same password again: ", "s3cret-pass");
    answer(&mut m, "Host name (fully qualified", "mx3.example.com");
    answer(&mut m, "IPv4 network: dhcp or static [dhcp]: ", "dhcp");
    answer(&mut m, "DNS servers (none: the DHCP server's) [none]: ", "");
    answer(
        &mut m,
        "IPv6: slaac (router advertisements), static or off [slaac]: ",
        "slaac",
    );
    answer(&mut m, "NTP servers", "none");
    answer(&mut m, "LDAP server(s)", "none");
    answer(&mut m, "Relay host", "none");
    answer(&mut m, "Mail domains", "example.com");
    answer(&mut m, "Apply these settings?", "yes");
    let applied = m
        .console()
        .unwrap()
        .wait_for(MENU, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        applied.contains(
            "eth0 192.168.77.50/24 gateway 192.168.77.1 (DHCP from 192.168.77.1, \
             60 s: the server's 20 s kept as the minimum)"
        ),
        "{applied}"
    );
    // The server answers ARP for its router.
    assert!(!applied.contains("does not answer ARP"), "{applied}");
    // The advertised DNS server joins the lease's once the box has solicited (its address from
    // the prefix may still be under its duplicate check).
    seen_on_console(
        &mut m,
        "DNS servers from router advertisements: 2001:db8:77::53",
    );
    assert!(server.solicitations() >= 1);
    let status = status_screen(&mut m);
    assert!(status.contains("address: 192.168.77.50/24"), "{status}");
    assert!(
        status.contains("dns: 192.168.77.53 2001:db8:77::53"),
        "{status}"
    );
    // The address from the advertised prefix (its interface identifier from the MAC).
    assert!(
        status.contains("2001:db8:77:0:5054:ff:fe12:3456/64 (SLAAC"),
        "{status}"
    );
    assert!(
        status.contains("ipv6 gateway: fe80::5054:ff:fe77:1"),
        "{status}"
    );
    assert!(
        status.contains("dhcp: lease from 192.168.77.1, renewed in"),
        "{status}"
    );

    // The lease changes on the server: the next renewal of .50 is refused, and the box, without a
    // reboot, asks again and takes .77 with another router and DNS server.
    let from = server.seen().len();
    let second = lease(77, Ipv4Addr::new(192, 168, 77, 254), 54);
    server.set_offer(second.clone());
    let nak = server
        .wait_for(from, COMMAND, |s| s.answer == Answer::Nak)
        .unwrap_or_else(|e| panic!("{e}"));
    let acked = server
        .wait_for(nak, COMMAND, |s| s.answer == Answer::Ack(second.address))
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = server.seen();
    let refused = &seen[nak];
    assert!(refused.is_renewal(), "not a renewal: {refused}");
    assert_eq!(refused.ciaddr, first.address, "{refused}");
    assert_eq!(refused.eth_dst, SERVER_MAC, "{refused}");
    let after = &seen[nak + 1..=acked];
    let discover = after
        .iter()
        .position(|s| s.kind == MessageType::Discover && s.answer == Answer::Offer(second.address))
        .unwrap_or_else(|| panic!("no DISCOVER after the NAK:\n{}", show(after)));
    let request = &after[after.len() - 1];
    assert!(discover < after.len() - 1, "{}", show(after));
    assert_eq!(request.kind, MessageType::Request, "{request}");
    assert_eq!(request.requested_ip, Some(second.address), "{request}");
    assert_eq!(request.server_id, Some(SERVER_IP), "{request}");
    assert!(request.ciaddr.is_unspecified(), "{request}");
    let log = m
        .console()
        .unwrap()
        .wait_for(
            "eth0 192.168.77.77/24 gateway 192.168.77.254 (DHCP from 192.168.77.1",
            COMMAND,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains("DHCP server refused to renew the lease; address removed"),
        "{log}"
    );
    let status = status_screen(&mut m);
    assert!(status.contains("address: 192.168.77.77/24"), "{status}");
    assert!(
        status.contains("gateway: 192.168.77.254 (answers ARP from 52:54:00:77:00:01)"),
        "{status}"
    );
    assert!(
        status.contains("dns: 192.168.77.54 2001:db8:77::53"),
        "{status}"
    );
    assert!(!status.contains("192.168.77.50"), "{status}");

    // The server goes silent: the box renews (unicast), rebinds (broadcast) and, at the end of
    // the lease (60 s at least), drops the address and says so.
    let from = server.seen().len();
    server.set_silent(true);
    let log = m
        .console()
        .unwrap()
        .wait_for(
            "DHCP lease ran out; address removed, asking again",
            LEASE_END,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", show(&server.seen())));
    assert!(!log.contains("refused"), "{log}");
    let seen = server.seen();
    let renewal = seen[from..]
        .iter()
        .position(|s| s.is_renewal() && s.ciaddr == second.address);
    let rebinding = seen[from..]
        .iter()
        .position(|s| s.is_rebinding() && s.ciaddr == second.address);
    assert!(
        matches!((renewal, rebinding), (Some(r), Some(b)) if r < b),
        "{}",
        show(&seen[from..])
    );
    let status = status_screen(&mut m);
    assert!(status.contains("address: none"), "{status}");
    assert!(status.contains("gateway: none"), "{status}");
    assert!(status.contains("dhcp: asking for a lease"), "{status}");
    // The lost lease's resolvers went with it; the router's stay.
    assert!(status.contains("dns: 2001:db8:77::53\n"), "{status}");
    server
        .wait_for(from, COMMAND, |s| s.kind == MessageType::Discover)
        .unwrap_or_else(|e| panic!("{e}"));

    m.console().unwrap().send_line("13").unwrap();
    m.wait_exit(COMMAND).unwrap_or_else(|e| panic!("{e}"));
}

/// From a lease's last ACK to its end (60 s: the box's shortest lease), 3× for a loaded box.
const LEASE_END: Duration = Duration::from_secs(180);
