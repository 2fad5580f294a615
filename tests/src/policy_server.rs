//! A policy service (Postfix's policy delegation protocol) for the tests, on 127.0.0.1: it
//! answers each request with the action set for its recipient (`DUNNO` otherwise) and keeps the
//! requests it got.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

pub struct PolicyServer {
    pub addr: SocketAddr,
    actions: Arc<Mutex<HashMap<String, String>>>,
    requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl PolicyServer {
    pub fn start() -> PolicyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind policy server");
        let addr = listener.local_addr().expect("policy addr");
        let actions: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let requests: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let (a, r) = (actions.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (a, r) = (a.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &a, &r));
            }
        });
        PolicyServer {
            addr,
            actions,
            requests,
        }
    }

    /// Answers `action=ACTION` for requests about `recipient`.
    pub fn answer(&self, recipient: &str, action: &str) {
        self.actions
            .lock()
            .expect("actions")
            .insert(recipient.to_string(), action.to_string());
    }

    /// The requests so far, as attribute maps.
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.requests.lock().expect("requests").clone()
    }

    /// `check_policy_service inet:127.0.0.1:PORT`.
    pub fn restriction(&self) -> String {
        format!("check_policy_service inet:{}", self.addr)
    }
}

fn serve(
    stream: std::net::TcpStream,
    actions: &Mutex<HashMap<String, String>>,
    requests: &Mutex<Vec<HashMap<String, String>>>,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut attrs = HashMap::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if !line.is_empty() {
            if let Some((k, v)) = line.split_once('=') {
                attrs.insert(k.to_string(), v.to_string());
            }
            continue;
        }
        let recipient = attrs.get("recipient").cloned().unwrap_or_default();
        let action = actions
            .lock()
            .expect("actions")
            .get(&recipient)
            .cloned()
            .unwrap_or_else(|| "DUNNO".into());
        requests
            .lock()
            .expect("requests")
            .push(std::mem::take(&mut attrs));
        if writer
            .write_all(format!("action={action}\n\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}
