//! The standard data sets the tool fetches itself: where they come from, which files a data
//! folder holds, and the SHA-256 values each file is verified against.
//!
//! | name | files in the folder | fetched from |
//! |---|---|---|
//! | `mnist` | `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-...` | torchvision's S3 copy, else `yann.lecun.com` |
//! | `fashion-mnist` | the same names | Zalando's S3 bucket, else its GitHub repository |
//! | `cifar10` | `data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`, `batches.meta.txt` | `cifar-10-binary.tar.gz` from the University of Toronto |
//!
//! A file verifies when its own SHA-256 is the published one, or, for a `.gz` file, when the
//! SHA-256 of its decompressed bytes is (MNIST's values are of the IDX bytes, so a copy that
//! was re-compressed verifies too).

use crate::data::section::DatasetKind;
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One file of a data folder and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Name in the data folder (and on the server, for sets fetched file by file).
    pub name: &'static str,
    /// SHA-256 of the file as distributed, lowercase hex (`None`: no published value).
    pub sha256: Option<&'static str>,
    /// For a `.gz` file, SHA-256 of its decompressed bytes (`None`: no published value).
    pub content_sha256: Option<&'static str>,
    /// Whether the loader needs it (CIFAR-10's class names are optional).
    pub required: bool,
}

/// How a set's files are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// Each file is fetched by its name from a base URL and stored as it is.
    Files,
    /// One `.tar.gz` archive holds the files under `prefix`; only those files are unpacked.
    TarGz {
        /// The archive, fetched by its name from a base URL.
        archive: FileSpec,
        /// The folder inside the archive that holds the files, e.g. `cifar-10-batches-bin/`.
        prefix: &'static str,
    },
}

/// A data set the tool can fetch, verify and find again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standard {
    /// The name on the command line and the folder under the data root, e.g. `fashion-mnist`.
    pub name: &'static str,
    /// The loader that reads the folder.
    pub dataset: DatasetKind,
    /// Base URLs, tried in order; a file's URL is the base followed by its name.
    pub mirrors: &'static [&'static str],
    /// How the files are distributed.
    pub packaging: Packaging,
    /// The files of the data folder.
    pub files: &'static [FileSpec],
}

const fn gz(
    name: &'static str,
    sha256: Option<&'static str>,
    content: Option<&'static str>,
) -> FileSpec {
    FileSpec {
        name,
        sha256,
        content_sha256: content,
        required: true,
    }
}

const fn file(name: &'static str, sha256: &'static str) -> FileSpec {
    FileSpec {
        name,
        sha256: Some(sha256),
        content_sha256: None,
        required: true,
    }
}

