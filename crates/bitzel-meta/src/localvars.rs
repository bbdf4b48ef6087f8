//! A datastore layer's own variables, decoded on first use when they come
//! from the parse cache.
//!
//! A warm load of poky reads 1,878 recipe datastores; most verbs look at a
//! few of them (`show <recipe>`) or at fields kept beside the datastore
//! (`show --recipes`). Decoding every layer up front made the warm load
//! allocation-bound; a [`LocalVars`] from the cache holds its decoder and
//! runs it the first time the layer is read or written. Clones share the
//! decoder and its result.

use hashbrown::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, LazyLock, OnceLock};

use crate::data::VarEntry;

/// The variables of one layer, by name.
pub(crate) type VarMap = HashMap<Arc<str>, VarEntry>;

/// Decodes a layer's variables (from a parse-cache entry the cache has
/// checked when it was looked up).
pub(crate) type Decoder = Box<dyn Fn() -> VarMap + Send + Sync>;

struct Pending {
    decode: Decoder,
    decoded: OnceLock<VarMap>,
}

impl Pending {
    fn get(&self) -> &VarMap {
        self.decoded.get_or_init(|| (self.decode)())
    }
}

/// A layer's variables: a map, or a decoder run on first use.
#[derive(Default)]
pub(crate) struct LocalVars {
    ready: Option<VarMap>,
    pending: Option<Arc<Pending>>,
}

static EMPTY: LazyLock<VarMap> = LazyLock::new(HashMap::new);

impl LocalVars {
    /// Variables decoded the first time they are used.
    pub(crate) fn lazy(decode: Decoder) -> LocalVars {
        LocalVars {
            ready: None,
            pending: Some(Arc::new(Pending {
                decode,
                decoded: OnceLock::new(),
            })),
        }
    }
}

impl From<VarMap> for LocalVars {
    fn from(map: VarMap) -> LocalVars {
        LocalVars {
            ready: Some(map),
            pending: None,
        }
    }
}

impl Clone for LocalVars {
    fn clone(&self) -> LocalVars {
        LocalVars {
            ready: self.ready.clone(),
            pending: self.pending.clone(),
        }
    }
}

impl Deref for LocalVars {
    type Target = VarMap;

    fn deref(&self) -> &VarMap {
        match (&self.ready, &self.pending) {
            (Some(m), _) => m,
            (None, Some(p)) => p.get(),
            (None, None) => &EMPTY,
        }
    }
}

impl DerefMut for LocalVars {
    fn deref_mut(&mut self) -> &mut VarMap {
        let pending = &mut self.pending;
        self.ready.get_or_insert_with(|| match pending.take() {
            Some(p) => match Arc::try_unwrap(p) {
                Ok(p) => p.decoded.into_inner().unwrap_or_else(|| (p.decode)()),
                Err(shared) => shared.get().clone(),
            },
            None => VarMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn one(name: &str) -> VarMap {
        let mut m = VarMap::new();
        m.insert(Arc::from(name), VarEntry::default());
        m
    }

    #[test]
    fn decodes_once_on_first_read_and_clones_share_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let v = LocalVars::lazy(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            one("A")
        }));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let w = v.clone();
        assert!(v.contains_key("A"));
        assert!(w.contains_key("A"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_write_to_a_clone_leaves_the_original_alone() {
        let v = LocalVars::lazy(Box::new(|| one("A")));
        let mut w = v.clone();
        w.insert(Arc::from("B"), VarEntry::default());
        assert!(w.contains_key("A") && w.contains_key("B"));
        assert!(!v.contains_key("B"));
        let mut x = LocalVars::lazy(Box::new(|| one("C")));
        x.remove("C");
        assert!(x.is_empty());
    }
}
