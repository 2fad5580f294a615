//! A small authoritative DNS server on 127.0.0.1 (UDP) for end-to-end tests, so `postern run
//! --dns` resolves the test's names and never the machine's resolver. It answers A and MX
//! questions from a fixed zone (any other type: no records), NXDOMAIN for names it does not
//! hold, and keeps every question it was asked, so a test can check that no MX lookup was made.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;

/// One record of the zone.
#[derive(Debug, Clone)]
pub enum Record {
    A(Ipv4Addr),
    /// Preference and exchange.
    Mx(u16, String),
}

/// The running server; stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `zone`: name (any case, no trailing dot) → its records.
    pub fn start(zone: &[(&str, Record)]) -> DnsServer {
        let mut map: HashMap<String, Vec<Record>> = HashMap::new();
        for (name, r) in zone {
            map.entry(name.to_ascii_lowercase())
                .or_default()
                .push(r.clone());
        }
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = sock.local_addr().expect("DNS address");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&asked), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((reply, question)) = answer(&buf[..n], &map) {
                    a.lock().expect("asked").push(question);
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        DnsServer {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// The MX questions asked so far (names without the trailing dot).
    pub fn mx_questions(&self) -> Vec<String> {
        self.asked
            .lock()
            .expect("asked")
            .iter()
            .filter(|(_, t)| *t == TYPE_MX)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every question asked so far: (name, type number).
    pub fn questions(&self) -> Vec<(String, u16)> {
        self.asked.lock().expect("asked").clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query, and the question it asked; None for what is not a query.
fn answer(q: &[u8], zone: &HashMap<String, Vec<Record>>) -> Option<(Vec<u8>, (String, u16))> {
    let header = q.get(..12)?;
    if header[2] & 0x80 != 0 || u16::from_be_bytes([header[4], header[5]]) != 1 {
        return None;
    }
    // The question name: labels, no compression in a query.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    let question_end = at + 4;
    let name = labels.join(".");
    let records = zone.get(&name);
    let answers: Vec<&Record> = records
        .map(|rs| {
            rs.iter()
                .filter(|r| match r {
                    Record::A(_) => qtype == TYPE_A,
                    Record::Mx(..) => qtype == TYPE_MX,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&header[..2]);
    // QR, AA, RD as asked; RA; NXDOMAIN for a name the zone does not hold.
    out.push(0x84 | (header[2] & 0x01));
    out.push(if records.is_some() { 0x80 } else { 0x83 });
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(q.get(12..question_end)?);
    for r in answers {
        out.extend_from_slice(&[0xC0, 0x0C]);
        let (rtype, rdata) = match r {
            Record::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Record::Mx(pref, exchange) => {
                let mut d = pref.to_be_bytes().to_vec();
                for label in exchange.trim_end_matches('.').split('.') {
                    d.push(label.len() as u8);
                    d.extend_from_slice(label.as_bytes());
                }
                d.push(0);
                (TYPE_MX, d)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some((out, (name, qtype)))
}
