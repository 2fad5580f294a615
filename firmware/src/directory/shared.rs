//! The directory as the running daemon shares it: sessions take an `Arc<Directory>` when they
//! start and keep it; a change builds a new directory and swaps it in, so it applies at once to
//! new sessions and never to a session half-way through a message.

use std::sync::{Arc, Mutex, RwLock};

use super::Directory;

/// The current directory, and one writer at a time.
#[derive(Debug, Default)]
pub struct SharedDirectory {
    current: RwLock<Arc<Directory>>,
    /// Held for a whole change, so two admins' changes never overwrite each other.
    writer: Mutex<()>,
}

impl SharedDirectory {
    pub fn new(dir: Directory) -> SharedDirectory {
        SharedDirectory {
            current: RwLock::new(Arc::new(dir)),
            writer: Mutex::new(()),
        }
    }

    /// The directory as it is now (a session keeps this for its life).
    pub fn snapshot(&self) -> Arc<Directory> {
        // A poisoned lock still holds a whole Arc: a panic elsewhere cannot tear it.
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Runs `change` on the current directory. If it returns a new directory, that one becomes
    /// current; `change` is where the caller persists it first (flash), so a directory that did
    /// not reach flash is never served. Changes run one at a time.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&Directory) -> Result<(T, Option<Directory>), E>,
    ) -> Result<T, E> {
        let _one_writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.snapshot();
        let (out, next) = change(&now)?;
        if let Some(next) = next {
            let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
            *guard = Arc::new(next);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::prov;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn sessions_keep_their_snapshot_and_new_ones_see_changes() {
        let shared = SharedDirectory::default();
        let old_session = shared.snapshot();
        let run = |line: &str| {
            shared.update(|d| {
                let out = prov::execute(d, &args(line))?;
                Ok::<_, prov::ProvError>((out.output, out.directory))
            })
        };
        run("cd example.com").unwrap();
        run("ca foo@example.com pw").unwrap();
        assert!(old_session.account("foo@example.com").is_none());
        assert!(shared.snapshot().account("foo@example.com").is_some());
        assert!(run("ca foo@example.com pw").is_err());
        // A change that fails to persist is not served.
        let failed: Result<(), &str> = shared.update(|d| {
            let out = prov::execute(d, &args("da foo@example.com")).map_err(|_| "prov")?;
            assert!(out.directory.is_some());
            Err("flash write failed")
        });
        assert_eq!(failed, Err("flash write failed"));
        assert!(shared.snapshot().account("foo@example.com").is_some());
    }
}
