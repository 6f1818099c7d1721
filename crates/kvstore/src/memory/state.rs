//! The in-process store's data, as a plain state machine with no I/O and no clock of its own:
//! entries with revisions, leases with deadlines, and a bounded event history for watches.
//! Every write returns the events it produced so the caller can broadcast them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::types::{Expect, KeyValue, LeaseId, WatchEvent};

/// The operation needed a lease that does not exist.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LeaseMissing(pub(super) LeaseId);

/// The requested revision is older than the history kept.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HistoryGone {
    /// Oldest revision a watch may start from.
    pub(super) compact_revision: i64,
}

struct Entry {
    value: Vec<u8>,
    mod_revision: i64,
    lease: Option<LeaseId>,
}

/// One change in the history; `created` marks a put of a key that did not exist before, so
/// the key set at an earlier revision can be rebuilt by undoing changes.
struct Recorded {
    event: WatchEvent,
    created: bool,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

pub(super) struct State {
    revision: i64,
    /// Oldest revision whose events are still in `history`.
    oldest_watchable: i64,
    entries: BTreeMap<String, Entry>,
    leases: HashMap<LeaseId, Lease>,
    last_lease: i64,
    history: VecDeque<Recorded>,
    history_limit: usize,
}

impl State {
    pub(super) fn new(history_limit: usize) -> Self {
        State {
            // etcd starts at revision 1 with an empty store; so do we.
            revision: 1,
            oldest_watchable: 1,
            entries: BTreeMap::new(),
            leases: HashMap::new(),
            last_lease: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
        }
    }

    pub(super) fn revision(&self) -> i64 {
        self.revision
    }

    pub(super) fn get(&self, key: &str) -> Option<KeyValue> {
        self.entries.get(key).map(|e| to_kv(key, e))
    }

    pub(super) fn list(&self, prefix: &str) -> Vec<KeyValue> {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| to_kv(k, e))
            .collect()
    }

    pub(super) fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Vec<WatchEvent>, LeaseMissing> {
        if let Some(lease) = lease {
            if !self.leases.contains_key(&lease) {
                return Err(LeaseMissing(lease));
            }
        }
        let revision = self.revision + 1;
        let created = !self.entries.contains_key(key);
        self.detach(key);
        if let Some(lease) = lease.and_then(|l| self.leases.get_mut(&l)) {
            lease.keys.insert(key.to_owned());
        }
        let entry = Entry {
            value,
            mod_revision: revision,
            lease,
        };
        let event = WatchEvent::Put(to_kv(key, &entry));
        self.entries.insert(key.to_owned(), entry);
        Ok(self.commit(revision, vec![Recorded { event, created }]))
    }

    pub(super) fn compare_and_swap(
        &mut self,
        key: &str,
        expect: Expect,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Option<Vec<WatchEvent>>, LeaseMissing> {
        let current = self.entries.get(key).map(|e| e.mod_revision);
        let matches = match expect {
            Expect::Absent => current.is_none(),
            Expect::ModRevision(rev) => current == Some(rev),
        };
        if !matches {
            return Ok(None);
        }
        self.put(key, value, lease).map(Some)
    }

    /// Deletes every key in `keys` in one revision.
    pub(super) fn delete_keys(&mut self, keys: Vec<String>) -> Vec<WatchEvent> {
        if keys.is_empty() {
            return Vec::new();
        }
        let revision = self.revision + 1;
        let mut events = Vec::with_capacity(keys.len());
        for key in keys {
            self.detach(&key);
            if self.entries.remove(&key).is_some() {
                events.push(Recorded {
                    event: WatchEvent::Delete {
                        key,
                        mod_revision: revision,
                    },
                    created: false,
                });
            }
        }
        self.commit(revision, events)
    }

    pub(super) fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.list(prefix).into_iter().map(|kv| kv.key).collect()
    }

