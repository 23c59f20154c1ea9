//! The objects kept as delta bases: a bounded cache of recent objects, keyed by the offset of
//! their entry (for ofs-deltas) and by their id (for ref-deltas).

use std::collections::BTreeMap;

use super::BASE_OVERHEAD as ENTRY_OVERHEAD;
use crate::object::{ObjectId, ObjectKind};

/// Room set aside for one object while its content is gathered.
///
/// Owning one means its bytes are already counted in [`BaseCache::used`]; [`BaseCache::insert`]
/// turns it into a kept object.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Content length plus [`ENTRY_OVERHEAD`].
    charge: usize,
}

impl Reservation {
    /// The content length this reservation was made for.
    pub(crate) fn len(&self) -> usize {
        self.charge.saturating_sub(ENTRY_OVERHEAD)
    }
}

/// A base found in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Base {
    /// The absolute offset of its entry: the key to [`BaseCache::slice`].
    pub(crate) offset: u64,
    pub(crate) kind: ObjectKind,
    pub(crate) len: u64,
}

#[derive(Debug)]
struct Kept {
    kind: ObjectKind,
    id: ObjectId,
    data: Box<[u8]>,
    /// The key of this object in `by_use`.
    used_at: u64,
}

/// Recently seen objects, least recently used evicted first.
///
/// Invariant: `used` is the sum of the charges of the kept objects and of the live
/// reservations, and never exceeds `budget`.
#[derive(Debug)]
pub(crate) struct BaseCache {
    budget: usize,
    used: usize,
    /// Ticks up at every use, to order `by_use`.
    clock: u64,
    by_offset: BTreeMap<u64, Kept>,
    by_id: BTreeMap<ObjectId, u64>,
    /// Use tick to offset, oldest first.
    by_use: BTreeMap<u64, u64>,
}

impl BaseCache {
    pub(crate) fn new(budget: usize) -> BaseCache {
        BaseCache {
            budget,
            used: 0,
            clock: 0,
            by_offset: BTreeMap::new(),
            by_id: BTreeMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    /// Bytes held or set aside, overhead included.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// The object whose entry starts at `offset`, if kept.
    pub(crate) fn find_offset(&mut self, offset: u64) -> Option<Base> {
        let tick = self.tick();
        let kept = self.by_offset.get_mut(&offset)?;
        self.by_use.remove(&kept.used_at);
        kept.used_at = tick;
        self.by_use.insert(tick, offset);
        Some(Base {
            offset,
            kind: kept.kind,
            len: kept.data.len() as u64,
        })
    }

    /// The object with id `id`, if kept.
    pub(crate) fn find_id(&mut self, id: &ObjectId) -> Option<Base> {
        let offset = *self.by_id.get(id)?;
        self.find_offset(offset)
    }

    /// `len` bytes from `start` of the object kept for `offset`.
    pub(crate) fn slice(&self, offset: u64, start: u64, len: u64) -> Option<&[u8]> {
        let data = &self.by_offset.get(&offset)?.data;
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        data.get(start..end)
    }

    /// Sets aside room for an object of `len` bytes, evicting the least recently used objects
    /// other than `pinned` (the base being read). `None` when it cannot fit.
    pub(crate) fn reserve(&mut self, len: u64, pinned: Option<u64>) -> Option<Reservation> {
        let charge = usize::try_from(len).ok()?.checked_add(ENTRY_OVERHEAD)?;
        let pinned_charge = pinned
            .and_then(|offset| self.by_offset.get(&offset))
            .map_or(0, |kept| kept.data.len().saturating_add(ENTRY_OVERHEAD));
        if charge > self.budget.saturating_sub(pinned_charge) {
            return None;
        }
        while self.used.saturating_add(charge) > self.budget {
            let victim = self
                .by_use
                .values()
                .copied()
                .find(|&offset| Some(offset) != pinned)?;
            self.evict(victim);
        }
        self.used = self.used.saturating_add(charge);
        Some(Reservation { charge })
    }

    /// Keeps `data` as the object of the entry at `offset`, in the room `reservation` set aside.
    pub(crate) fn insert(
        &mut self,
        reservation: Reservation,
        offset: u64,
        kind: ObjectKind,
        id: ObjectId,
        data: Vec<u8>,
    ) {
        // The reservation was made for this content; anything else is not kept.
        if data.len() != reservation.len() {
            self.used = self.used.saturating_sub(reservation.charge);
            return;
        }
        if self.by_offset.contains_key(&offset) {
            self.evict(offset);
        }
        let tick = self.tick();
        self.by_use.insert(tick, offset);
        self.by_id.insert(id, offset);
        self.by_offset.insert(
            offset,
            Kept {
                kind,
                id,
                data: data.into_boxed_slice(),
                used_at: tick,
            },
        );
    }

    fn evict(&mut self, offset: u64) {
        let Some(kept) = self.by_offset.remove(&offset) else {
            return;
        };
        self.by_use.remove(&kept.used_at);
        if self.by_id.get(&kept.id) == Some(&offset) {
            self.by_id.remove(&kept.id);
        }
        let charge = kept.data.len().saturating_add(ENTRY_OVERHEAD);
        self.used = self.used.saturating_sub(charge);
    }

    fn tick(&mut self) -> u64 {
        self.clock = self.clock.saturating_add(1);
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::object_id;
    use crate::receive_pack::ObjectFormat;

    fn keep(cache: &mut BaseCache, offset: u64, data: &[u8], pinned: Option<u64>) -> bool {
        let Some(reservation) = cache.reserve(data.len() as u64, pinned) else {
            return false;
        };
        let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, data);
        cache.insert(reservation, offset, ObjectKind::Blob, id, data.to_vec());
        true
    }

    #[test]
    fn the_least_recently_used_object_goes_first() {
        let mut cache = BaseCache::new(3 * (100 + ENTRY_OVERHEAD));
        for offset in [1, 2, 3] {
            assert!(keep(&mut cache, offset, &[offset as u8; 100], None));
        }
        assert!(cache.find_offset(1).is_some());
        assert!(keep(&mut cache, 4, &[4; 100], None));
        assert!(cache.find_offset(2).is_none(), "2 was used least recently");
        assert!(cache.find_offset(1).is_some());
        let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, &[3; 100]);
        assert_eq!(cache.find_id(&id).map(|base| base.offset), Some(3));
        assert!(cache.used() <= 3 * (100 + ENTRY_OVERHEAD));
    }

    #[test]
    fn a_pinned_base_is_never_evicted_and_room_is_not_found_around_it() {
        let mut cache = BaseCache::new(2 * (100 + ENTRY_OVERHEAD));
        assert!(keep(&mut cache, 1, &[1; 100], None));
        assert!(keep(&mut cache, 2, &[2; 100], None));
        assert!(keep(&mut cache, 3, &[3; 100], Some(1)));
        assert!(cache.find_offset(1).is_some());
        assert!(cache.find_offset(2).is_none());
        assert!(!keep(&mut cache, 4, &[4; 200], Some(1)));
        assert_eq!(cache.slice(1, 10, 5), Some(&[1u8; 5][..]));
        assert_eq!(cache.slice(1, 99, 2), None);
    }

    #[test]
    fn an_object_larger_than_the_budget_is_not_kept() {
        let mut cache = BaseCache::new(1000);
        assert!(!keep(&mut cache, 1, &[0; 1000], None));
        assert_eq!(cache.used(), 0);
        let mut none = BaseCache::new(0);
        assert!(!keep(&mut none, 1, b"", None));
    }
}
