//! Typed BLAKE3 digests: [`Digest`] names content (blobs, tree manifests),
//! [`ActionKey`] names an action. Both print as 64 lowercase hex digits.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Files at least this large are hashed through a memory map with rayon
/// (BLAKE3's tree mode); smaller ones are streamed through a buffer.
pub const MMAP_THRESHOLD: u64 = 1 << 20;

/// A BLAKE3 digest of some content (a CAS blob or a tree manifest).
/// `Default` is all zeros (no content hashes to it in practice).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

/// The key of an action: BLAKE3 of its canonical, versioned encoding.
/// A distinct type so a content digest is never looked up as a key by mistake.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionKey(pub Digest);

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: {reason} (expected 64 lowercase hex digits)")]
pub struct ParseDigestError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Digest {
    /// A digest from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The digest of everything `reader` yields, streamed through a 64 KiB buffer.
    pub fn of_reader(reader: &mut dyn Read) -> io::Result<(Digest, u64)> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((Digest(*hasher.finalize().as_bytes()), total))
    }

    /// The digest and size of a file's content. Large files are memory-mapped
    /// and hashed in parallel; small ones are streamed.
    pub fn of_file(path: &Path) -> io::Result<(Digest, u64)> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len >= MMAP_THRESHOLD {
            let mut hasher = blake3::Hasher::new();
            hasher.update_mmap_rayon(path)?;
            let d = Digest(*hasher.finalize().as_bytes());
            return Ok((d, len));
        }
        Digest::of_reader(&mut file)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        let mut h = self.to_hex();
        h.truncate(12);
        h
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(ParseDigestError {
                input: s.to_string(),
                reason: "wrong length",
            });
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(h), Some(l)) => out[i] = (h << 4) | l,
                _ => {
                    return Err(ParseDigestError {
                        input: s.to_string(),
                        reason: "not a hex digit",
                    })
                }
            }
        }
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl ActionKey {
    /// The underlying digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        self.0.short()
    }
}

impl FromStr for ActionKey {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ActionKey(s.parse()?))
    }
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionKey({})", self.0.short())
    }
}

impl Serialize for ActionKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ActionKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ActionKey(Digest::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_value() {
        let d = Digest::of_bytes(b"");
        // BLAKE3 of the empty input (published test vector).
        assert_eq!(
            d.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(d.to_hex().parse::<Digest>(), Ok(d));
        assert!("zz".parse::<Digest>().is_err());
        assert!("g".repeat(64).parse::<Digest>().is_err());
    }

    #[test]
    fn file_hash_matches_bytes_hash_small_and_large() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 10, (MMAP_THRESHOLD as usize) + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let (d, n) = Digest::of_file(&p).unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(d, Digest::of_bytes(&data));
        }
    }
}
