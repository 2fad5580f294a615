//! Keeps the hardware watchdog petted while the services answer: a task asks the daemon for its
//! status every few seconds, and a thread pets `/dev/watchdog` only while the last answer is
//! recent. Stuck services (a hung runtime, a spool that stopped answering) stop the petting, and
//! the machine resets. A clean shutdown disarms it first.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hal::sys::watchdog::Watchdog;

use crate::admin::{Admin, AdminCommand};
use crate::log::console::say;

const DEVICE: &str = "/dev/watchdog";
/// The hardware's timeout (i6300esb resets after two of them).
const TIMEOUT_SECS: u32 = 10;
const PET_EVERY: Duration = Duration::from_secs(2);
const ASK_EVERY: Duration = Duration::from_secs(3);
/// The services count as stuck when they have not answered for this long.
const STALE: Duration = Duration::from_secs(20);

/// Set by the console's `debug-stall-services`: the heartbeat stops as if the services hung.
static STALLED: AtomicBool = AtomicBool::new(false);

/// Makes the heartbeat stop, to see the watchdog reset the box (a test of the watchdog itself).
pub fn stall() {
    STALLED.store(true, Ordering::SeqCst);
}

/// A running keeper; [`Keeper::disarm`] before a clean shutdown.
pub struct Keeper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Keeper {
    pub fn disarm(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Arms the watchdog, if the machine has one, and starts keeping it. Inside the runtime.
pub fn start(admin: Admin) -> Option<Keeper> {
    let mut dog = match Watchdog::open(Path::new(DEVICE)) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => {
            say!("postern: cannot open {DEVICE}: {e}");
            return None;
        }
    };
    match dog.set_timeout(TIMEOUT_SECS) {
        Ok(t) => say!("postern: watchdog {DEVICE} armed, {t} s"),
        Err(e) => say!("postern: watchdog {DEVICE} armed with its own timeout ({e})"),
    }
    let base = Instant::now();
    let last_answer = Arc::new(AtomicU64::new(0));
    let heard = last_answer.clone();
    tokio::spawn(async move {
        loop {
            let asked = tokio::time::timeout(STALE, admin.execute(AdminCommand::Status)).await;
            if asked.is_ok_and(|r| r.exit == 0) && !STALLED.load(Ordering::SeqCst) {
                heard.store(base.elapsed().as_millis() as u64, Ordering::SeqCst);
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut warned = false;
            while !stopping.load(Ordering::SeqCst) {
                let silent = base.elapsed().saturating_sub(Duration::from_millis(
                    last_answer.load(Ordering::SeqCst),
                ));
                if silent < STALE {
                    let _ = dog.pet();
                    warned = false;
                } else if !warned {
                    say!(
                        "postern: services silent for {} s: the watchdog is no longer petted; the box resets",
                        silent.as_secs()
                    );
                    warned = true;
                }
                std::thread::sleep(PET_EVERY);
            }
            if let Err(e) = dog.disarm() {
                say!("postern: cannot disarm the watchdog: {e}");
            }
        });
    match thread {
        Ok(thread) => Some(Keeper { stop, thread }),
        Err(e) => {
            say!("postern: cannot start the watchdog thread: {e}");
            None
        }
    }
}
