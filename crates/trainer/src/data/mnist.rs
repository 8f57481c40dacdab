//! MNIST in the IDX format of LeCun et al., gzip-compressed or raw.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (`0x08`: unsigned byte), a
//! rank byte, one `u32` per dimension — followed by the values. Images are rank 3
//! (`[n, 28, 28]`), labels rank 1 (`[n]`).

use super::{DataError, Dataset, Split, check_labels, read_file};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Loads `train-*` and `t10k-*` from `dir` (names with `.gz` or raw; also the
/// `train-images.idx3-ubyte` spelling).
pub fn load(dir: &Path) -> Result<Split, DataError> {
    let (train, train_path, train_size) = load_pair(dir, "train")?;
    let (test, test_path, test_size) = load_pair(dir, "t10k")?;
    if train_size != test_size {
        return Err(DataError::Format {
            path: test_path,
            message: format!(
                "images are {}x{}, but those of {} are {}x{}",
                test_size[0],
                test_size[1],
                train_path.display(),
                train_size[0],
                train_size[1]
            ),
        });
    }
    Ok(Split { train, test })
}

fn load_pair(dir: &Path, prefix: &str) -> Result<(Dataset, PathBuf, [usize; 2]), DataError> {
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
    let set = Dataset {
        images: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        labels,
        dim: dims[1] * dims[2],
        channels: 1,
        classes: 10,
        ..Dataset::default()
    };
    Ok((set, images_path, [dims[1], dims[2]]))
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

/// The largest IDX data read (8 GiB): a header announcing more is refused before anything is
/// decompressed.
pub const MAX_IDX_BYTES: usize = 8 << 30;

/// Reads an IDX file of unsigned bytes with `rank` dimensions: its dimensions and values. A
/// gzip file may have several members (as `cat a.gz b.gz` makes); bytes after the last one
/// are an error, and only as many bytes as the header announces (plus one, to see trailing
/// data) are decompressed.
pub fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = read_file(path)?;
    let format = |message: String| DataError::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let gzip_error =
            |e: std::io::Error| format(format!("corrupt or truncated gzip stream: {e}"));
        let mut stream = MultiGzDecoder::new(raw.as_slice());
        let mut out = vec![0u8; 4 + 4 * rank];
        let mut got = 0;
        while got < out.len() {
            match stream.read(&mut out[got..]).map_err(gzip_error)? {
                0 => break,
                n => got += n,
            }
        }
        out.truncate(got);
        let count = parse_idx_header(&out, rank).map_err(format)?.1;
        (&mut stream)
            .take(count as u64 + 1)
            .read_to_end(&mut out)
            .map_err(gzip_error)?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, rank).map_err(format)
}

/// Checks an IDX header: its dimensions and the number of data bytes they announce.
pub fn parse_idx_header(bytes: &[u8], rank: usize) -> Result<(Vec<usize>, usize), String> {
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
    if dims.iter().skip(1).any(|&d| d == 0) || dims[0] == 0 {
        return Err(format!(
            "the header announces dimensions {dims:?}: a dimension is 0"
        ));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&c| c <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            format!("the header announces dimensions {dims:?}: more than {MAX_IDX_BYTES} bytes")
        })?;
    Ok((dims, count))
}

/// Parses IDX bytes; the error says what was expected and what was found.
pub fn parse_idx(bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    let header = 4 + 4 * rank;
    let (dims, count) = parse_idx_header(bytes, rank)?;
    let found = bytes.len() - header;
    if found != count {
        return Err(format!(
            "{} data: the header announces {dims:?} = {count} bytes, found {}",
            if found < count {
                "truncated"
            } else {
                "trailing"
            },
            match found > count {
                true => format!("more than {count}"),
                false => found.to_string(),
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
        let err = parse_idx(&idx(3, &[5, 0, 0], &[]), 3).unwrap_err();
        assert!(err.contains("a dimension is 0"), "{err}");
        let err = parse_idx(&idx(3, &[u32::MAX, u32::MAX, u32::MAX], &[1]), 3).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_members_trailing_bytes_and_bombs() {
        let dir = tempfile::tempdir().unwrap();
        let file = idx(1, &[4], &[1, 2, 3, 4]);
        // Two members, as `cat a.gz b.gz` makes.
        let mut two = gzip(&file[..6]);
        two.extend(gzip(&file[6..]));
        let path = dir.path().join("two.gz");
        std::fs::write(&path, &two).unwrap();
        assert_eq!(read_idx(&path, 1).unwrap().1, [1, 2, 3, 4]);
        // Garbage after the stream.
        let mut tail = gzip(&file);
        tail.extend_from_slice(b"garbage after the stream");
        std::fs::write(&path, &tail).unwrap();
        let e = read_idx(&path, 1).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
        // A header that announces 4 bytes followed by 100 MB of zeros: only 5 are inflated.
        let mut bomb = idx(1, &[4], &[0; 4]);
        bomb.resize(100 << 20, 0);
        std::fs::write(&path, gzip(&bomb)).unwrap();
        let e = read_idx(&path, 1).unwrap_err().to_string();
        assert!(
            e.contains("trailing data") && e.contains("more than 4"),
            "{e}"
        );
    }
}
