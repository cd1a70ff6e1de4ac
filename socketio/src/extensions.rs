//! Typed values kept by type: per-socket extensions and the server's application state.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

type Entry = (TypeId, Arc<dyn Any + Send + Sync>);

/// Typed values attached to one [`Socket`](crate::Socket), one per type: application data
/// that stays on this node and in memory (no JSON round trip), beside the JSON
/// [`Socket::data`](crate::Socket::data) that recovery and the cluster adapters carry.
///
/// Values are kept behind an [`Arc`]: [`Extensions::get`] hands out a shared handle and
/// holds no lock while the caller uses it, so a handler may keep it across `.await` and
/// touch the extensions again meanwhile. Mutable state goes inside the value (a `Mutex`, an
/// atomic). Handlers read them with the
/// [`Extension`](crate::extract::Extension) extractor.
///
/// A socket's extensions are dropped once it has left its namespace, after its disconnect
/// handlers ran (they can still read them), even if the application still holds the
/// [`Socket`](crate::Socket). Connection state recovery does not restore them: a recovered
/// socket starts with none (keep what must survive a recovery in `data`).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use socketio::Extensions;
///
/// #[derive(Debug, PartialEq)]
/// struct User(String);
/// #[derive(Default)]
/// struct Strikes(AtomicU32);
///
/// let ext = Extensions::new();
/// assert!(ext.insert(User("ann".into())).is_none());
/// ext.insert(Strikes::default());
/// assert_eq!(*ext.get::<User>().unwrap(), User("ann".into()));
/// ext.get::<Strikes>().unwrap().0.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(ext.get::<Strikes>().unwrap().0.load(Ordering::Relaxed), 1);
/// assert!(ext.remove::<User>().is_some());
/// assert!(!ext.contains::<User>());
/// ```
#[derive(Default)]
pub struct Extensions {
    // A socket holds a handful at most: a vector searched in order beats hashing, and an empty
    // one allocates nothing.
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.len())
            .finish()
    }
}

impl Extensions {
    /// No values.
    ///
    /// ```
    /// assert!(socketio::Extensions::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value` as the value of its type; returns the one it replaces.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// assert!(ext.insert(1u8).is_none());
    /// assert_eq!(ext.insert(2u8).as_deref(), Some(&1));
    /// ```
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<Arc<T>> {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        let old = {
            let mut entries = self.lock();
            match entries.iter_mut().find(|(id, _)| *id == TypeId::of::<T>()) {
                Some((_, slot)) => Some(std::mem::replace(slot, value)),
                None => {
                    entries.push((TypeId::of::<T>(), value));
                    None
                }
            }
        };
        old.and_then(|v| v.downcast().ok())
    }

    /// The value of type `T`, shared: no lock is held while the caller uses it.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// ext.insert(String::from("ann"));
    /// assert_eq!(ext.get::<String>().as_deref().map(String::as_str), Some("ann"));
    /// assert!(ext.get::<u32>().is_none());
    /// ```
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let value = self
            .lock()
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .map(|(_, v)| v.clone())?;
        value.downcast().ok()
    }

    /// The value of type `T`, stored first from `make` if there is none. `make` runs without
    /// the lock held; should another value of the type be stored meanwhile, that one is kept
    /// and returned.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// let n = ext.get_or_insert_with(|| 1u32);
    /// assert_eq!(*n, 1);
    /// assert_eq!(*ext.get_or_insert_with(|| 2u32), 1);
    /// ```
    pub fn get_or_insert_with<T: Send + Sync + 'static>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(value) = self.get::<T>() {
            return value;
        }
        let made = Arc::new(make());
        let existing = {
            let mut entries = self.lock();
            let existing = entries
                .iter()
                .find(|(id, _)| *id == TypeId::of::<T>())
                .map(|(_, v)| v.clone());
            if existing.is_none() {
                entries.push((TypeId::of::<T>(), made.clone()));
            }
            existing
        };
        // The loser of a race is dropped here, outside the lock.
        match existing.map(|v| v.downcast::<T>()) {
            Some(Ok(value)) => value,
            _ => made,
        }
    }

    /// A clone of the value of type `T`.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// ext.insert(7u64);
    /// assert_eq!(ext.cloned::<u64>(), Some(7));
    /// ```
    pub fn cloned<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.get::<T>().map(|v| T::clone(&v))
    }

    /// Removes the value of type `T` and returns it.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// ext.insert(7u64);
    /// assert_eq!(ext.remove::<u64>().as_deref(), Some(&7));
    /// assert!(ext.remove::<u64>().is_none());
    /// ```
    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let removed = {
            let mut entries = self.lock();
            let at = entries
                .iter()
                .position(|(id, _)| *id == TypeId::of::<T>())?;
            entries.swap_remove(at).1
        };
        removed.downcast().ok()
    }

    /// Whether a value of type `T` is stored.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// ext.insert(());
    /// assert!(ext.contains::<()>());
    /// ```
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.lock().iter().any(|(id, _)| *id == TypeId::of::<T>())
    }

    /// How many values are stored.
    ///
    /// ```
    /// let ext = socketio::Extensions::new();
    /// ext.insert(1u8);
    /// ext.insert(1u16);
    /// assert_eq!(ext.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is stored.
    ///
    /// ```
    /// assert!(socketio::Extensions::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops every value (outside the lock, so a value's `Drop` may use the extensions).
    pub(crate) fn clear(&self) {
        let entries = std::mem::take(&mut *self.lock());
        drop(entries);
    }
}

/// The application state of a server: values registered on its
/// [`Builder`](crate::Builder) before it starts, read-only afterwards (so read without a lock).
#[derive(Default)]
pub(crate) struct StateMap(Vec<Entry>);

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.0.iter_mut().find(|(id, _)| *id == TypeId::of::<T>()) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((TypeId::of::<T>(), value)),
        }
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let value = self
            .0
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .map(|(_, v)| v.clone())?;
        value.downcast().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn values_are_kept_by_type_and_dropped_on_clear() {
        let drops = Arc::new(AtomicUsize::new(0));
        let ext = Extensions::new();
        ext.insert(Counted(drops.clone()));
        ext.insert(5u32);
        let shared = ext.get::<Counted>();
        ext.clear();
        assert!(ext.is_empty());
        // Still held by `shared`.
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(shared);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn replacing_returns_the_old_value() {
        let ext = Extensions::new();
        ext.insert(String::from("a"));
        let old = ext.insert(String::from("b"));
        assert_eq!(old.as_deref().map(String::as_str), Some("a"));
        assert_eq!(ext.cloned::<String>().as_deref(), Some("b"));
        assert_eq!(ext.len(), 1);
    }

    #[test]
    fn state_map_replaces_and_reads() {
        let mut state = StateMap::default();
        state.insert(1u8);
        state.insert(2u8);
        assert_eq!(state.get::<u8>().as_deref(), Some(&2));
        assert!(state.get::<u16>().is_none());
    }
}
