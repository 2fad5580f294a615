//! Queue views and bulk actions through the admin commands (what the CLI, the control socket and
//! the console all carry out), over a real spool on a RAM flash and the real queue runner, with
//! 10 000 queued messages (POSTERN_QUEUE_VIEWS_N to change). Prints how long each answer took;
//! asserts only what the admin would see.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hal::flash::{Flash, FlashGeometry, RamFlash};
use postern::admin::commands::{BulkArgs, FilterArgs};
use postern::admin::{Admin, AdminCommand, QueueCommand, Reply, control};
use postern::console::Start;
use postern::mail::{EnhancedStatus, QueueState, StateChange, Transport};
use postern::queue::{Attempt, AttemptReport, Deliverer, DeliveryRequest, QueueName, RcptResult};
use postern::smtp::received::iso8601_utc;
use postern::spool::{Spool, SpoolGeometry, SpoolHandle, SpoolSettings, service};

mod common;

use common::admin::{admin_of, queue_over};
use common::fixtures;

const DOMAINS: usize = 10;
/// Message i arrived i % AGES minutes ago: up to four days, inside the queue lifetime (released
/// mail older than that would expire at once).
const AGES: u64 = 4 * 24 * 60;

/// Never reached in this test (every message waits), but the runner needs one.
struct Refused;

impl Deliverer for Refused {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results: req
                    .recipients
                    .iter()
                    .map(|&i| {
                        (
                            i,
                            RcptResult::Deferred {
                                status: EnhancedStatus::of(4, 4, 1),
                                reason: "connect to mx[192.0.2.9]:25: Connection refused".into(),
                            },
                        )
                    })
                    .collect(),
                destination_failed: true,
            },
            relay: None,
            connection_time: Duration::ZERO,
            transmission_time: Duration::ZERO,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Message `i`: from s{i%3}.example to r{i}@d{i%10}.example; arrived up to four days ago; deferred for `Connection refused` (even domains) or greylisting (odd), every 7th on hold.
fn state_of(i: usize, now: u64) -> QueueState {
    if i.is_multiple_of(7) {
        return QueueState::Hold;
    }
    let reason = if (i % DOMAINS).is_multiple_of(2) {
        "connect to mx.d.example[192.0.2.1]:25: Connection refused"
    } else {
        "host mx.d.example[192.0.2.2] said: 450 4.7.1 greylisted, try again later"
    };
    QueueState::Deferred {
        until: now + 86_400,
        reason: reason.into(),
    }
}

