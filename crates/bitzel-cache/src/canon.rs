//! The canonical binary encoding behind action keys and tree manifests.
//!
//! Hand-written rather than derived so that it is stable across runs,
//! platforms, compiler and dependency versions: integers are little-endian
//! and fixed-width, byte strings are length-prefixed (u64), maps are written
//! in key order (callers pass `BTreeMap`s or sorted slices), and every
//! encoding starts with a domain tag and a format version. Changing any of
//! this is a new format version.

use std::collections::BTreeMap;

use crate::digest::Digest;

/// Appends canonical encodings to a byte buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// A new encoder whose output starts with `domain` and `version`.
    pub fn new(domain: &str, version: u32) -> Encoder {
        let mut e = Encoder { buf: Vec::new() };
        e.str(domain);
        e.u32(version);
        e
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// A u32, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A u64, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// A digest (32 raw bytes).
    pub fn digest(&mut self, d: &Digest) -> &mut Self {
        self.buf.extend_from_slice(&d.0);
        self
    }
    /// A string → string map, in key order.
    pub fn str_map(&mut self, m: &BTreeMap<String, String>) -> &mut Self {
        self.u64(m.len() as u64);
        for (k, v) in m {
            self.str(k);
            self.str(v);
        }
        self
    }
    /// A string → digest map, in key order.
    pub fn digest_map(&mut self, m: &BTreeMap<String, Digest>) -> &mut Self {
        self.u64(m.len() as u64);
        for (k, v) in m {
            self.str(k);
            self.digest(v);
        }
        self
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads what an [`Encoder`] wrote. Every read checks bounds; a short or
/// malformed input is an error string, never a panic.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Start decoding; checks the domain tag and returns the version.
    pub fn new(buf: &'a [u8], domain: &str) -> Result<(Decoder<'a>, u32), String> {
        let mut d = Decoder { buf, pos: 0 };
        let tag = d.bytes()?;
        if tag != domain.as_bytes() {
            return Err(format!("not a {domain} record"));
        }
        let v = d.u32()?;
        Ok((d, v))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| "length overflows".to_string())?;
        self.take(n)
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<String, String> {
        let at = self.pos;
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }
    /// A digest.
    pub fn digest(&mut self) -> Result<Digest, String> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(Digest(a))
    }
    /// True when everything was consumed.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}
