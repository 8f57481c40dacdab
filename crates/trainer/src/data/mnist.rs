//! MNIST in the IDX format of LeCun et al., gzip-compressed or raw.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (`0x08`: unsigned byte), a
//! rank byte, one `u32` per dimension — followed by the values. Images are rank 3
//! (`[n, 28, 28]`), labels rank 1 (`[n]`).

use super::{DataError, Dataset, Split, check_labels, read_file};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Loads `train-*` and `t10k-*` from `dir` (names with `.gz` or raw; also the
/// `train-images.idx3-ubyte` spelling).
pub fn load(dir: &Path) -> Result<Split, DataError> {
    Ok(Split {
        train: load_pair(dir, "train")?,
        test: load_pair(dir, "t10k")?,
    })
}

fn load_pair(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let images_path = find(dir, prefix, "images", "idx3")?;
    let labels_path = find(dir, prefix, "labels", "idx1")?;
    let (dims, pixels) = read_idx(&images_path, 3)?;
    let (ldims, labels) = read_idx(&labels_path, 1)?;
    if dims[0] != ldims[0] {
        return Err(DataError::Format {
            path: labels_path,
            message: format!(
                "holds {} labels but {} holds {} images",
                ldims[0],
                images_path.display(),
                dims[0]
            ),
        });
    }
    check_labels(&labels_path, &labels, 10)?;
    Ok(Dataset {
        images: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        labels,
        dim: dims[1] * dims[2],
        channels: 1,
        classes: 10,
    })
}

fn find(dir: &Path, prefix: &str, what: &str, idx: &str) -> Result<PathBuf, DataError> {
    let names = [
        format!("{prefix}-{what}-{idx}-ubyte.gz"),
        format!("{prefix}-{what}-{idx}-ubyte"),
        format!("{prefix}-{what}.{idx}-ubyte.gz"),
        format!("{prefix}-{what}.{idx}-ubyte"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::MissingFile {
            what: "MNIST IDX file",
            dir: dir.to_path_buf(),
            expected: names.join(", "),
        })
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions: its dimensions and values.
pub fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = read_file(path)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                path: path.to_path_buf(),
                message: format!("corrupt or truncated gzip stream: {e}"),
            })?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, rank).map_err(|message| DataError::Format {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses IDX bytes; the error says what was expected and what was found.
pub fn parse_idx(bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    let header = 4 + 4 * rank;
    if bytes.len() < 4 {
        return Err(format!(
            "not an IDX file: {} bytes, shorter than the 4-byte magic number",
            bytes.len()
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = 0x0800 | rank as u32;
    if magic != expected {
        return Err(format!(
            "not an IDX file of unsigned bytes with {rank} dimension(s): magic number \
             0x{magic:08x}, expected 0x{expected:08x}"
        ));
    }
    if bytes.len() < header {
        return Err(format!(
            "truncated IDX header: {} bytes, expected {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    let found = bytes.len() - header;
    if found != count {
        return Err(format!(
            "{} data: the header announces {dims:?} = {count} bytes, found {found}",
            if found < count {
                "truncated"
            } else {
                "trailing"
            }
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(rank: usize, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, rank as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_a_well_formed_file() {
        let (dims, data) = parse_idx(&idx(3, &[2, 2, 1], &[1, 2, 3, 4]), 3).unwrap();
        assert_eq!(dims, vec![2, 2, 1]);
        assert_eq!(data, vec![1, 2, 3, 4]);
    }

    #[test]
    fn rejects_truncated_and_foreign_bytes() {
        let err = parse_idx(&idx(3, &[2, 2, 1], &[1, 2, 3]), 3).unwrap_err();
        assert!(
            err.contains("truncated") && err.contains("found 3"),
            "{err}"
        );
        let err = parse_idx(b"PK\x03\x04 a zip file", 3).unwrap_err();
        assert!(
            err.contains("not an IDX file") && err.contains("0x00000803"),
            "{err}"
        );
        let err = parse_idx(&idx(1, &[4], &[1, 2, 3, 4]), 3).unwrap_err();
        assert!(err.contains("magic number 0x00000801"), "{err}");
        assert!(parse_idx(&[0, 0], 1).unwrap_err().contains("shorter"));
        let err = parse_idx(&[0, 0, 8, 3, 0, 0], 3).unwrap_err();
        assert!(err.contains("truncated IDX header"), "{err}");
    }
}
