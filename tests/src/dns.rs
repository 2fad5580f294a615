//! A tiny authoritative DNS server on 127.0.0.1 (UDP) for the tests: the records a test needs,
//! NXDOMAIN for every other name, and names that answer SERVFAIL or never answer. The daemon is
//! pointed at it with `postern run --dns 127.0.0.1:PORT`; the machine's resolver is never used.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One record's data.
#[derive(Debug, Clone)]
pub enum Record {
    A(IpAddr),
    Mx(u16, String),
    Txt(String),
    Ptr(String),
}

/// How a name answers.
#[derive(Debug, Clone)]
enum Behaviour {
    Records(Vec<Record>),
    ServFail,
    Silent,
}

type Zone = HashMap<String, Behaviour>;

/// A running server; it stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = socket.local_addr().expect("dns addr");
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (z, q, s) = (zone.clone(), queries.clone(), stop.clone());
        std::thread::spawn(move || serve(&socket, &z, &q, &s));
        DnsServer {
            addr,
            zone,
            queries,
            stop,
        }
    }

    /// A server that holds `zone` from the start.
    pub fn with_zone(zone: &[(&str, Record)]) -> DnsServer {
        let server = DnsServer::start();
        for (name, record) in zone {
            server.add(name, record.clone());
        }
        server
    }

    /// Adds a record at `name` (its type says which questions it answers).
    pub fn add(&self, name: &str, record: Record) -> &Self {
        let mut zone = self.zone.lock().expect("zone");
        match zone
            .entry(key(name))
            .or_insert(Behaviour::Records(Vec::new()))
        {
            Behaviour::Records(r) => r.push(record),
            other => *other = Behaviour::Records(vec![record]),
        }
        self
    }

    /// Every question for `name` gets SERVFAIL.
    pub fn servfail(&self, name: &str) -> &Self {
        self.zone
            .lock()
            .expect("zone")
            .insert(key(name), Behaviour::ServFail);
        self
    }

    /// Questions for `name` are never answered.
    pub fn silent(&self, name: &str) -> &Self {
        self.zone
            .lock()
            .expect("zone")
            .insert(key(name), Behaviour::Silent);
        self
    }

    /// `name/TYPE` of every question asked so far.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().expect("queries").clone()
    }

    /// The names MX records were asked for, so a test can check that none were.
    pub fn mx_questions(&self) -> Vec<String> {
        self.queries()
            .iter()
            .filter_map(|q| q.strip_suffix("/MX").map(str::to_string))
            .collect()
    }

    /// `--dns 127.0.0.1:PORT` for `postern run`.
    pub fn flag(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const A: u16 = 1;
const PTR: u16 = 12;
const MX: u16 = 15;
const TXT: u16 = 16;
const AAAA: u16 = 28;

fn serve(socket: &UdpSocket, zone: &Mutex<Zone>, queries: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, qtype, question_end)) = parse_question(&buf[..n]) else {
            continue;
        };
        let type_name = match qtype {
            A => "A",
            PTR => "PTR",
            MX => "MX",
            TXT => "TXT",
            AAAA => "AAAA",
            _ => "other",
        };
        queries
            .lock()
            .expect("queries")
            .push(format!("{name}/{type_name}"));
        let behaviour = zone.lock().expect("zone").get(&key(&name)).cloned();
        let (rcode, answers) = match behaviour {
            None => (3, Vec::new()),
            Some(Behaviour::Silent) => continue,
            Some(Behaviour::ServFail) => (2, Vec::new()),
            Some(Behaviour::Records(records)) => (
                0,
                records
                    .iter()
                    .filter_map(|r| rdata(r, qtype))
                    .collect::<Vec<_>>(),
            ),
        };
        let reply = response(&buf[..question_end], rcode, &answers);
        let _ = socket.send_to(&reply, from);
    }
}

/// The question's name, type, and where the question section ends.
fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).into_owned());
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// A name in wire form, label by label as given (even past DNS's limits, to test a resolver
/// against a server that sends such a name).
fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

fn rdata(r: &Record, qtype: u16) -> Option<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let rtype = match r {
        Record::A(IpAddr::V4(ip)) if qtype == A => {
            out.extend_from_slice(&ip.octets());
            A
        }
        Record::A(IpAddr::V6(ip)) if qtype == AAAA => {
            out.extend_from_slice(&ip.octets());
            AAAA
        }
        Record::Mx(pref, exchange) if qtype == MX => {
            out.extend_from_slice(&pref.to_be_bytes());
            encode_name(exchange, &mut out);
            MX
        }
        Record::Txt(text) if qtype == TXT => {
            for chunk in text.as_bytes().chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
            TXT
        }
        Record::Ptr(name) if qtype == PTR => {
            encode_name(name, &mut out);
            PTR
        }
        _ => return None,
    };
    Some((rtype, out))
}

fn response(query: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]);
    // QR, AA, RD as asked, RA; the rcode.
    out.push(0x84 | (query[2] & 0x01));
    out.push(0x80 | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..]);
    for (rtype, data) in answers {
        // A pointer to the question's name.
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}
