//! The async front: concurrent sessions share syncs (group commit), answers come only after the
//! sync, abandoned messages leave nothing behind, and everything survives a restart.

use hal::flash::{FlashGeometry, RamFlash};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueState, RecipientOutcome, StateChange};
use postern::spool::{Region, Spool, SpoolError, SpoolGeometry, SpoolSettings, Update, service};

mod common;

use common::fixtures;

fn envelope(n: usize) -> Envelope {
    let hop = Transport::mx("example.org").unwrap();
    let to = vec![fixtures::recipient("a@example.org", &hop); 2];
    fixtures::envelope(&format!("s{n}@example.com"), to, n as u64)
}

fn body(n: usize) -> Vec<u8> {
    (0..5000 + n).map(|i| (i * 13 + n) as u8).collect()
}

fn flash() -> RamFlash {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 4096 * 256).unwrap());
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 8,
            log_blocks: 0,
        },
    )
    .unwrap();
    flash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_share_syncs_and_everything_survives_restart() {
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let (handle, writer) = service::spawn(spool).unwrap();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move {
            let mut inc = h.begin(&envelope(n)).await?;
            // Bodies arrive in uneven pieces, as from a socket.
            for piece in body(n).chunks(777) {
                inc.write(piece).await?;
            }
            let qid = inc.commit().await?;
            Ok::<_, SpoolError>((qid, n))
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap().unwrap());
    }
    let info = handle.info().await.unwrap();
    assert_eq!(info.messages, 40);
    assert!(
        info.syncs < 40,
        "40 commits took {} syncs: no group commit",
        info.syncs
    );
    // Abandoned: dropped without commit.
    {
        let mut inc = handle.begin(&envelope(99)).await.unwrap();
        inc.write(b"never finished").await.unwrap();
    }
    let (q0, _) = done[0];
    handle
        .mark_recipient(
            q0,
            1,
            RecipientOutcome::Delivered {
                relay: "mx[192.0.2.1]:25".into(),
                reply: "250 ok".into(),
            },
            1_795_000_000,
        )
        .await
        .unwrap();
    let (q1, _) = done[1];
    handle
        .set_state(q1, StateChange::new(QueueState::Hold, 1_795_000_000))
        .await
        .unwrap();
    let (q2, _) = done[2];
    handle.remove(q2).await.unwrap();
    handle
        .write_slot(Region::Config, b"zimbraMtaRelayHost=x".to_vec())
        .await
        .unwrap();
    for (q, n) in &done {
        if *q != q2 {
            assert_eq!(handle.read_body(*q).await.unwrap(), body(*n));
        }
    }
    assert_eq!(handle.list().await.unwrap().len(), 39);
    assert!(matches!(
        handle
            .mark_recipient(
                q2,
                0,
                RecipientOutcome::Delivered {
                    relay: String::new(),
                    reply: String::new()
                },
                1_795_000_000,
            )
            .await,
        Err(SpoolError::NoSuchMessage(_))
    ));
    drop(handle);

    let flash = writer.join().unwrap().into_flash();
    let (mut spool, report) = Spool::open(flash, SpoolSettings::default()).unwrap();
    assert_eq!(report.messages, 39);
    assert_eq!(report.dropped_uncommitted, 1, "the abandoned message");
    assert!(report.lost.is_empty() && report.damaged.is_empty());
    for (q, n) in &done {
        if *q != q2 {
            assert_eq!(spool.read_body(*q).unwrap(), body(*n));
        }
    }
    assert!(spool.get(q0).unwrap().outcomes[1].is_some());
    assert_eq!(spool.get(q1).unwrap().state, QueueState::Hold);
    assert_eq!(
        spool.read_slot(Region::Config).unwrap().as_deref(),
        Some(&b"zimbraMtaRelayHost=x"[..])
    );
}

