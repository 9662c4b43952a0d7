//! The connection table of one worker: slots reused through a free list, each with a
//! generation, so an id of a closed connection never names the one that reused its slot
//! (a block read finishing for a closed connection, a stale readiness event).

/// A connection in a [`Table`]: slot and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    idx: u32,
    gen: u32,
}

impl SessionId {
    /// The slot (reused by later connections; see [`Table::id_at`]).
    pub fn index(self) -> usize {
        self.idx as usize
    }
}

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// Connections by [`SessionId`].
#[derive(Debug)]
pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T> Table<T> {
    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a connection; its id is new even if its slot is not.
    pub fn insert(&mut self, val: T) -> SessionId {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, val: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.val = Some(val);
        self.len += 1;
        SessionId { idx, gen: slot.gen }
    }

    /// The connection `id` names, if it is still open.
    pub fn get(&self, id: SessionId) -> Option<&T> {
        self.slots.get(id.idx as usize).filter(|s| s.gen == id.gen).and_then(|s| s.val.as_ref())
    }

    /// The connection `id` names, if it is still open.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.slots.get_mut(id.idx as usize).filter(|s| s.gen == id.gen).and_then(|s| s.val.as_mut())
    }

    /// The id of the connection now in slot `index` (a readiness token names a slot).
    pub fn id_at(&self, index: usize) -> Option<SessionId> {
        let s = self.slots.get(index)?;
        s.val.as_ref().map(|_| SessionId { idx: index as u32, gen: s.gen })
    }

    /// Removes the connection; its id (and every copy of it) goes stale.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        let slot = self.slots.get_mut(id.idx as usize).filter(|s| s.gen == id.gen)?;
        let val = slot.val.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(id.idx);
        self.len -= 1;
        Some(val)
    }

    /// Every open connection (for counters and shutdown, not for a loop turn).
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.val.as_ref().map(|v| (SessionId { idx: i as u32, gen: s.gen }, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gets_a_new_id() {
        let mut t = Table::default();
        let a = t.insert("a");
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_ne!(a, b);
        assert_eq!(t.get(a), None, "the old id names nothing");
        assert_eq!(t.remove(a), None);
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.id_at(b.index()), Some(b));
        assert_eq!(t.len(), 1);
    }
}
