//! `postern diag ping HOST`: ICMP echo requests, one a second, and what came back, as ping(8)
//! prints it. The socket and the packets are `hal::sys::icmp`'s; this resolves the name and keeps
//! the count.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hal::sys::icmp::{Answer, Pinger};

use super::dns::resolver;
use crate::admin::Reply;
use crate::delivery::Dns;

/// Most echo requests one command sends.
pub const MAX_COUNT: u16 = 20;
/// How long each request waits for its answer, and the pace of the requests.
const WAIT: Duration = Duration::from_secs(1);
/// What each request carries (56 bytes, as ping(8) sends).
const DATA: &[u8; 56] = b"postern diag ping: is this host there? 0123456789abcdefg";

async fn address(servers: &[SocketAddr], host: &str) -> Result<Ipv4Addr, String> {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => return Ok(ip),
        Ok(IpAddr::V6(_)) => return Err("IPv6 ping is not supported yet".into()),
        Err(_) => {}
    }
    let (dns, _) = resolver(servers)?;
    let ips = dns
        .ips(host)
        .await
        .map_err(|e| format!("cannot resolve {host}: {e:?}"))?;
    ips.into_iter()
        .find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{host} has no IPv4 address"))
}

pub async fn run(servers: &[SocketAddr], host: &str, count: u16) -> Reply {
    let count = count.clamp(1, MAX_COUNT);
    let ip = match address(servers, host).await {
        Ok(ip) => ip,
        Err(e) => return Reply::failed(format!("ping: {e}\n")),
    };
    let host = host.to_string();
    let pinging = move || echoes(&host, ip, count);
    match tokio::task::spawn_blocking(pinging).await {
        Ok(Ok((true, text))) => Reply::ok(text),
        Ok(Ok((false, text))) => Reply::failed(text),
        Ok(Err(e)) => Reply::failed(format!("ping: cannot open an ICMP socket: {e}\n")),
        Err(e) => Reply::failed(format!("ping did not finish: {e}\n")),
    }
}

/// Sends `count` requests; the transcript and whether any reply came.
fn echoes(host: &str, ip: Ipv4Addr, count: u16) -> std::io::Result<(bool, String)> {
    let pinger = Pinger::open()?;
    let mut text = format!("PING {host} ({ip}): {} data bytes\n", DATA.len());
    let mut received = 0u16;
    for seq in 1..=count {
        let started = Instant::now();
        match pinger.echo(ip, seq, DATA, WAIT) {
            Ok(Some((Answer::Reply(from), rtt))) => {
                received += 1;
                let ms = rtt.as_secs_f64() * 1000.0;
                let _ = writeln!(text, "reply from {from}: icmp_seq={seq} time={ms:.1} ms");
            }
            Ok(Some((Answer::Unreachable { from, reason }, _))) => {
                let _ = writeln!(text, "from {from}: icmp_seq={seq} {reason}");
            }
            Ok(None) => {
                let _ = writeln!(text, "no reply for icmp_seq={seq}");
            }
            Err(e) => {
                let _ = writeln!(text, "icmp_seq={seq}: {e}");
            }
        }
        if seq < count {
            std::thread::sleep(WAIT.saturating_sub(started.elapsed()));
        }
    }
    let loss = 100 * u32::from(count - received) / u32::from(count);
    let _ = write!(
        text,
        "--- {host} ping statistics ---\n{count} packets transmitted, {received} received, {loss}% packet loss\n"
    );
    Ok((received > 0, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs an ICMP socket (root, or a ping_group_range with this user); skipped otherwise.
    #[tokio::test]
    async fn loopback_replies_and_statistics() {
        if Pinger::open().is_err() {
            println!("no ICMP socket for this user: skipped");
            return;
        }
        let r = run(&[], "127.0.0.1", 2).await;
        assert_eq!(r.exit, 0, "{}", r.text);
        assert!(
            r.text
                .starts_with("PING 127.0.0.1 (127.0.0.1): 56 data bytes\n"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("reply from 127.0.0.1: icmp_seq=2 time="),
            "{}",
            r.text
        );
        assert!(
            r.text
                .ends_with("2 packets transmitted, 2 received, 0% packet loss\n"),
            "{}",
            r.text
        );
    }

    #[tokio::test]
    async fn what_cannot_be_pinged_says_why() {
        let r = run(&[], "2001:db8::1", 1).await;
        assert_eq!(r.text, "ping: IPv6 ping is not supported yet\n");
        assert_eq!(r.exit, 1);
    }
}
