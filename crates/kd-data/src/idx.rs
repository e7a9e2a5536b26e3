//! Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or not.
//!
//! Format (<http://yann.lecun.com/exdb/mnist/>, "FILE FORMATS FOR THE MNIST DATABASE"): two
//! zero bytes, a type byte (`0x08` = unsigned byte), a byte giving the number of dimensions,
//! then one big-endian `u32` per dimension, then the data in row-major order. Gzip is detected
//! from the stream's magic bytes (`1f 8b`), not from the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{DataError, Result};

/// An IDX array of unsigned bytes: its dimensions and its data in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The only element type this reader accepts: unsigned bytes (pixels and labels).
const TYPE_U8: u8 = 0x08;

/// Reads an IDX file of `u8` elements, decompressing it first if it is gzipped.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_idx(&raw, path)
}

/// Parses the bytes of an IDX file, gunzipping them first if they start with gzip's magic;
/// `path` is only used in error messages. A gzipped file is decompressed no further than its
/// header's dimensions say (plus one byte, to detect trailing data) and no further than
/// deflate's maximum ratio allows for its size, so a small file that inflates without end costs
/// no more memory than the array it claims to hold, and never more than 1032 times its size.
pub fn decode_idx(raw: &[u8], path: &Path) -> Result<IdxArray> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return parse_idx(raw, path);
    }
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = GzDecoder::new(raw);
    // Magic and rank, then the dimensions, then at most the data they declare.
    let mut bytes = Vec::new();
    (&mut decoder).take(4).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() == 4 {
        let dims_bytes = 4 * u64::from(bytes[3]);
        (&mut decoder)
            .take(dims_bytes)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 == 4 + dims_bytes {
            let declared = bytes[4..]
                .chunks_exact(4)
                .try_fold(1u64, |acc, c| {
                    acc.checked_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                })
                .unwrap_or(u64::MAX);
            // Deflate expands at most about 1032:1, so no honest stream gives more than
            // that; a header claiming more is then reported as truncated.
            let possible = (raw.len() as u64).saturating_mul(1032);
            (&mut decoder)
                .take(declared.min(possible).saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(io)?;
        }
    }
    parse_idx(&bytes, path)
}

/// Parses an uncompressed IDX byte buffer; `path` is only used in error messages.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let bad = |detail: String| DataError::BadMagic {
        path: PathBuf::from(path),
        detail,
    };
    if bytes.len() < 4 {
        return Err(bad(format!(
            "expected a 4-byte magic number, found {} bytes",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "magic number must start with two zero bytes, found {:02x} {:02x}",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != TYPE_U8 {
        return Err(bad(format!(
            "element type 0x{:02x} is not supported (expected 0x08, unsigned byte)",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(bad("rank 0 (expected at least one dimension)".into()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64 - 4,
            found: bytes.len() as u64 - 4,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let found = (bytes.len() - header) as u64;
    match expected {
        Some(expected) if expected == found => Ok(IdxArray {
            dims,
            data: bytes[header..].to_vec(),
        }),
        Some(expected) if expected > found => Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        }),
        Some(expected) => Err(DataError::Shape {
            path: path.to_path_buf(),
            expected: format!("{expected} data bytes for dimensions {dims:?}"),
            found: format!("{found} bytes (trailing data)"),
        }),
        None => Err(bad(format!("dimensions {dims:?} overflow"))),
    }
}

/// Encodes `data` with `dims` as an uncompressed IDX `u8` file (used to write test fixtures
/// and to export datasets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_small_array() {
        let data: Vec<u8> = (0..24).collect();
        let bytes = encode_idx(&[2, 3, 4], &data);
        let arr = parse_idx(&bytes, Path::new("x")).unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode_idx(&[2], &[1, 2]);
        bytes.push(9);
        let err = parse_idx(&bytes, Path::new("f.idx")).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
