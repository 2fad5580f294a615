//! eth0's DHCP lease, kept by one thread that drives hal's sans-IO client (RFC 2131): it takes
//! the lease, renews it at T1 from the server that gave it, rebinds at T2, applies a lease whose
//! address, gateway or DNS changed, and takes the address off eth0 when the lease is lost. The
//! thread stops once a newer network was applied.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hal::sys::dhcp::Lease;
use hal::sys::dhcp_client::{DhcpClient, Event, Loss, Output, Phase};
use hal::sys::dhcp_socket::{DhcpSocket, transaction_seed};
use hal::sys::net;

use super::boot::WAN;
use super::network;
use crate::log::console::{say, say_text};

/// The longest the thread sleeps before it looks whether its network is still the current one.
const NAP: Duration = Duration::from_secs(1);

/// The client's phase and lease, for the status screen; None when eth0 is not on DHCP.
static SHOWN: Mutex<Option<Shown>> = Mutex::new(None);

#[derive(Debug, Clone)]
struct Shown {
    phase: Phase,
    lease: Option<Lease>,
    next: Option<Instant>,
}

/// Starts the thread and waits up to `first` for a lease; returns what was done, for the
/// console and the boot log. `current` says whether this network is still the one applied.
pub fn start(
    current: impl Fn() -> bool + Send + 'static,
    lease_dns: bool,
    first: Duration,
) -> String {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("dhcp".into())
        .spawn(move || keep(current, lease_dns, tx));
    if let Err(e) = spawned {
        return format!("postern: cannot start the DHCP thread: {e}\n");
    }
    match rx.recv_timeout(first) {
        Ok(report) => report,
        Err(_) => format!(
            "postern: {WAN}: no DHCP lease within {} s; still asking in the background\n",
            first.as_secs()
        ),
    }
}

/// eth0 is no longer on DHCP (a static network was applied).
pub fn forget() {
    set_shown(None);
}

/// One line on the lease for the status screen, or nothing when eth0 is not on DHCP.
pub fn status(now: Instant) -> String {
    let Some(s) = SHOWN.lock().ok().and_then(|s| s.clone()) else {
        return String::new();
    };
    let server = s
        .lease
        .as_ref()
        .map_or(String::new(), |l| l.server.to_string());
    let within = s.next.map_or("never".to_string(), |t| {
        format!("in {}", span(t.saturating_duration_since(now)))
    });
    match s.phase {
        Phase::Selecting | Phase::Requesting => "dhcp: asking for a lease\n".into(),
        Phase::Bound => format!("dhcp: lease from {server}, renewed {within}\n"),
        Phase::Renewing => format!("dhcp: renewing with {server}; rebinding {within}\n"),
        Phase::Rebinding => format!("dhcp: rebinding with any server; the lease ends {within}\n"),
    }
}

/// `3 h 20 min`, `4 min 10 s`, `12 s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn set_shown(s: Option<Shown>) {
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = s;
    }
}

fn keep(current: impl Fn() -> bool, lease_dns: bool, first: mpsc::Sender<String>) {
    let mut first = Some(first);
    let mut socket = match DhcpSocket::open(WAN) {
        Ok(s) => s,
        Err(e) => {
            let line = format!("postern: {WAN}: cannot open DHCP's sockets: {e}\n");
            report(&mut first, line);
            return;
        }
    };
    let mut client = DhcpClient::new(socket.mac(), transaction_seed(), None, Instant::now());
    let mut buf = vec![0u8; 2048];
    while current() {
        let out = client.poll(Instant::now());
        show(&client, &current);
        act(&socket, out, &current, lease_dns, &mut first);
        let now = Instant::now();
        let wait = client
            .poll_at()
            .map_or(NAP, |t| t.saturating_duration_since(now).min(NAP));
        match socket.recv(&mut buf, wait) {
            Ok(Some(n)) => {
                let out = client.receive(Instant::now(), buf.get(..n).unwrap_or_default());
                show(&client, &current);
                act(&socket, out, &current, lease_dns, &mut first);
            }
            Ok(None) => {}
            Err(e) => {
                say!("postern: {WAN}: DHCP: cannot receive: {e}");
                std::thread::sleep(NAP);
            }
        }
    }
}

/// Updates the status screen's view of the client. Done before an event is applied and logged,
/// so that no one who read the log line sees the state from before it (the status screen once
/// showed "rebinding, the lease ends in 0 s" next to "address: none").
fn show(client: &DhcpClient, current: &impl Fn() -> bool) {
    if current() {
        set_shown(Some(Shown {
            phase: client.phase(),
            lease: client.lease().cloned(),
            next: client.next_deadline(),
        }));
    }
}

