//! What a proposal changes in the lock, and which proposed values a reviewer already rejected.
//! Pure functions over locks; `propose` does the I/O around them.

use std::collections::BTreeMap;

use crate::config::Lock;
use crate::quantity::Quantity;

/// The entries of `proposed` that are new or differ from `current`: what a proposal asks a
/// reviewer to approve (and what its pull request's marker records).
pub fn lock_changes(current: &Lock, proposed: &Lock) -> BTreeMap<String, Quantity> {
    proposed
        .units
        .iter()
        .filter(|(id, units)| current.units.get(*id) != Some(*units))
        .map(|(id, units)| (id.clone(), *units))
        .collect()
}

/// How many lock entries differ between `current` and `proposed` (changed, added or removed).
pub fn lock_change_count(current: &Lock, proposed: &Lock) -> usize {
    let removed = current
        .units
        .keys()
        .filter(|id| !proposed.units.contains_key(*id))
        .count();
    lock_changes(current, proposed).len() + removed
}

/// `proposed` with every change a reviewer rejected (closed a pull request without merging)
/// taken back to the `current` value, and the ids taken back. A value is proposed again as soon
/// as the vendor's count moves to anything else.
pub fn drop_rejected(
    current: &Lock,
    proposed: &Lock,
    rejected: &BTreeMap<String, Quantity>,
) -> (Lock, Vec<String>) {
    let mut kept = proposed.clone();
    let mut dropped = Vec::new();
    for (id, units) in lock_changes(current, proposed) {
        if rejected.get(&id) == Some(&units) {
            match current.units.get(&id) {
                Some(old) => kept.units.insert(id.clone(), *old),
                None => kept.units.remove(&id),
            };
            dropped.push(id);
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(entries: &[(&str, &str)]) -> Lock {
        Lock {
            units: entries
                .iter()
                .map(|(id, q)| ((*id).to_string(), q.parse().unwrap()))
                .collect(),
        }
    }

    #[test]
    fn changes_and_counts() {
        let current = lock(&[("a", "3"), ("b", "2"), ("gone", "1")]);
        let proposed = lock(&[("a", "4"), ("b", "2"), ("new", "7")]);
        assert_eq!(
            lock_changes(&current, &proposed),
            lock(&[("a", "4"), ("new", "7")]).units
        );
        assert_eq!(lock_change_count(&current, &proposed), 3);
        assert_eq!(lock_change_count(&current, &current), 0);
    }

    #[test]
    fn rejected_values_are_not_proposed_again_until_they_change() {
        let current = lock(&[("a", "3"), ("b", "120.25")]);
        let rejected = lock(&[("a", "4"), ("b", "135.5"), ("c", "9")]).units;

        // The same vendor counts as the rejected pull request: nothing left to propose.
        let same = lock(&[("a", "4"), ("b", "135.5"), ("c", "9")]);
        let (kept, dropped) = drop_rejected(&current, &same, &rejected);
        assert_eq!(kept, current);
        assert_eq!(dropped, ["a", "b", "c"]);

        // The vendor moved on for `a`: that one is proposed again, `b` stays rejected.
        let moved = lock(&[("a", "5"), ("b", "135.5")]);
        let (kept, dropped) = drop_rejected(&current, &moved, &rejected);
        assert_eq!(kept, lock(&[("a", "5"), ("b", "120.25")]));
        assert_eq!(dropped, ["b"]);
    }
}
