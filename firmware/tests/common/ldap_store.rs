//! What the LDAP sync tests share: the directory slot of a spool on RAM flash that can lose
//! power, the settings pointing at a test slapd, and one sync.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hal::flash::{FlashGeometry, RamFlash};
use postern::admin::ldap::LockedSlot;
use postern::config::localconfig::LocalConfig;
use postern::directory::ldap::{
    AppendRefused, SaveError, SnapshotParts, SnapshotStore, SyncKind, SyncReport, Syncer,
};
use postern::directory::{Directory, SharedDirectory};
use postern::spool::{Region, Spool, SpoolGeometry, SpoolSettings};

use super::slapd::{self, Slapd};

/// The directory slot of a spool on RAM flash that can lose power.
pub struct FlashStore(pub Mutex<Spool<RamFlash>>);

impl SnapshotStore for FlashStore {
    fn begin(&self, len: usize) -> Result<Box<dyn SnapshotParts + '_>, SaveError> {
        let spool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(LockedSlot::begin(spool, len)?)
    }

    fn append(&self, record: Vec<u8>) -> Result<Result<(), AppendRefused>, SaveError> {
        let mut spool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        spool
            .append_slot(Region::Directory, &record)
            .map(|appended| appended.map_err(|why| AppendRefused(why.to_string())))
            .map_err(|e| SaveError(Box::new(e)))
    }
}

impl FlashStore {
    /// The directory the box would load from the slot (its snapshot and journal).
    pub fn loaded(&self) -> Directory {
        let mut spool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        load(&mut spool)
    }

    /// The journal records after the snapshot in the slot.
    pub fn journal_records(&self) -> usize {
        let mut spool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let slot = spool.read_slot_journaled(Region::Directory).unwrap();
        slot.map_or(0, |s| s.journal.len())
    }
}

/// The directory as the daemon loads it from a spool's directory slot; every journal record
/// must apply.
pub fn load(spool: &mut Spool<RamFlash>) -> Directory {
    let slot = spool
        .read_slot_journaled(Region::Directory)
        .unwrap()
        .unwrap();
    let (dir, replayed) = Directory::decode_journaled(&slot.data, &slot.journal).unwrap();
    assert_eq!(replayed.error, None, "{replayed:?}");
    dir
}

pub fn flash_store() -> Arc<FlashStore> {
    flash_store_with(8)
}

/// A store whose directory slots are `directory_slot_blocks` blocks of 4 KiB.
pub fn flash_store_with(directory_slot_blocks: u32) -> Arc<FlashStore> {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 4096 * 48).unwrap());
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks,
            log_blocks: 0,
            segment_blocks: 4,
        },
    )
    .unwrap();
    let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    Arc::new(FlashStore(Mutex::new(spool)))
}

/// Which write the next sync makes: a whole snapshot (one erase, one program) or a poll's
/// journal record (one program).
#[derive(Clone, Copy)]
pub enum NextWrite {
    Whole,
    Append,
}

/// The same store, its flash set to lose power in the middle of the program of the next slot
/// write (after the erase of a whole one).
pub fn cut_power_in_next_slot_write(store: Arc<FlashStore>, write: NextWrite) -> Arc<FlashStore> {
    let spool = Arc::try_unwrap(store).ok().unwrap().0.into_inner().unwrap();
    let mut flash = spool.into_flash();
    // Opening may program or erase (recovery): count what it costs on a copy first.
    let (probe, _) = Spool::open(flash.clone(), SpoolSettings::default()).unwrap();
    let open_ops = probe.flash().ops() - flash.ops();
    let program = match write {
        NextWrite::Whole => 1,
        NextWrite::Append => 0,
    };
    flash.cut_power_at(flash.ops() + open_ops + program, 7);
    let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    Arc::new(FlashStore(Mutex::new(spool)))
}

/// The box starting again on this store's flash (after a restart or a power cut): the flash
/// reopened, and the directory as the daemon loads it from the slot.
pub fn restart(store: Arc<FlashStore>) -> (Arc<FlashStore>, Directory) {
    let spool = Arc::try_unwrap(store).ok().unwrap().0.into_inner().unwrap();
    let mut flash = spool.into_flash();
    flash.power_cycle();
    let (mut spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    let dir = load(&mut spool);
    (Arc::new(FlashStore(Mutex::new(spool))), dir)
}

pub fn settings(ldap: &Slapd) -> LocalConfig {
    let mut c = LocalConfig::default();
    for (k, v) in [
        ("ldap_url", ldap.url()),
        ("zimbra_ldap_userdn", slapd::ROOT_DN.to_string()),
        ("zimbra_ldap_password", slapd::ROOT_PW.to_string()),
        ("ldap_connect_timeout", "3s".into()),
        ("ldap_read_timeout", "5s".into()),
    ] {
        c.set(k, &v).unwrap();
    }
    c
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub async fn sync(
    syncer: &mut Syncer,
    kind: SyncKind,
    settings: &LocalConfig,
    shared: &Arc<SharedDirectory>,
    store: &Arc<FlashStore>,
) -> SyncReport {
    let store: Arc<dyn SnapshotStore> = store.clone();
    syncer.sync(kind, settings, shared, &store, now()).await
}