    pub(super) fn grant(&mut self, ttl: Duration, now: Instant) -> LeaseId {
        self.last_lease += 1;
        let id = LeaseId(self.last_lease);
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
        id
    }

    pub(super) fn keep_alive(&mut self, lease: LeaseId, now: Instant) -> Result<(), LeaseMissing> {
        let lease = self.leases.get_mut(&lease).ok_or(LeaseMissing(lease))?;
        lease.deadline = now + lease.ttl;
        Ok(())
    }

    pub(super) fn revoke(&mut self, lease: LeaseId) -> Result<Vec<WatchEvent>, LeaseMissing> {
        let lease = self.leases.remove(&lease).ok_or(LeaseMissing(lease))?;
        Ok(self.delete_keys(lease.keys.into_iter().collect()))
    }

    /// Revokes every lease whose deadline has passed; one batch of events per lease.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<Vec<WatchEvent>> {
        let mut due: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort();
        due.into_iter()
            .filter_map(|id| self.revoke(id).ok())
            .filter(|events| !events.is_empty())
            .collect()
    }

    /// The earliest lease deadline, if any lease exists.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }

    /// Drops history before `revision`.
    pub(super) fn compact(&mut self, revision: i64) -> Result<(), HistoryGone> {
        if revision < self.oldest_watchable {
            return Err(HistoryGone {
                compact_revision: self.oldest_watchable,
            });
        }
        let revision = revision.min(self.revision);
        while self
            .history
            .front()
            .is_some_and(|r| r.event.revision() < revision)
        {
            self.history.pop_front();
        }
        self.oldest_watchable = revision;
        Ok(())
    }

    /// Events under `prefix` from `from_revision` on.
    pub(super) fn history_since(
        &self,
        prefix: &str,
        from_revision: i64,
    ) -> Result<Vec<WatchEvent>, HistoryGone> {
        if from_revision < self.oldest_watchable {
            return Err(HistoryGone {
                compact_revision: self.oldest_watchable,
            });
        }
        Ok(self
            .history
            .iter()
            .map(|r| &r.event)
            .filter(|e| e.revision() >= from_revision && e.key().starts_with(prefix))
            .cloned()
            .collect())
    }

    /// The keys under `prefix` as they were at `revision`, rebuilt by undoing later changes.
    pub(super) fn keys_at(&self, prefix: &str, revision: i64) -> Result<Vec<String>, HistoryGone> {
        if revision + 1 < self.oldest_watchable {
            return Err(HistoryGone {
                compact_revision: self.oldest_watchable,
            });
        }
        let mut keys: BTreeSet<String> = self.keys_under(prefix).into_iter().collect();
        for recorded in self.history.iter().rev() {
            if recorded.event.revision() <= revision {
                break;
            }
            let key = recorded.event.key();
            if !key.starts_with(prefix) {
                continue;
            }
            match &recorded.event {
                WatchEvent::Put(_) if recorded.created => keys.remove(key),
                WatchEvent::Put(_) => false,
                WatchEvent::Delete { .. } => keys.insert(key.to_owned()),
            };
        }
        Ok(keys.into_iter().collect())
    }

    /// Removes `key` from the lease it is attached to, if any.
    fn detach(&mut self, key: &str) {
        let lease = self.entries.get(key).and_then(|e| e.lease);
        if let Some(lease) = lease.and_then(|l| self.leases.get_mut(&l)) {
            lease.keys.remove(key);
        }
    }

    /// Records `events` as the changes of `revision` and trims the history to its limit.
    fn commit(&mut self, revision: i64, changes: Vec<Recorded>) -> Vec<WatchEvent> {
        if changes.is_empty() {
            return Vec::new();
        }
        self.revision = revision;
        let events = changes.iter().map(|r| r.event.clone()).collect();
        self.history.extend(changes);
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.event.revision() + 1;
            }
        }
        events
    }
}

