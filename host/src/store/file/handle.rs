//! The redb `Database` behind a store handle, reopened after an I/O error.
//!
//! redb marks a `Database` failed on any I/O error (a full disk during a
//! commit, say) and from then on answers `PreviousIo` until it is closed
//! and opened again. A long-running `serve` would stay down after the
//! space is freed; instead the handle notes the error and the next
//! transaction reopens the file (redb repairs it to the last commit).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use redb::{Database, ReadTransaction, WriteTransaction};

pub(super) struct Db {
    path: PathBuf,
    current: RwLock<Option<Database>>,
    failed: AtomicBool,
}

fn open_file(path: &Path) -> Result<Database, redb::Error> {
    Ok(redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .set_cache_size(64 * 1024 * 1024)
        .create(path)?)
}

impl Db {
    pub(super) fn open(path: &Path) -> Result<Db, redb::Error> {
        Ok(Db {
            path: path.to_path_buf(),
            current: RwLock::new(Some(open_file(path)?)),
            failed: AtomicBool::new(false),
        })
    }

    /// Marks the database for a reopen when `e` says its file failed.
    pub(super) fn note(&self, e: &redb::Error) {
        if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo) {
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// Closes and reopens the file if an I/O error marked it failed.
    fn heal(&self) -> Result<(), redb::Error> {
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Closed before it is opened again: one process holds one handle.
        drop(current.take());
        *current = Some(open_file(&self.path)?);
        self.failed.store(false, Ordering::SeqCst);
        tracing::info!(path = %self.path.display(), "store file reopened after an I/O error");
        Ok(())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, redb::Error> {
        self.heal()?;
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let Some(db) = current.as_ref() else {
            return Err(redb::Error::PreviousIo);
        };
        let out = f(db);
        if let Err(e) = &out {
            self.note(e);
        }
        out
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, redb::Error> {
        self.with(|db| Ok(redb::ReadableDatabase::begin_read(db)?))
    }

    pub(super) fn begin_write(&self) -> Result<WriteTransaction, redb::Error> {
        self.with(|db| Ok(db.begin_write()?))
    }

    /// Like [`Db::begin_write`]; None while another write transaction
    /// holds redb's write lock.
    pub(super) fn try_begin_write(&self) -> Result<Option<WriteTransaction>, redb::Error> {
        self.with(|db| match db.try_begin_write() {
            Ok(t) => Ok(Some(t)),
            Err(redb::TransactionError::WouldBlock) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }
}
