//! Keeps the wall clock set from the stored NTP servers (`postern setup ntp`): an SNTP exchange
//! when the services start, again every 1024 s and as soon as the servers change, a minute apart
//! while none answers. The packets are [`super::sntp`]'s, the UDP and `clock_settime` hal's;
//! `postern status` shows the last setting (`admin::clock`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use super::sntp::{self, Timestamp};
use crate::admin::Admin;
use crate::admin::clock::{self, ClockSync};
use crate::delivery::Dns;
use crate::log::console::say;

/// Between syncs that worked (RFC 4330 asks for no less than a minute; NTP's default maximum
/// poll is 1024 s).
const RESYNC: Duration = Duration::from_secs(1024);
/// How often the stored servers are looked at, and the wait after a failed attempt.
const CHECK: Duration = Duration::from_secs(60);
/// How long one server gets to answer.
const WAIT: Duration = Duration::from_secs(3);
/// Smaller offsets are left alone: stepping the clock for them would only make it jitter.
const STEP_ABOVE_NS: i128 = 100_000_000;

/// Starts the task on the current runtime.
pub fn start(admin: Admin) {
    tokio::spawn(keep(admin));
}

async fn keep(admin: Admin) {
    let mut synced: Option<(Instant, Vec<String>)> = None;
    loop {
        let servers = admin
            .box_config()
            .await
            .map(|c| c.ntp_servers)
            .unwrap_or_default();
        let due = match &synced {
            None => true,
            Some((at, used)) => *used != servers || at.elapsed() >= RESYNC,
        };
        if !servers.is_empty() && due {
            match sync(&servers).await {
                Ok(done) => {
                    say!(
                        "postern: clock set from {} ({}), it was {:+.3} s off",
                        done.server,
                        done.address,
                        done.offset_ns as f64 / 1e9
                    );
                    clock::record_sync(done);
                    synced = Some((Instant::now(), servers));
                }
                Err(why) => {
                    clock::record_failure(why);
                    synced = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK) => {}
            _ = clock::wait_for_new_servers() => {}
        }
    }
}

/// The servers in turn until one answers; its answer sets the clock.
async fn sync(servers: &[String]) -> Result<ClockSync, String> {
    let mut failures = Vec::new();
    for server in servers {
        match addresses(server).await {
            Ok(ips) => {
                for ip in ips {
                    match ask(SocketAddr::new(ip, sntp::PORT)).await {
                        Ok(offset_ns) => {
                            return Ok(ClockSync {
                                server: server.clone(),
                                address: ip.to_string(),
                                at: SystemTime::now(),
                                offset_ns,
                            });
                        }
                        Err(e) => failures.push(format!("{server} ({ip}): {e}")),
                    }
                }
            }
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    Err(failures.join("; "))
}

async fn addresses(server: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (dns, _) = crate::admin::diag::dns::resolver(&[])?;
    dns.ips(server)
        .await
        .map_err(|e| format!("cannot resolve: {e:?}"))
}

/// One exchange with `server`; the clock stepped when it is off by more than a tenth of a
/// second. The offset found.
async fn ask(server: SocketAddr) -> Result<i128, String> {
    let answer = measure(server).await?;
    if answer.offset_ns.abs() > STEP_ABOVE_NS {
        step(answer.offset_ns).await?;
    }
    Ok(answer.offset_ns)
}

/// What `server` says of our clock.
async fn measure(server: SocketAddr) -> Result<sntp::Answer, String> {
    let exchange = move || {
        hal::sys::clock::exchange(server, WAIT, |t1| {
            sntp::request(Timestamp::from_unix(t1)).to_vec()
        })
    };
    let (reply, t1, t4) = tokio::task::spawn_blocking(exchange)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    sntp::answer(&reply, Timestamp::from_unix(t1), Timestamp::from_unix(t4))
        .map_err(|e| e.to_string())
}

/// Moves the wall clock by `offset_ns`.
async fn step(offset_ns: i128) -> Result<(), String> {
    let now = hal::sys::clock::now().as_nanos() as i128;
    let new = u64::try_from(now + offset_ns)
        .map_err(|_| "the server's time is before 1970".to_string())?;
    tokio::task::spawn_blocking(move || hal::sys::clock::set(Duration::from_nanos(new)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot set the clock: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on 127.0.0.1 that answers as a stratum 2 server `ahead` of our clock.
    fn server(ahead: Duration) -> SocketAddr {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, peer) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(n, sntp::LEN);
            let t = Timestamp::from_unix(hal::sys::clock::now() + ahead);
            let mut reply = [0u8; sntp::LEN];
            reply[0] = (4 << 3) | 4;
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48]);
            reply[32..40].copy_from_slice(&t.0.to_be_bytes());
            reply[40..48].copy_from_slice(&t.0.to_be_bytes());
            sock.send_to(&reply, peer).unwrap();
        });
        addr
    }

    /// The exchange through hal and the reply through the codec; the clock itself is not set
    /// here (a test must not move the host's clock).
    #[tokio::test]
    async fn a_server_an_hour_ahead_is_measured_as_such() {
        let a = measure(server(Duration::from_secs(3600))).await.unwrap();
        let off = a.offset_ns - 3_600_000_000_000;
        assert!(off.abs() < 50_000_000, "{a:?}");
        assert_eq!(a.stratum, 2);
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = measure(silent.local_addr().unwrap()).await.unwrap_err();
        assert!(e.contains("no answer"), "{e}");
    }
}