#[test]
fn full_maps_to_452_through_the_handle() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut small = RamFlash::new(FlashGeometry::new(512, 512 * 24).unwrap());
        Spool::format(
            &mut small,
            SpoolGeometry {
                config_slot_blocks: 1,
                directory_slot_blocks: 1,
                segment_blocks: 2,
                log_blocks: 0,
            },
        )
        .unwrap();
        let settings = SpoolSettings {
            chunk_size: 128,
            ..SpoolSettings::default()
        };
        let (spool, _) = Spool::open(small, settings).unwrap();
        let (handle, _writer) = service::spawn(spool).unwrap();
        let mut accepted = 0;
        let err = loop {
            let res = async {
                let mut inc = handle.begin(&envelope(accepted)).await?;
                inc.write(&[b'x'; 400]).await?;
                inc.commit().await
            }
            .await;
            match res {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 100);
        };
        assert_eq!(err, SpoolError::Full);
        assert_eq!(
            postern::inbound::spool_reply(&err).to_string(),
            "452 4.3.1 Insufficient system storage"
        );
        assert_eq!(handle.list().await.unwrap().len(), accepted);
        // Once the writer has seen the spool full, a session is refused at the start (DATA),
        // not after sending its message; a bounce is still the writer's to judge. A message
        // too big for the room left is refused and abandoned, which gives the room back: the
        // spool takes small ones until it has no room for one.
        let mut refused_at_begin = false;
        for n in 0..200 {
            match handle.begin(&envelope(1000 + n)).await {
                Err(e) => {
                    assert_eq!(e, SpoolError::Full);
                    refused_at_begin = true;
                    break;
                }
                Ok(mut inc) => {
                    inc.write(&[b'x'; 40]).await.unwrap();
                    inc.commit().await.unwrap();
                }
            }
        }
        assert!(refused_at_begin);
        let mut bounce = envelope(2000);
        bounce.sender = String::new();
        assert!(bounce.is_bounce());
        assert!(handle.begin(&bounce).await.is_ok());
    });
}

/// A RamFlash the test can look at while the writer thread owns it.
#[derive(Clone)]
struct Shared(std::sync::Arc<std::sync::Mutex<RamFlash>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, RamFlash> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl hal::flash::ErrorType for Shared {
    type Error = hal::flash::FlashError;
}

impl hal::flash::ReadNorFlash for Shared {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.lock().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.lock().capacity()
    }
}

impl hal::flash::NorFlash for Shared {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.lock().erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.lock().write(offset, bytes)
    }
}

impl hal::flash::Flash for Shared {
    fn geometry(&self) -> FlashGeometry {
        self.lock().geometry()
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        self.lock().sync()
    }
}

use hal::flash::Flash as _;

/// The promise through the async front: the moment `commit()` resolves, a power cut that loses
/// every unsynced write (a disk's volatile cache) still leaves the message on flash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_resolves_only_after_its_sync() {
    let mut ram = flash();
    ram.track_durable();
    let shared = Shared(std::sync::Arc::new(std::sync::Mutex::new(ram)));
    let (spool, _) = Spool::open(shared.clone(), SpoolSettings::default()).unwrap();
    let (handle, _writer) = service::spawn(spool).unwrap();
    let mut tasks = Vec::new();
    for n in 0..12 {
        let h = handle.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut inc = h.begin(&envelope(n)).await.unwrap();
            inc.write(&body(n)).await.unwrap();
            let qid = inc.commit().await.unwrap();
            // Power cut now: only what was synced survives.
            let image = shared.lock().durable_image().unwrap().to_vec();
            let g = shared.lock().geometry();
            let (mut spool, _) = Spool::open(
                RamFlash::from_image(g, image).unwrap(),
                SpoolSettings::default(),
            )
            .unwrap();
            assert_eq!(
                spool.read_body(qid).unwrap(),
                body(n),
                "acknowledged {qid} was not on flash"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A session that never finishes must not hold others' commits longer than the group-commit
/// delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_session_delays_others_by_the_bound_only() {
    let settings = SpoolSettings {
        group_commit_delay: std::time::Duration::from_millis(20),
        ..SpoolSettings::default()
    };
    let (spool, _) = Spool::open(flash(), settings).unwrap();
    let (handle, _writer) = service::spawn(spool).unwrap();
    let mut stalled = handle.begin(&envelope(1)).await.unwrap();
    stalled.write(b"Subject: slow client\r\n").await.unwrap();
    for n in 0..5 {
        let started = std::time::Instant::now();
        let mut inc = handle.begin(&envelope(n)).await.unwrap();
        inc.write(&body(n)).await.unwrap();
        inc.commit().await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(15),
            "commit {n} did not wait for the stalled session's batch: {took:?}"
        );
        assert!(
            took < std::time::Duration::from_millis(500),
            "commit {n} took {took:?}, far over the 20 ms bound"
        );
    }
    drop(stalled);
}

