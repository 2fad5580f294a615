//! The serial console prompt against a real daemon: the same commands as the command line.

use std::io::Cursor;

use postern::console::{self, ConsoleExit};
use postern::daemon::{Daemon, FlashSpec, Options};

fn start(dir: &std::path::Path) -> (tokio::runtime::Runtime, Daemon) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        flash: FlashSpec {
            path: dir.join("flash"),
            size: Some(4 << 20),
        },
        smtp: vec!["127.0.0.1:0".parse().unwrap()],
        submission: vec![],
        smtps: vec![],
        control: dir.join("control.sock"),
        hostname: "mx.console.test".into(),
        dns_servers: vec![],
        dns_timeout: std::time::Duration::from_secs(10),
        metrics: None,
    };
    let daemon = rt.block_on(Daemon::start(opts)).unwrap();
    (rt, daemon)
}

#[test]
fn status_at_the_prompt_then_poweroff() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let mut out = Vec::new();
    let exit = console::run(
        Cursor::new("status\r\n\r\nfrobnicate\r\npoweroff\r\nstatus\r\n"),
        &mut out,
        daemon.admin(),
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(exit, ConsoleExit::Poweroff);
    assert!(out.contains("hostname: mx.console.test"), "{out}");
    assert!(out.contains("listener: smtp 127.0.0.1:"), "{out}");
    assert!(
        out.contains("unrecognized subcommand 'frobnicate'"),
        "{out}"
    );
    // Nothing after poweroff is read.
    assert_eq!(out.matches("hostname:").count(), 1, "{out}");
    rt.block_on(daemon.shutdown());
}

#[test]
fn end_of_input_and_broken_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let mut out = Vec::new();
    let exit = console::run(
        Cursor::new("status 'unclosed\nhelp\n"),
        &mut out,
        daemon.admin(),
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(exit, ConsoleExit::Eof);
    assert!(out.contains("error: unclosed ' quote"), "{out}");
    assert!(
        out.contains("poweroff"),
        "help lists the console's own commands: {out}"
    );
    rt.block_on(daemon.shutdown());
}

#[test]
fn queue_views_metrics_and_the_mail_log_at_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let mut out = Vec::new();
    console::run(
        Cursor::new(
            "queue shape deferred\nqueue hold --sender '*@x.example'\nmetrics scrape\nlog -n 5\n",
        ),
        &mut out,
        daemon.admin(),
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("TOTAL 0"), "qshape's table, empty: {out}");
    assert!(out.contains("no queued message matches"), "{out}");
    assert!(out.contains("postfix_smtpd_connects_total 0"), "{out}");
    // A new flash keeps a mail log (which lines are in it depends on the other tests'
    // daemons in this process: the keeper is per process).
    assert!(!out.contains("keeps no mail log"), "{out}");
    rt.block_on(daemon.shutdown());
}
