//! A growable set of small integers, one bit each: judged message ids, operator sockets
//! told of a visitor.

/// Set bits by index.
#[derive(Debug, Default, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `i`; false when it was set already.
    pub fn set(&mut self, i: u64) -> bool {
        let (w, b) = (usize::try_from(i / 64).unwrap_or(usize::MAX), i % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }

    /// True when bit `i` is set.
    pub fn get(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.0.get(w))
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_once() {
        let mut b = Bits::default();
        assert!(b.set(70));
        assert!(!b.set(70));
        assert!(b.get(70) && !b.get(69) && !b.get(1 << 40));
    }
}