/// A flash with a mail log region.
fn flash_with_log() -> RamFlash {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 4096 * 256).unwrap());
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 8,
            log_blocks: 4,
        },
    )
    .unwrap();
    flash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_head_goes_with_the_commit_and_survives_restart() {
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let (handle, writer) = service::spawn(spool).unwrap();
    let mut inc = handle.begin_holding_head(&envelope(1)).await.unwrap();
    // The body behind the header section arrives first; the edited head is known at the end.
    inc.write(b"the body\r\n").await.unwrap();
    let qid = inc
        .commit_with_head(b"X-Spam-Flag: NO\r\nSubject: hi\r\n\r\n".to_vec())
        .await
        .unwrap();
    let whole = b"X-Spam-Flag: NO\r\nSubject: hi\r\n\r\nthe body\r\n".to_vec();
    assert_eq!(handle.read_body(qid).await.unwrap(), whole);
    drop(handle);
    let flash = writer.join().unwrap().into_flash();
    let (mut spool, report) = Spool::open(flash, SpoolSettings::default()).unwrap();
    assert_eq!(report.messages, 1);
    assert_eq!(spool.read_body(qid).unwrap(), whole);
}

/// A head released early (the header section ended within the body) waits in the session for
/// the first full chunk or the commit: small and large messages alike come back whole, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_written_early_reaches_flash_in_order_small_or_large() {
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let chunk = SpoolSettings::default().chunk_size as usize;
    let (handle, writer) = service::spawn(spool).unwrap();
    let head = b"Received: by gw\r\nSubject: hi\r\n\r\n".to_vec();
    let mut qids = Vec::new();
    for (n, len) in [(1, 100), (2, 3 * chunk + 17)] {
        let mut inc = handle.begin_holding_head(&envelope(n)).await.unwrap();
        inc.write_head(head.clone()).await.unwrap();
        let b: Vec<u8> = body(n).into_iter().cycle().take(len).collect();
        for piece in b.chunks(1000) {
            inc.write(piece).await.unwrap();
        }
        let qid = inc.commit().await.unwrap();
        qids.push((qid, [head.clone(), b].concat()));
    }
    for (qid, whole) in &qids {
        assert_eq!(&handle.read_body(*qid).await.unwrap(), whole);
    }
    drop(handle);
    let flash = writer.join().unwrap().into_flash();
    let (mut spool, report) = Spool::open(flash, SpoolSettings::default()).unwrap();
    assert_eq!(report.messages, 2);
    for (qid, whole) in &qids {
        assert_eq!(&spool.read_body(*qid).unwrap(), whole);
    }
}

/// A commit that carries the whole message gives back a copy of the body exactly as stored
/// (held head, early head, no head); one that does not (a chunk already written, or more
/// than asked) gives back none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_keeps_the_body_as_stored_only_when_it_carries_all_of_it() {
    let (spool, _) = Spool::open(flash(), SpoolSettings::default()).unwrap();
    let chunk = SpoolSettings::default().chunk_size as usize;
    let (handle, _writer) = service::spawn(spool).unwrap();
    let head = b"Received: by gw\r\nSubject: hi\r\n\r\n".to_vec();
    for (n, len, held, early) in [
        (1, 100, true, false),
        (2, 100, true, true),
        (3, 100, false, false),
        (4, 3 * chunk + 17, true, false),
        (5, 990, true, false),
    ] {
        let mut inc = match held {
            true => handle.begin_holding_head(&envelope(n)).await.unwrap(),
            false => handle.begin(&envelope(n)).await.unwrap(),
        };
        if early {
            inc.write_head(head.clone()).await.unwrap();
        }
        let b: Vec<u8> = body(n).into_iter().take(len).collect();
        for piece in b.chunks(1000) {
            inc.write(piece).await.unwrap();
        }
        let at_commit = (held && !early).then(|| head.clone());
        let committed = inc.commit_keeping(at_commit, 1000).await.unwrap();
        let stored = handle.read_body(committed.qid).await.unwrap();
        let expect = if held { [head.clone(), b].concat() } else { b };
        assert_eq!(stored, expect, "message {n}");
        match n {
            1..=3 => assert_eq!(committed.body.as_deref(), Some(&stored[..]), "message {n}"),
            _ => assert_eq!(committed.body, None, "message {n}"),
        }
    }
}