/// Sends what the client asks to send and applies what happened, unless a newer network was
/// applied meanwhile.
fn act(
    socket: &DhcpSocket,
    out: Output,
    current: &impl Fn() -> bool,
    lease_dns: bool,
    first: &mut Option<mpsc::Sender<String>>,
) {
    if let Some(Err(e)) = out.frame.map(|frame| socket.send(&frame)) {
        say!("postern: {WAN}: cannot send a DHCP message: {e}");
    }
    let Some(event) = out.event else { return };
    if !current() {
        return;
    }
    match event {
        Event::Bound(lease) => report(first, bind(&lease, lease_dns)),
        Event::Extended(_) => {}
        Event::Lost(loss) => {
            let why = match loss {
                Loss::Expired => "DHCP lease ran out",
                Loss::Refused => "DHCP server refused to renew the lease",
            };
            let removed = net::remove_ipv4(WAN);
            // Its resolvers went with it (they may not be reachable from the next network).
            // Both are gone before the line says so: whoever reads it sees the box without them.
            let resolvers = if lease_dns {
                network::write_resolv_conf(&[])
            } else {
                String::new()
            };
            match removed {
                Ok(()) => say!("postern: {WAN}: {why}; address removed, asking again"),
                Err(e) => say!("postern: {WAN}: {why}; cannot remove the address: {e}"),
            }
            say_text(&resolvers);
        }
    }
}

/// Hands the first report to the waiting [`start`], or prints it (a lease that came later, a
/// change on renewal).
fn report(first: &mut Option<mpsc::Sender<String>>, report: String) {
    let report = match first.take() {
        Some(tx) => match tx.send(report) {
            Ok(()) => return,
            Err(mpsc::SendError(r)) => r,
        },
        None => report,
    };
    say_text(&report);
}

/// Puts a lease on eth0 (and its resolvers in resolv.conf unless the stored network names its
/// own), then checks its gateway.
fn bind(lease: &Lease, lease_dns: bool) -> String {
    let cfg = net::Ipv4Config {
        address: lease.address,
        prefix_len: lease.prefix_len,
        gateway: lease.router,
    };
    let mut report = match net::configure_ipv4(WAN, &cfg) {
        Ok(()) => format!(
            "postern: {WAN} {}/{} gateway {} (DHCP from {}, {})\n",
            lease.address,
            lease.prefix_len,
            lease.router.map_or("none".into(), |g| g.to_string()),
            lease.server,
            length(lease)
        ),
        Err(e) => return format!("postern: cannot configure {WAN} from DHCP: {e}\n"),
    };
    // A lease without resolvers leaves none: the last lease's may be gone with it.
    if lease_dns {
        let dns: Vec<std::net::IpAddr> = lease.dns.iter().map(|&d| d.into()).collect();
        report += &network::write_resolv_conf(&dns);
    }
    if let Some(gw) = lease.router {
        report += &network::gateway_warning(lease.address, gw);
    }
    report
}

/// How long the box keeps the lease, as the log says it: the server's length unless it was under
/// the minimum the client keeps.
fn length(lease: &Lease) -> String {
    match lease.duration() {
        None => "a lease without end".into(),
        Some(d) if d.as_secs() == u64::from(lease.lease_secs) => format!("{} s", d.as_secs()),
        Some(d) => format!(
            "{} s: the server's {} s kept as the minimum",
            d.as_secs(),
            lease.lease_secs
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's first lease, for a day.
    fn a_lease() -> Lease {
        Lease {
            address: [10, 0, 2, 15].into(),
            prefix_len: 24,
            router: None,
            dns: vec![],
            server: [10, 0, 2, 2].into(),
            lease_secs: 86_400,
            renew_secs: None,
            rebind_secs: None,
        }
    }

    #[test]
    fn the_status_line_says_where_the_lease_is() {
        let now = Instant::now();
        let lease = a_lease();
        forget();
        assert_eq!(status(now), "");
        set_shown(Some(Shown {
            phase: Phase::Bound,
            lease: Some(lease.clone()),
            next: Some(now + Duration::from_secs(43_200)),
        }));
        assert_eq!(
            status(now),
            "dhcp: lease from 10.0.2.2, renewed in 12 h 0 min\n"
        );
        set_shown(Some(Shown {
            phase: Phase::Rebinding,
            lease: Some(lease),
            next: Some(now + Duration::from_secs(250)),
        }));
        assert_eq!(
            status(now),
            "dhcp: rebinding with any server; the lease ends in 4 min 10 s\n"
        );
        forget();
        assert_eq!(span(Duration::from_secs(12)), "12 s");
    }

    #[test]
    fn the_log_says_the_lease_length_the_box_keeps() {
        let mut lease = a_lease();
        assert_eq!(length(&lease), "86400 s");
        lease.lease_secs = 10;
        assert_eq!(
            length(&lease),
            "60 s: the server's 10 s kept as the minimum"
        );
        lease.lease_secs = u32::MAX;
        assert_eq!(length(&lease), "a lease without end");
    }
}
