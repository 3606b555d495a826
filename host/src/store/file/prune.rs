//! `routes prune` and `volumes rm` on the embedded store (issue 11, F12).

#[allow(unused_imports)]
use super::*;
use crate::store::prune::{now_secs, volume_users, Prune, Released};

/// Routes deleted per write transaction: the changelog keeps
/// [`CHANGELOG_KEEP`] changes, so a handle that missed one transaction can
/// still catch up by the log rather than a rebuild.
const PRUNE_BATCH: usize = 10_000;

impl Inner {
    pub(super) fn prune_routes(&self, prune: &Prune) -> Result<u64, StoreError> {
        let now = now_secs();
        let mut deleted = 0u64;
        // Keys past `after` are read in each round, so each round costs
        // what it deletes plus what it skips, and a round never holds more
        // than one batch of names.
        let mut after: Option<String> = None;
        loop {
            let (count, last) = self.write(|txn| {
                let mut routes = tried!(self, txn.open_table(ROUTES))?;
                let mut doomed = Vec::new();
                let mut last = None;
                {
                    let range = match &after {
                        Some(a) => tried!(
                            self,
                            routes.range::<&str>((
                                std::ops::Bound::Excluded(a.as_str()),
                                std::ops::Bound::Unbounded
                            ))
                        )?,
                        None => tried!(self, routes.range::<&str>(..))?,
                    };
                    for item in range {
                        let (k, v) = tried!(self, item)?;
                        last = Some(k.value().to_string());
                        if prune.selects(k.value(), v.value(), now) {
                            doomed.push(k.value().to_string());
                            if doomed.len() == PRUNE_BATCH {
                                break;
                            }
                        }
                    }
                }
                let mut changes = Vec::with_capacity(doomed.len());
                for name in doomed {
                    tried!(self, routes.remove(name.as_str()))?;
                    changes.push(Change::DeleteRoute { name });
                }
                Ok(((changes.len() as u64, last), changes))
            })?;
            deleted += count;
            match last {
                Some(l) if count as usize == PRUNE_BATCH => after = Some(l),
                _ => return Ok(deleted),
            }
        }
    }

    pub(super) fn release_volume(&self, volume: &str) -> Result<Released, StoreError> {
        self.write(|txn| {
            // Inside the write transaction nothing else commits, so the
            // routes read here are the ones the release is checked against.
            let users = {
                let rtxn = self.begin_read()?;
                let generation = self.generation_in(&rtxn)?;
                let mut cache = self.lock();
                if generation != cache.generation {
                    self.catch_up(&mut cache, &rtxn, generation)?;
                }
                volume_users(&cache.cluster, volume)
            };
            if !users.is_empty() {
                return Ok((Released::InUse(users), vec![]));
            }
            let mut volumes = tried!(self, txn.open_table(VOLUMES))?;
            let Some(server) = tried!(self, volumes.remove(volume))?.map(|s| s.value().to_string())
            else {
                return Ok((Released::NotClaimed, vec![]));
            };
            Ok((
                Released::Released { server },
                vec![Change::ReleaseVolume {
                    volume: volume.to_string(),
                }],
            ))
        })
    }
}
