//! Log lines on their way to stderr. On the appliance stderr is the serial console, and a serial
//! line is slow (9600 baud is ~120 lines a second) or held by flow control: a session that logs
//! must not wait for it. Lines queue here for one writer thread; when the queue is full they are
//! dropped and counted (the mail log ring on flash still has them), and the count is printed once
//! the console catches up.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines held while the console is behind: a burst of a few seconds' mail.
const QUEUE_LINES: usize = 4096;
/// The same in bytes, for long lines.
const QUEUE_BYTES: usize = 1024 * 1024;

/// The queued lines as one text, each ended by a newline. The sessions copy their lines in and
/// the writer swaps the text out for the one it has written: a `String` per line, made on a
/// session's thread and freed on the writer's, took the session thread's malloc lock each time.
#[derive(Default)]
struct Queued {
    text: String,
    lines: usize,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queued>,
    /// Rung when the queue stops being empty: the writer waits on it only then.
    ready: Condvar,
    dropped: AtomicU64,
    /// Lines queued and not yet written, for [`flush`].
    pending: AtomicU64,
}

static WRITER: OnceLock<Option<Arc<Shared>>> = OnceLock::new();

fn writer() -> Option<&'static Shared> {
    WRITER
        .get_or_init(|| {
            let shared = Arc::new(Shared::default());
            let theirs = shared.clone();
            std::thread::Builder::new()
                .name("console-log".into())
                .spawn(move || write_out(&theirs))
                .ok()
                .map(|_| shared)
        })
        .as_deref()
}

/// How long the writer lets lines gather after the first one woke it: a busy relay logs
/// thousands of lines a second, and waking for each (and writing each alone) cost more CPU than
/// the relaying itself. A person at the console does not see 10 ms.
const GATHER: Duration = Duration::from_millis(10);

/// Room the writer keeps in its emptied text between bursts.
const TEXT_KEPT: usize = 64 * 1024;

fn write_out(shared: &Shared) {
    let mut err = std::io::stderr();
    let mut batch = String::new();
    loop {
        {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            while q.lines == 0 {
                q = match shared.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        }
        std::thread::sleep(GATHER);
        let n = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            std::mem::swap(&mut q.text, &mut batch);
            std::mem::take(&mut q.lines)
        };
        // One write for the lot (stderr is unbuffered).
        let _ = err.write_all(batch.as_bytes());
        batch.clear();
        if batch.capacity() > TEXT_KEPT {
            // A burst's buffer is not kept for the quiet that follows.
            batch = String::new();
        }
        shared.pending.fetch_sub(n as u64, Ordering::Relaxed);
        let lost = shared.dropped.swap(0, Ordering::Relaxed);
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

/// Writes `program: line` to stderr without waiting for it.
pub fn write(program: &str, line: &str) {
    let Some(w) = writer() else {
        say_text(&format!("{program}: {line}\n"));
        return;
    };
    let Ok(mut q) = w.queue.lock() else {
        return;
    };
    if q.lines >= QUEUE_LINES || q.text.len() >= QUEUE_BYTES {
        w.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let was_empty = q.lines == 0;
    for part in [program, ": ", line, "\n"] {
        q.text.push_str(part);
    }
    q.lines += 1;
    w.pending.fetch_add(1, Ordering::Relaxed);
    drop(q);
    if was_empty {
        w.ready.notify_one();
    }
}

/// Waits (at most `limit`) until the queued lines are written: before the process exits, so a
/// command's last lines are not lost.
pub fn flush(limit: Duration) {
    let Some(w) = WRITER.get().and_then(Option::as_deref) else {
        return;
    };
    let until = Instant::now() + limit;
    while w.pending.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}