fn to_kv(key: &str, entry: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: entry.value.clone(),
        mod_revision: entry.mod_revision,
        lease: entry.lease,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(state: &mut State, key: &str, value: &str) -> i64 {
        let events = state
            .put(key, value.into(), None)
            .expect("put without lease");
        events[0].revision()
    }

    #[test]
    fn every_write_bumps_the_revision_and_is_recorded() {
        let mut state = State::new(100);
        let first = put(&mut state, "a/1", "x");
        let second = put(&mut state, "a/2", "y");
        assert_eq!(second, first + 1);
        assert_eq!(state.get("a/1").unwrap().mod_revision, first);
        let events = state.history_since("a/", first).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(state.history_since("a/", second).unwrap().len(), 1);
    }

    #[test]
    fn deleting_nothing_does_not_bump_the_revision() {
        let mut state = State::new(100);
        let rev = state.revision();
        assert!(state.delete_keys(vec!["nope".into()]).is_empty());
        assert_eq!(state.revision(), rev);
    }

    #[test]
    fn a_short_history_forgets_old_revisions() {
        let mut state = State::new(2);
        let first = put(&mut state, "k", "1");
        put(&mut state, "k", "2");
        let third = put(&mut state, "k", "3");
        let gone = state.history_since("", first).unwrap_err();
        assert_eq!(gone.compact_revision, third - 1);
        assert_eq!(state.history_since("", third - 1).unwrap().len(), 2);
    }

    #[test]
    fn keys_at_an_earlier_revision_are_rebuilt_from_history() {
        let mut state = State::new(100);
        let kept = put(&mut state, "a/kept", "1");
        let before = state.revision();
        put(&mut state, "a/new", "1");
        put(&mut state, "a/kept", "2");
        state.delete_keys(vec!["a/kept".into()]);
        put(&mut state, "b/other", "1");
        assert_eq!(
            state.keys_at("a/", before).unwrap(),
            vec!["a/kept".to_owned()]
        );
        assert_eq!(state.keys_at("a/", kept - 1).unwrap(), Vec::<String>::new());
        assert_eq!(
            state.keys_at("a/", state.revision()).unwrap(),
            vec!["a/new".to_owned()]
        );
        state.compact(state.revision()).unwrap();
        assert!(state.keys_at("a/", before).is_err());
    }

    #[test]
    fn list_stops_at_the_end_of_the_prefix() {
        let mut state = State::new(100);
        put(&mut state, "a/1", "x");
        put(&mut state, "a0", "x");
        put(&mut state, "b/1", "x");
        let keys: Vec<String> = state.list("a/").into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, vec!["a/1".to_owned()]);
    }

    #[test]
    fn expired_lease_takes_its_keys_in_one_revision() {
        let mut state = State::new(100);
        let now = Instant::now();
        let lease = state.grant(Duration::from_secs(1), now);
        state.put("n/1", "x".into(), Some(lease)).unwrap();
        state.put("n/2", "x".into(), Some(lease)).unwrap();
        state.put("n/3", "x".into(), None).unwrap();
        assert!(state.expire(now).is_empty());
        let batches = state.expire(now + Duration::from_secs(1));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 2);
        assert_eq!(batches[0][0].revision(), batches[0][1].revision());
        assert_eq!(state.keys_under("n/"), vec!["n/3".to_owned()]);
        assert_eq!(state.keep_alive(lease, now), Err(LeaseMissing(lease)));
    }

    #[test]
    fn moving_a_key_off_a_lease_keeps_it_past_expiry() {
        let mut state = State::new(100);
        let now = Instant::now();
        let lease = state.grant(Duration::from_secs(1), now);
        state.put("k", "1".into(), Some(lease)).unwrap();
        state.put("k", "2".into(), None).unwrap();
        assert!(state.expire(now + Duration::from_secs(5)).is_empty());
        assert_eq!(state.get("k").unwrap().value, b"2");
    }
}