async fn fill(spool: &SpoolHandle, n: usize, now: u64) {
    let hop: Transport = "smtp:[127.0.0.1]:9".parse().unwrap();
    for start in (0..n).step_by(500) {
        let mut tasks = Vec::new();
        for i in start..(start + 500).min(n) {
            let h = spool.clone();
            let hop = hop.clone();
            tasks.push(tokio::spawn(async move {
                let to = vec![fixtures::recipient(
                    &format!("r{i}@d{}.example", i % DOMAINS),
                    &hop,
                )];
                let arrival = now - (i as u64 % AGES) * 60;
                let env = fixtures::envelope(&format!("a{i}@s{}.example", i % 3), to, arrival);
                let mut inc = h.begin(&env).await.unwrap();
                inc.write(format!("Subject: message {i}\r\n\r\nbody {i}\r\n").as_bytes())
                    .await
                    .unwrap();
                let qid = inc.commit().await.unwrap();
                h.set_state(qid, StateChange::new(state_of(i, now), now))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}

fn flash() -> RamFlash {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 64 << 20).unwrap());
    let geometry = SpoolGeometry::for_flash(flash.geometry());
    Spool::format(&mut flash, geometry).unwrap();
    flash
}

fn filter() -> FilterArgs {
    FilterArgs::default()
}

struct Timed<'a> {
    admin: &'a Admin,
    figures: Vec<(String, Duration)>,
}

impl Timed<'_> {
    async fn run(&mut self, what: &str, cmd: QueueCommand) -> Reply {
        let t = Instant::now();
        let reply = self.admin.execute(AdminCommand::Queue(cmd)).await;
        self.figures.push((what.to_string(), t.elapsed()));
        reply
    }
}

fn count_lines(reply: &Reply) -> usize {
    reply.text.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_shape_and_bulk_actions_on_a_big_queue() {
    let n: usize = std::env::var("POSTERN_QUEUE_VIEWS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let now = unix_now();
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let (spool, _writer) = service::spawn(spool).unwrap();
    let t = Instant::now();
    fill(&spool, n, now).await;
    let filled = t.elapsed();
    let (queue, _task) = queue_over(&spool, Arc::new(Refused));
    assert_eq!(queue.recover(&spool).await.unwrap(), n);
    let admin = admin_of(&spool, &queue, 64 << 20);
    let mut timed = Timed {
        admin: &admin,
        figures: Vec::new(),
    };
    let held0 = (0..n).filter(|i| i % 7 == 0).count();
    let in_d3 =
        |pred: &dyn Fn(usize) -> bool| (0..n).filter(|i| i % DOMAINS == 3 && pred(*i)).count();

    // list: one JSON line per selected message.
    let all = timed
        .run(
            "list --json (all)",
            QueueCommand::List {
                json: true,
                filter: filter(),
            },
        )
        .await;
    assert_eq!(count_lines(&all), n);
    let d3 = timed
        .run(
            "list --domain d3.example",
            QueueCommand::List {
                json: true,
                filter: FilterArgs {
                    domain: Some("d3.example".into()),
                    ..filter()
                },
            },
        )
        .await;
    assert_eq!(count_lines(&d3), in_d3(&|_| true));
    let held_s1 = timed
        .run(
            "list --queue hold --sender '*@s1.example'",
            QueueCommand::List {
                json: true,
                filter: FilterArgs {
                    queues: vec![QueueName::Hold],
                    sender: Some("*@s1.example".into()),
                    ..filter()
                },
            },
        )
        .await;
    assert_eq!(
        count_lines(&held_s1),
        (0..n).filter(|i| i % 7 == 0 && i % 3 == 1).count()
    );
    assert!(
        held_s1
            .text
            .lines()
            .all(|l| l.contains("\"queue_name\": \"hold\""))
    );
    let old_greylisted = timed
        .run(
            "list --reason greylisted --older-than 1d",
            QueueCommand::List {
                json: true,
                filter: FilterArgs {
                    reason: Some("GREYLISTED".into()),
                    older_than: Some(86_400),
                    ..filter()
                },
            },
        )
        .await;
    let expect = (0..n)
        .filter(|&i| i % 7 != 0 && (i % DOMAINS) % 2 == 1 && (i as u64 % AGES) * 60 >= 86_400)
        .count();
    // A second may pass between filling and asking: an age at the edge may tip over.
    assert!(
        count_lines(&old_greylisted).abs_diff(expect) <= 2,
        "{expect}"
    );

    // qshape: TOTAL counts every pending recipient; d3.example has its tenth.
    let shape = timed
        .run(
            "shape",
            QueueCommand::Shape {
                names: Vec::new(),
                by_sender: false,
                json: false,
                filter: filter(),
            },
        )
        .await;
    let row = |name: &str| -> Vec<String> {
        shape
            .text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{}", shape.text))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("TOTAL")[1], n.to_string());
    assert_eq!(row("d3.example")[1], in_d3(&|_| true).to_string());
    let by_sender = timed
        .run(
            "shape hold --by-sender",
            QueueCommand::Shape {
                names: vec![QueueName::Hold],
                by_sender: true,
                json: true,
                filter: filter(),
            },
        )
        .await;
    assert!(
        by_sender
            .text
            .contains(&format!("{{\"domain\": \"TOTAL\", \"total\": {held0},")),
        "{}",
        by_sender.text
    );

    // Bulk: without --yes only a count; with it, all of them, on flash.
    let hold_d3 = BulkArgs {
        targets: Vec::new(),
        filter: FilterArgs {
            domain: Some("d3.example".into()),
            queues: vec![QueueName::Deferred],
            ..filter()
        },
        yes: false,
    };
    let to_hold = in_d3(&|i| i % 7 != 0);
    let refused = timed
        .run(
            "hold --domain d3 (count only)",
            QueueCommand::Hold(hold_d3.clone()),
        )
        .await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused
            .text
            .starts_with(&format!("{to_hold} messages match")),
        "{}",
        refused.text
    );
    let held = timed
        .run(
            "hold --domain d3 --yes",
            QueueCommand::Hold(BulkArgs {
                yes: true,
                ..hold_d3
            }),
        )
        .await;
    assert_eq!(held.text, format!("{to_hold} messages held\n"));
    let on_flash = spool.list().await.unwrap();
    let d3_held = on_flash
        .iter()
        .filter(|m| m.envelope.recipients[0].address.ends_with("@d3.example"))
        .filter(|m| m.state == QueueState::Hold)
        .count();
    assert_eq!(d3_held, in_d3(&|_| true), "the spool has every hold");

    let released = timed
        .run(
            "release --sender '*@s2.example' --yes",
            QueueCommand::Release(BulkArgs {
                targets: Vec::new(),
                filter: FilterArgs {
                    sender: Some("*@s2.example".into()),
                    ..filter()
                },
                yes: true,
            }),
        )
        .await;
    let s2_held = (0..n)
        .filter(|i| i % 3 == 2 && (i % 7 == 0 || i % DOMAINS == 3))
        .count();
    let s2 = (0..n).filter(|i| i % 3 == 2).count();
    assert_eq!(
        released.text,
        format!(
            "{s2_held} messages released ({} skipped: not on hold)\n",
            s2 - s2_held
        )
    );

    let deleted = timed
        .run(
            "delete --domain d7.example --yes",
            QueueCommand::Delete(BulkArgs {
                targets: Vec::new(),
                filter: FilterArgs {
                    domain: Some("d7.example".into()),
                    ..filter()
                },
                yes: true,
            }),
        )
        .await;
    let in_d7 = (0..n).filter(|i| i % DOMAINS == 7).count();
    assert_eq!(deleted.text, format!("{in_d7} messages deleted\n"));
    assert_eq!(spool.info().await.unwrap().messages, n - in_d7);

    let flushed = timed
        .run(
            "flush --reason 'Connection refused'",
            QueueCommand::Flush {
                destination: None,
                filter: FilterArgs {
                    reason: Some("Connection refused".into()),
                    queues: vec![QueueName::Deferred],
                    ..filter()
                },
            },
        )
        .await;
    assert!(
        flushed
            .text
            .ends_with("deferred messages are being tried now\n")
    );

    let ids = timed
        .run(
            "hold ALL (count only)",
            QueueCommand::Hold(BulkArgs {
                targets: vec!["ALL".into()],
                ..BulkArgs::default()
            }),
        )
        .await;
    assert_eq!(ids.exit, 2);

    println!("queue views on {n} queued messages (filled in {filled:.2?}):");
    for (what, took) in &timed.figures {
        println!("  {what:<45} {:>8.1} ms", took.as_secs_f64() * 1000.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_and_bad_selections() {
    let now = unix_now();
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let (spool, _writer) = service::spawn(spool).unwrap();
    fill(&spool, 3, now).await;
    let (queue, _task) = queue_over(&spool, Arc::new(Refused));
    queue.recover(&spool).await.unwrap();
    let admin = admin_of(&spool, &queue, 64 << 20);
    let q = |c| admin.execute(AdminCommand::Queue(c));
    let nothing = q(QueueCommand::Hold(BulkArgs::default())).await;
    assert_eq!(nothing.exit, 1);
    assert!(
        nothing.text.starts_with("name the messages"),
        "{}",
        nothing.text
    );
    // ids[i] is message i's queue id (they were stored concurrently, in any order).
    let mut stored = spool.list().await.unwrap();
    stored.sort_by_key(|m| m.envelope.recipients[0].address.clone());
    let ids: Vec<String> = stored.iter().map(|m| m.qid.to_string()).collect();
    // Message 1 is deferred: one id needs no --yes.
    let one = q(QueueCommand::Hold(BulkArgs {
        targets: vec![ids[1].clone()],
        ..BulkArgs::default()
    }))
    .await;
    assert_eq!(one.text, format!("{}: held\n", ids[1]));
    let two = q(QueueCommand::Requeue(BulkArgs {
        targets: ids[1..].to_vec(),
        ..BulkArgs::default()
    }))
    .await;
    assert_eq!(
        (two.exit, two.text.as_str()),
        (
            2,
            "2 messages match; add --yes to have them requeued (`postern queue list` with the same filter shows them)\n"
        )
    );
    let none = q(QueueCommand::Delete(BulkArgs {
        filter: FilterArgs {
            domain: Some("nowhere.example".into()),
            ..FilterArgs::default()
        },
        ..BulkArgs::default()
    }))
    .await;
    assert_eq!(
        (none.exit, none.text.as_str()),
        (1, "no queued message matches\n")
    );

    // postcat's view: envelope, recipients, headers; the body only when asked.
    let shown = q(QueueCommand::Show {
        qid: ids[2].clone(),
        body: false,
        json: false,
    })
    .await;
    assert!(
        shown
            .text
            .starts_with(&format!("*** ENVELOPE RECORDS deferred/{} ***\n", ids[2])),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("deferred_until: "), "{}", shown.text);
    assert!(
        shown
            .text
            .contains("recipient: <r2@d2.example> next_hop=smtp:[127.0.0.1]:9 pending"),
        "{}",
        shown.text
    );
    assert!(
        shown.text.contains("Subject: message 2\n"),
        "{}",
        shown.text
    );
    assert!(!shown.text.contains("body 2"), "{}", shown.text);
    assert!(
        shown
            .text
            .ends_with(&format!("*** MESSAGE FILE END deferred/{} ***\n", ids[2]))
    );
    let with_body = q(QueueCommand::Show {
        qid: ids[2].clone(),
        body: true,
        json: false,
    })
    .await;
    assert!(
        with_body.text.contains("Subject: message 2\n\nbody 2\n"),
        "{}",
        with_body.text
    );

    // Every record with its time, oldest first: message 1 arrived a minute before `now`, was
    // deferred at `now`, and the admin held it above (at the runner's clock, a moment later).
    let held = q(QueueCommand::Show {
        qid: ids[1].clone(),
        body: false,
        json: false,
    })
    .await;
    let history: Vec<&str> = held
        .text
        .split_once(&format!("*** HISTORY hold/{} ***\n", ids[1]))
        .and_then(|(_, rest)| rest.split_once("*** MESSAGE CONTENTS"))
        .map(|(h, _)| h.lines().collect())
        .unwrap_or_else(|| panic!("no history section: {}", held.text));
    assert_eq!(history.len(), 3, "{}", held.text);
    assert_eq!(
        history[0],
        format!(
            "{} from=<a1@s1.example>, size=30, nrcpt=1 (queued)",
            iso8601_utc(now - 60)
        )
    );
    assert_eq!(
        history[1],
        format!(
            "{} deferred until {} (host mx.d.example[192.0.2.2] said: 450 4.7.1 greylisted, try again later)",
            iso8601_utc(now),
            iso8601_utc(now + 86_400)
        )
    );
    let (at, what) = history[2].split_once(' ').unwrap();
    assert_eq!(what.trim_start(), "placed on hold");
    assert!(
        (now..now + 60).any(|t| iso8601_utc(t) == at),
        "held at the runner's clock: {at}"
    );
    // The same through the control socket's JSON, times in Unix seconds.
    let json = q(QueueCommand::Show {
        qid: ids[1].clone(),
        body: false,
        json: true,
    })
    .await;
    assert_eq!(json.exit, 0);
    let j = json.text.trim_end();
    assert!(
        j.starts_with(&format!(
            "{{\"queue_name\": \"hold\", \"queue_id\": \"{}\", \"arrival_time\": {}",
            ids[1],
            now - 60
        )),
        "{j}"
    );
    assert!(
        j.contains(&format!(
            "{{\"time\": {now}, \"type\": \"deferred\", \"until\": {}",
            now + 86_400
        )),
        "{j}"
    );
    assert!(j.contains("\"type\": \"hold\"}]"), "{j}");
    assert!(!j.contains("\"body\""), "no body unless asked: {j}");
    assert!(j.ends_with('}') && !j.contains('\n'), "one line: {j}");
}

/// A listing longer than a part comes over the control socket in parts as it is made (the
/// daemon never holds the whole queue's text), and together they are the listing whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listing_comes_over_the_control_socket_in_parts() {
    let n = 2000;
    let now = unix_now();
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let (spool, _writer) = service::spawn(spool).unwrap();
    fill(&spool, n, now).await;
    let (queue, _task) = queue_over(&spool, Arc::new(Refused));
    queue.recover(&spool).await.unwrap();
    let admin = admin_of(&spool, &queue, 64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let listener = postern::daemon::control::bind(&path).unwrap();
    let server = tokio::spawn(postern::daemon::control::serve(listener, admin.clone()));
    for json in [false, true] {
        let cmd = AdminCommand::Queue(QueueCommand::List {
            json,
            filter: filter(),
        });
        let whole = admin.execute(cmd.clone()).await;
        let path = path.clone();
        let (parts, last) = tokio::task::spawn_blocking(move || {
            let mut parts = Vec::new();
            let last = control::request_to(&path, &cmd, |p| {
                parts.push(p.to_string());
                true
            });
            (parts, last.unwrap())
        })
        .await
        .unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        assert_eq!(last.exit, 0);
        assert_eq!(parts.concat() + &last.text, whole.text);
        let lines = whole.text.lines().count();
        match json {
            false => assert!(
                whole.text.ends_with(&format!("in {n} Requests.\n")),
                "{lines}"
            ),
            true => assert_eq!(lines, n),
        }
    }
    server.abort();

    // The serial console's command line writes it the same way: in parts, never whole.
    let whole = admin
        .execute(AdminCommand::Queue(QueueCommand::List {
            json: false,
            filter: FilterArgs::default(),
        }))
        .await
        .text;
    let console = std::thread::spawn(move || {
        let mut out = Writes::default();
        let input = std::io::Cursor::new(b"queue list\n".to_vec());
        let exit = postern::console::run(input, &mut out, &admin, &NoMachine, Start::CommandLine);
        (exit, out)
    });
    let (exit, out) = tokio::task::spawn_blocking(move || console.join().unwrap())
        .await
        .unwrap();
    assert_eq!(exit, postern::console::ConsoleExit::Eof);
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(text.contains(&whole), "{}", &text[..text.len().min(2000)]);
    assert!(
        out.largest < whole.len() / 2,
        "the largest write was {} bytes of {}",
        out.largest,
        whole.len()
    );
}

/// A serial line: what was written, and the largest single write.
#[derive(Default)]
struct Writes {
    bytes: Vec<u8>,
    largest: usize,
}

impl std::io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A console with no network to apply.
struct NoMachine;

impl postern::console::Platform for NoMachine {
    fn apply_network(&self, _: &postern::config::box_settings::NetworkSettings) -> String {
        String::new()
    }
    /// Nothing is typed while the listing is written.
    fn input_waiting(&self, _: Duration) -> bool {
        false
    }
}