/// MNIST (LeCun et al. 1998). Verified by the SHA-256 of the decompressed IDX files.
pub const MNIST: Standard = Standard {
    name: "mnist",
    dataset: DatasetKind::Mnist,
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    packaging: Packaging::Files,
    files: &[
        gz(
            "train-images-idx3-ubyte.gz",
            None,
            Some("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        ),
        gz(
            "train-labels-idx1-ubyte.gz",
            None,
            Some("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        ),
        gz(
            "t10k-images-idx3-ubyte.gz",
            None,
            Some("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        ),
        gz(
            "t10k-labels-idx1-ubyte.gz",
            None,
            Some("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ),
    ],
};

/// Fashion-MNIST (Xiao et al. 2017): MNIST's format and sizes, ten kinds of clothing.
/// Verified by the SHA-256 of the official `.gz` files.
pub const FASHION_MNIST: Standard = Standard {
    name: "fashion-mnist",
    dataset: DatasetKind::FashionMnist,
    mirrors: &[
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    packaging: Packaging::Files,
    files: &[
        gz(
            "train-images-idx3-ubyte.gz",
            Some("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            None,
        ),
        gz(
            "train-labels-idx1-ubyte.gz",
            Some("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            None,
        ),
        gz(
            "t10k-images-idx3-ubyte.gz",
            Some("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            None,
        ),
        gz(
            "t10k-labels-idx1-ubyte.gz",
            Some("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
            None,
        ),
    ],
};

/// CIFAR-10 (Krizhevsky 2009), the binary version.
pub const CIFAR10: Standard = Standard {
    name: "cifar10",
    dataset: DatasetKind::Cifar10,
    mirrors: &["https://www.cs.toronto.edu/~kriz/"],
    packaging: Packaging::TarGz {
        archive: file(
            "cifar-10-binary.tar.gz",
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        ),
        prefix: "cifar-10-batches-bin/",
    },
    files: &[
        file(
            "data_batch_1.bin",
            "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
        ),
        file(
            "data_batch_2.bin",
            "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
        ),
        file(
            "data_batch_3.bin",
            "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
        ),
        file(
            "data_batch_4.bin",
            "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
        ),
        file(
            "data_batch_5.bin",
            "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
        ),
        file(
            "test_batch.bin",
            "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
        ),
        FileSpec {
            name: "batches.meta.txt",
            sha256: None,
            content_sha256: None,
            required: false,
        },
    ],
};

/// Every standard data set, in the order `data list` shows them.
pub const ALL: [Standard; 3] = [MNIST, FASHION_MNIST, CIFAR10];

impl Standard {
    /// The set named `name` on the command line (`mnist`, `fashion-mnist`, `cifar10`).
    pub fn named(name: &str) -> Option<Standard> {
        ALL.into_iter().find(|s| s.name == name)
    }

    /// The set a config's `data.dataset` reads (`None` for image folders).
    pub fn of(dataset: DatasetKind) -> Option<Standard> {
        ALL.into_iter().find(|s| s.dataset == dataset)
    }

    /// The names of every standard set, comma-separated, for messages.
    pub fn names() -> String {
        ALL.map(|s| s.name).join(", ")
    }

    /// The one command that fetches this set into the default data root.
    pub fn download_command(&self) -> String {
        format!("biofeedback data download {}", self.name)
    }

    /// Whether the set was never put in `folder`: it does not exist, or holds no file (a
    /// folder with files is left to the loader, whose errors name what is missing).
    pub fn absent_from(&self, folder: &Path) -> bool {
        match std::fs::read_dir(folder) {
            Ok(entries) => !entries
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| !t.is_dir())),
            Err(_) => !folder.exists(),
        }
    }

    /// The state of each file in `folder`, hashing what is there.
    pub fn check(&self, folder: &Path) -> Vec<(FileSpec, FileState)> {
        self.files
            .iter()
            .map(|f| (*f, file_state(folder, f)))
            .collect()
    }
}

/// One line on the state of `set` in `folder`, hashing its files: `verified (4 files)`,
/// `missing`, or what differs or lacks, file by file.
pub fn summary(set: &Standard, folder: &Path) -> String {
    if set.absent_from(folder) {
        return format!("missing (fetch it: {})", set.download_command());
    }
    let states = set.check(folder);
    let named = |keep: fn(&FileState) -> bool| -> Vec<&str> {
        states
            .iter()
            .filter(|(f, s)| keep(s) && (f.required || !matches!(s, FileState::Missing)))
            .map(|(f, _)| f.name)
            .collect()
    };
    let verified = named(|s| matches!(s, FileState::Verified));
    let unchecked = named(|s| matches!(s, FileState::Unchecked));
    let differs = named(|s| matches!(s, FileState::Differs(_)));
    let unreadable = named(|s| matches!(s, FileState::Unreadable(_)));
    let missing = named(|s| matches!(s, FileState::Missing));
    let mut parts = Vec::new();
    if !verified.is_empty() {
        parts.push(format!("{} verified", verified.len()));
    }
    for (list, what) in [
        (&unchecked, "without a published hash"),
        (&differs, "differ from the published SHA-256"),
        (&unreadable, "unreadable"),
        (&missing, "missing"),
    ] {
        if !list.is_empty() {
            parts.push(format!("{} {what} ({})", list.len(), list.join(", ")));
        }
    }
    let head = match (
        differs.is_empty() && unreadable.is_empty(),
        missing.is_empty(),
    ) {
        (true, true) => "verified",
        (true, false) => "incomplete",
        (false, _) => "not the official files",
    };
    match (head, unchecked.is_empty()) {
        ("verified", true) => format!("verified ({} files)", verified.len()),
        _ => format!("{head}: {}", parts.join(", ")),
    }
}

/// What is known of one file of a data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Not there.
    Missing,
    /// There, and its SHA-256 (or its content's) is the published one.
    Verified,
    /// There; no published value to check it against.
    Unchecked,
    /// There, but it hashes to something else (a different or damaged copy): the SHA-256
    /// found.
    Differs(String),
    /// There, but it cannot be read (or, for `.gz`, decompressed): why.
    Unreadable(String),
}

/// The path of `spec` in `folder`: its name, or another name the loaders accept for it (a
/// decompressed `.gz` file; MNIST's `train-images.idx3-ubyte` spelling).
pub fn present(folder: &Path, spec: &FileSpec) -> Option<PathBuf> {
    let raw = spec.name.strip_suffix(".gz");
    let dotted = |n: &str| n.replacen("-idx", ".idx", 1);
    [Some(spec.name.to_string()), raw.map(str::to_string)]
        .into_iter()
        .flatten()
        .flat_map(|n| [n.clone(), dotted(&n)])
        .map(|n| folder.join(n))
        .find(|p| p.is_file())
}

/// Hashes the file of `spec` in `folder` and compares.
pub fn file_state(folder: &Path, spec: &FileSpec) -> FileState {
    let Some(path) = present(folder, spec) else {
        return FileState::Missing;
    };
    match verify(&path, spec) {
        Ok(state) => state,
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// Checks the file at `path` against `spec`: its own SHA-256, and for a `.gz` file that of
/// its decompressed bytes (a decompressed copy, named without `.gz`, is checked against the
/// content value).
pub fn verify(path: &Path, spec: &FileSpec) -> std::io::Result<FileState> {
    let compressed = path.extension().is_some_and(|e| e == "gz");
    match (compressed, spec.name.ends_with(".gz")) {
        (false, true) => check(path, None, spec.content_sha256, false),
        _ => check(path, spec.sha256, spec.content_sha256, compressed),
    }
}

/// Checks a file stored under another name (a download in progress) as `spec`'s file as
/// distributed.
pub fn verify_as_distributed(path: &Path, spec: &FileSpec) -> std::io::Result<FileState> {
    check(
        path,
        spec.sha256,
        spec.content_sha256,
        spec.name.ends_with(".gz"),
    )
}

/// Compares the SHA-256 of the file at `path` with `own`, then that of its content
/// (decompressed where `compressed`) with `content`.
fn check(
    path: &Path,
    own: Option<&str>,
    content: Option<&str>,
    compressed: bool,
) -> std::io::Result<FileState> {
    if own.is_none() && content.is_none() {
        return Ok(FileState::Unchecked);
    }
    let mut found = String::new();
    if let Some(expected) = own {
        found = sha256_of(std::fs::File::open(path)?)?;
        if found == expected {
            return Ok(FileState::Verified);
        }
    }
    if let Some(expected) = content {
        let file = std::fs::File::open(path)?;
        let digest = match compressed {
            true => sha256_of(MultiGzDecoder::new(std::io::BufReader::new(file)))?,
            false => sha256_of(file)?,
        };
        if digest == expected {
            return Ok(FileState::Verified);
        }
        found = digest;
    }
    Ok(FileState::Differs(found))
}

/// The SHA-256 of everything `reader` yields, lowercase hex.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn names_and_kinds_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.dataset, b.dataset);
            }
            assert_eq!(Standard::named(a.name), Some(*a));
            assert_eq!(Standard::of(a.dataset), Some(*a));
            for f in a.files {
                for h in [f.sha256, f.content_sha256].into_iter().flatten() {
                    assert_eq!(h.len(), 64, "{}: {h}", f.name);
                    assert!(
                        h.bytes()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                    );
                }
            }
        }
        assert_eq!(Standard::of(DatasetKind::ImageFolder), None);
    }

    #[test]
    fn a_gz_file_verifies_by_its_own_or_its_content_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let content = b"the IDX bytes";
        let packed = gzip(content);
        let spec = FileSpec {
            name: "x.gz",
            sha256: Some("0000000000000000000000000000000000000000000000000000000000000000"),
            content_sha256: Some(Box::leak(sha256_of(&content[..]).unwrap().into_boxed_str())),
            required: true,
        };
        std::fs::write(tmp.path().join("x.gz"), &packed).unwrap();
        assert_eq!(
            file_state(tmp.path(), &spec),
            FileState::Verified,
            "by content"
        );
        let own = FileSpec {
            sha256: Some(Box::leak(sha256_of(&packed[..]).unwrap().into_boxed_str())),
            content_sha256: None,
            ..spec
        };
        assert_eq!(
            file_state(tmp.path(), &own),
            FileState::Verified,
            "by the file"
        );
        std::fs::write(tmp.path().join("x.gz"), gzip(b"other bytes")).unwrap();
        assert!(matches!(
            file_state(tmp.path(), &spec),
            FileState::Differs(_)
        ));
        std::fs::write(tmp.path().join("x.gz"), b"not gzip").unwrap();
        assert!(matches!(
            file_state(tmp.path(), &spec),
            FileState::Unreadable(_)
        ));
        std::fs::remove_file(tmp.path().join("x.gz")).unwrap();
        assert_eq!(file_state(tmp.path(), &spec), FileState::Missing);
        std::fs::write(tmp.path().join("x"), content).unwrap();
        assert_eq!(
            file_state(tmp.path(), &spec),
            FileState::Verified,
            "a decompressed copy by the content hash"
        );
    }

    #[test]
    fn the_shared_mnist_copy_verifies() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
        for (spec, state) in MNIST.check(&dir) {
            assert_eq!(state, FileState::Verified, "{}", spec.name);
        }
    }
}
