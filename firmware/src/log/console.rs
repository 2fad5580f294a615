//! Log lines on their way to stderr. On the appliance stderr is the serial console, and a serial
//! line is slow (9600 baud is ~120 lines a second) or held by flow control: a session that logs
//! must not wait for it. Lines queue here for one writer thread; when the queue is full they are
//! dropped and counted (the mail log ring on flash still has them), and the count is printed once
//! the console catches up.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Lines held while the console is behind: a burst of a few seconds' mail.
const QUEUE_LINES: usize = 4096;

struct Writer {
    lines: SyncSender<String>,
    dropped: Arc<AtomicU64>,
    /// Lines queued and not yet written, for [`flush`].
    pending: Arc<AtomicU64>,
}

static WRITER: OnceLock<Option<Writer>> = OnceLock::new();

fn writer() -> Option<&'static Writer> {
    WRITER
        .get_or_init(|| {
            let (lines, rx) = sync_channel(QUEUE_LINES);
            let dropped = Arc::new(AtomicU64::new(0));
            let pending = Arc::new(AtomicU64::new(0));
            let (d, p) = (dropped.clone(), pending.clone());
            std::thread::Builder::new()
                .name("console-log".into())
                .spawn(move || write_out(rx, &d, &p))
                .ok()
                .map(|_| Writer {
                    lines,
                    dropped,
                    pending,
                })
        })
        .as_ref()
}

/// How long the writer lets lines gather after the first one woke it: a busy relay logs
/// thousands of lines a second, and waking for each (and writing each alone) cost more CPU than
/// the relaying itself. A person at the console does not see 10 ms.
const GATHER: Duration = Duration::from_millis(10);

fn write_out(rx: Receiver<String>, dropped: &AtomicU64, pending: &AtomicU64) {
    let mut err = std::io::stderr();
    let mut batch = String::new();
    while let Ok(first) = rx.recv() {
        std::thread::sleep(GATHER);
        let mut n = 0;
        for line in std::iter::once(first).chain(rx.try_iter()) {
            batch.push_str(&line);
            batch.push('\n');
            n += 1;
        }
        // One write for the lot (stderr is unbuffered).
        let _ = err.write_all(batch.as_bytes());
        batch.clear();
        if batch.capacity() > 64 * 1024 {
            // A burst's buffer is not kept for the quiet that follows.
            batch = String::new();
        }
        pending.fetch_sub(n, Ordering::Relaxed);
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            say_args(format_args!(
                "postern: {lost} log lines not shown here, the console was too slow \
                 (`postern log` has them)"
            ));
        }
    }
}

/// Writes one line of the box's own (not the mail log's) to stderr now, in one write.
/// `eprintln!` writes each piece of its format alone, and on the serial console the menu or a mail
/// log line landed between them: "clock set from " ... menu ... "10.0.2.2 (10.0.2.2), ...".
/// A tty takes one write whole, so a line written at once is never split.
pub fn say_args(args: fmt::Arguments) {
    let mut line = fmt::format(args);
    line.push('\n');
    say_text(&line);
}

/// [`say_args`] for text already made (several lines, or a prompt without its newline).
pub fn say_text(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// `eprintln!` for the box's messages, written as [`say_args`] writes them: whole.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::log::console::say_args(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Writes `line` to stderr without waiting for it.
pub fn write(line: String) {
    let Some(w) = writer() else {
        say_text(&(line + "\n"));
        return;
    };
    w.pending.fetch_add(1, Ordering::Relaxed);
    match w.lines.try_send(line) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            w.pending.fetch_sub(1, Ordering::Relaxed);
            w.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits (at most `limit`) until the queued lines are written: before the process exits, so a
/// command's last lines are not lost.
pub fn flush(limit: Duration) {
    let Some(w) = WRITER.get().and_then(Option::as_ref) else {
        return;
    };
    let until = Instant::now() + limit;
    while w.pending.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}