/// `apply` hands its records over when called: a read asked right after it, before its answer,
/// already sees them; the answer (one per record) comes once they are written, and a record that
/// cannot be written is answered with its own error without failing the others. They reach
/// flash with the next commit's sync: a power cut before it brings the messages back as they
/// were (delivered again, never lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_records_are_seen_at_once_and_synced_with_the_next_commit() {
    let mut ram = flash();
    ram.track_durable();
    let shared = Shared(std::sync::Arc::new(std::sync::Mutex::new(ram)));
    let (spool, _) = Spool::open(shared.clone(), SpoolSettings::default()).unwrap();
    let (handle, _writer) = service::spawn(spool).unwrap();
    let mut qids = Vec::new();
    for n in 0..3 {
        let mut inc = handle.begin(&envelope(n)).await.unwrap();
        inc.write(&body(n)).await.unwrap();
        qids.push(inc.commit().await.unwrap());
    }
    let delivered = RecipientOutcome::Delivered {
        relay: "mx[192.0.2.1]:25".into(),
        reply: "250 ok".into(),
    };
    let answered = handle.apply(vec![
        Update::Mark {
            qid: qids[0],
            index: 1,
            outcome: delivered.clone(),
            at: 1_795_000_000,
        },
        Update::State(qids[1], StateChange::new(QueueState::Hold, 1_795_000_000)),
        Update::Remove(qids[2]),
        Update::Remove(qids[2]),
    ]);
    // Asked after `apply` and answered before it: the records are already the spool's.
    let seen = handle.get(qids[0]).await.unwrap().unwrap();
    assert_eq!(seen.outcomes[1], Some(delivered));
    let answers = answered.await;
    assert_eq!(answers.len(), 4);
    assert!(answers[..3].iter().all(Result::is_ok), "{answers:?}");
    assert!(
        matches!(answers[3], Err(SpoolError::NoSuchMessage(_))),
        "removed twice: {answers:?}"
    );
    let power_cut = || {
        let image = shared.lock().durable_image().unwrap().to_vec();
        let g = shared.lock().geometry();
        Spool::open(
            RamFlash::from_image(g, image).unwrap(),
            SpoolSettings::default(),
        )
        .unwrap()
        .0
    };
    // Power cut now: the three messages as they were before the updates.
    let mut before = power_cut();
    assert!(before.get(qids[0]).unwrap().outcomes[1].is_none());
    assert_eq!(before.get(qids[1]).unwrap().state, QueueState::Active);
    assert!(before.get(qids[2]).is_some());
    // The next commit's sync takes them to flash.
    let mut inc = handle.begin(&envelope(3)).await.unwrap();
    inc.write(&body(3)).await.unwrap();
    let fourth = inc.commit().await.unwrap();
    let mut after = power_cut();
    assert!(after.get(fourth).is_some());
    assert!(after.get(qids[0]).unwrap().outcomes[1].is_some());
    assert_eq!(after.get(qids[1]).unwrap().state, QueueState::Hold);
    assert!(after.get(qids[2]).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_read_back_in_order_and_kept_with_the_next_sync() {
    let mut flash = flash_with_log();
    // What survives a power cut: the array as of the last sync.
    flash.track_durable();
    let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    let (handle, writer) = service::spawn(spool).unwrap();
    let lines: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    for l in &lines {
        handle.log_line(l);
    }
    // A reader sees every line logged before it asked, in order.
    let read = handle.read_log(0, 1000).await.unwrap().unwrap();
    let texts: Vec<&str> = read.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, lines.iter().map(String::as_str).collect::<Vec<_>>());
    // A message's commit syncs the lines logged before it.
    // A newline in a line would make two of it: it is kept as one.
    handle.log_line("one line\nnot two");
    let read = handle.read_log(200, 10).await.unwrap().unwrap();
    let texts: Vec<&str> = read.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["one line not two"]);
    handle.log_line("before the commit");
    let inc = handle.begin(&envelope(2)).await.unwrap();
    inc.commit().await.unwrap();
    drop(handle);
    let flash = writer.join().unwrap().into_flash();
    let durable = flash.durable_image().unwrap().to_vec();
    let after_cut = RamFlash::from_image(FlashGeometry::new(4096, 4096 * 256).unwrap(), durable);
    let (mut spool, report) = Spool::open(after_cut.unwrap(), SpoolSettings::default()).unwrap();
    assert_eq!(report.messages, 1);
    let kept = spool.log_read(0, 1000).unwrap();
    assert_eq!(kept.len(), 202);
    assert_eq!(
        kept.last().map(|(_, t)| t.as_str()),
        Some("before the commit")
    );
}
